"""The service with its state in Redis, in process: what it says at start, and Redis down.

When Redis is away, what needs it (uploads, jobs, the widget's rate limit, writes) is
answered 503 with a reason and Retry-After, never 500; queries need no shared state and go
on. When Redis is back, so is everything, with no restart.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from bench.redis_server import RedisServer
from service import state as state_module
from service.app import create_app
from service.settings import ServiceSettings
from service.shared import describe_url
from tests.api import (
    ADMIN,
    NETWORK_CLIENT,
    SITE,
    WIDGET,
    api_client,
    demo_loader,
    keyed_settings,
    wait_ready,
)
from tests.fakes import HashEmbedder

DOC = "熊猫基地位于成都北郊。\n".encode()


def bearer(key: str, origin: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **({"Origin": origin} if origin else {})}


def upload(client: TestClient, name: str) -> Any:
    return client.post(
        "/v1/documents", files=[("files", (name, DOC, "text/plain"))], headers=bearer(ADMIN)
    )


def wait_job(client: TestClient, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}", headers=bearer(ADMIN)).json()
        if job["status"] in {"done", "failed"}:
            return job
        time.sleep(0.05)
    raise TimeoutError(job_id)


def test_without_redis_the_service_says_its_state_is_its_own(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings = ServiceSettings(index_dir=tmp_path / "index", dense_floor=0.0)
    with caplog.at_level(logging.INFO, "rag.service"), api_client(settings, HashEmbedder()):
        pass
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "in this process's memory" in said and "would not share" in said


def test_redis_down_is_503_for_what_needs_it_and_queries_go_on(
    redis_server: RedisServer, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    password_free = redis_server.url
    settings = keyed_settings(tmp_path / "index", redis_url=password_free)
    with (
        caplog.at_level(logging.INFO, "rag.service"),
        api_client(settings, HashEmbedder(), client=NETWORK_CLIENT) as client,
    ):
        assert f"shared in Redis at {password_free}" in caplog.text
        before = upload(client, "before.txt")
        assert before.status_code == 202
        assert wait_job(client, before.json()["job_id"])["status"] == "done"

        redis_server.stop()
        refused = {
            "upload": upload(client, "during.txt"),
            "job": client.get(f"/v1/jobs/{before.json()['job_id']}", headers=bearer(ADMIN)),
            "widget ask": client.post(
                "/v1/ask", json={"question": "熊猫基地在哪里？"}, headers=bearer(WIDGET, SITE)
            ),
            "delete": client.delete("/v1/documents/before.txt", headers=bearer(ADMIN)),
        }
        for what, response in refused.items():
            assert response.status_code == 503, (what, response.text)
            assert "Redis" in response.json()["detail"], what
            assert response.headers["Retry-After"], what
        search = client.post("/v1/search", json={"query": "熊猫基地"}, headers=bearer(ADMIN))
        assert search.status_code == 200
        assert search.json()["passages"][0]["sources"][0]["file"] == "before.txt"
        assert client.get("/metrics", headers=bearer(ADMIN)).status_code == 200

        redis_server.start()  # same port: the service reconnects by itself
        after = upload(client, "after.txt")
        assert after.status_code == 202, after.text
        assert wait_job(client, after.json()["job_id"])["status"] == "done"
        widget = client.post(
            "/v1/ask", json={"question": "熊猫基地在哪里？"}, headers=bearer(WIDGET, SITE)
        )
        assert widget.status_code == 200


def test_a_redis_password_never_reaches_the_log() -> None:
    assert describe_url("redis://:s3cret-pw@redis.internal:6379/0") == (
        "redis://:***@redis.internal:6379/0"
    )
    assert "s3cret" not in describe_url("rediss://app:s3cret@redis.internal/1")
    assert describe_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_a_redis_url_that_is_not_one_is_refused_at_start(tmp_path: Any) -> None:
    with pytest.raises(ValidationError, match="redis_url"):
        ServiceSettings(index_dir=tmp_path, redis_url="http://redis.internal:6379")


def test_a_service_started_while_redis_is_down_becomes_ready_when_it_is_back(
    redis_server: RedisServer, tmp_path: Any
) -> None:
    """Loading failed once and was never tried again: the replica stayed unready (and out of
    its load balancer) until someone restarted it, though Redis was back."""
    settings = keyed_settings(tmp_path / "index", redis_url=redis_server.url)
    redis_server.stop()
    app = create_app(settings, demo_loader(HashEmbedder()))
    with TestClient(app, client=NETWORK_CLIENT) as client:
        waiting = client.get("/readyz")
        for _ in range(600):  # until the first attempt has failed
            if waiting.json()["status"] != "loading":
                break
            time.sleep(0.05)
            waiting = client.get("/readyz")
        assert waiting.status_code == 503
        assert waiting.json()["status"] == "waiting", waiting.json()
        assert "Redis" in waiting.json()["detail"] and "retrying" in waiting.json()["detail"]

        refused = client.post(
            "/v1/ask", json={"question": "熊猫基地在哪里？"}, headers=bearer(ADMIN)
        )
        assert refused.status_code == 503 and refused.headers["retry-after"]
        assert "waiting for its stores" in refused.json()["detail"]

        redis_server.start()  # same port
        wait_ready(client, timeout=60)
        asked = client.post("/v1/ask", json={"question": "熊猫基地在哪里？"}, headers=bearer(ADMIN))
        assert asked.status_code == 200


def test_a_service_waiting_for_redis_shuts_down_at_once(
    redis_server: RedisServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lifespan waits for loading to end: a wait between attempts must not hold it."""
    monkeypatch.setattr(state_module, "RETRY_FIRST_S", 600.0)
    settings = keyed_settings(tmp_path / "index", redis_url=redis_server.url)
    redis_server.stop()
    app = create_app(settings, demo_loader(HashEmbedder()))
    with TestClient(app, client=NETWORK_CLIENT) as client:
        while client.get("/readyz").json()["status"] == "loading":
            time.sleep(0.05)
        assert client.get("/readyz").json()["status"] == "waiting"
        started = time.monotonic()
    assert time.monotonic() - started < 60  # not the 600 s to the next attempt
