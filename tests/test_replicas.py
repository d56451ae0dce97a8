"""Two `rag serve` processes, one index and one Redis: a client may use either replica.

Real processes on 127.0.0.1 with the real model, on different ports, sharing one local
index directory (the Milvus backend, for replicas on separate machines, is issue 15 part 1)
and one redis-server of the test's own. An upload through one is answered through the
other, a job is visible from both, the widget rate limit is one count, a delete through
one is seen by the other; and a replica killed in the middle of a job leaves it failed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from bench.redis_server import have_redis_server, redis_server
from bench.service import service_process

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.skipif(not have_redis_server(), reason="redis-server not found (make redis)"),
]

ADMIN, WIDGET = "admin-key-of-the-replicas", "pk_widget_of_the_replicas"
SITE = "https://shop.example.com"
RATE = 4  # widget asks per key and client, across every replica
# Generous: two model loads and an ingest on a machine that may be busy.
READY_S = 300.0
JOB_S = 300.0
HTTP = httpx.Client(timeout=120)

PANDA = "熊猫基地位于成都北郊，大熊猫每天要吃十二个小时的竹子。\n".encode()


def replica_env(redis_url: str) -> dict[str, str]:
    return {
        "RAG_REDIS_URL": redis_url,
        "RAG_ADMIN_KEYS": ADMIN,
        "RAG_PUBLISHABLE_KEYS": WIDGET,
        "RAG_ALLOWED_ORIGINS": SITE,
        "RAG_WIDGET_RATE_LIMIT": f"{RATE}/hour",
        # The same secrets on every replica: a citation token from one opens on the other.
        "RAG_CITATION_SECRETS": "replicas-share-this-secret-0123456789",
    }


def start_replicas(
    stack: ExitStack, index: Path, redis_url: str
) -> list[tuple[str, subprocess.Popen[bytes]]]:
    env = replica_env(redis_url)
    return [stack.enter_context(service_process(index, env, READY_S)) for _ in range(2)]


def admin(url: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return HTTP.request(method, url + path, headers={"Authorization": f"Bearer {ADMIN}"}, **kwargs)


def upload(url: str, name: str, data: bytes) -> str:
    response = admin(url, "POST", "/v1/documents", files=[("files", (name, data, "text/plain"))])
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


def job(url: str, job_id: str) -> dict[str, Any]:
    response = admin(url, "GET", f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def wait_job(url: str, job_id: str, statuses: set[str], timeout: float = JOB_S) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = job(url, job_id)
        if found["status"] in statuses:
            return found
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} not {statuses} after {timeout} s: {job(url, job_id)}")


def first_file(url: str, query: str) -> str | None:
    response = admin(url, "POST", "/v1/search", json={"query": query})
    assert response.status_code == 200, response.text
    passages = response.json()["passages"]
    return passages[0]["sources"][0]["file"] if passages else None


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    root = tmp_path_factory.mktemp("replicas")
    with redis_server(root / "redis") as server, ExitStack() as stack:
        (a, _), (b, _) = start_replicas(stack, root / "index", server.url)
        yield a, b


def test_an_upload_through_one_replica_is_answered_through_the_other(
    replicas: tuple[str, str],
) -> None:
    a, b = replicas
    job_id = upload(a, "熊猫.txt", PANDA)

    # Visible from the other replica at once, whoever runs it.
    assert job(b, job_id)["files"] == ["熊猫.txt"]
    done = wait_job(b, job_id, {"done", "failed"})
    assert done["status"] == "done", done
    assert done["report"]["new_passages"] >= 1
    assert job(a, job_id) == done
    assert first_file(b, "大熊猫每天吃多久的竹子？") == "熊猫.txt"
    assert first_file(a, "大熊猫每天吃多久的竹子？") == "熊猫.txt"


def test_a_delete_through_one_replica_is_seen_by_the_other(replicas: tuple[str, str]) -> None:
    a, b = replicas
    job_id = upload(b, "灯塔.txt", "灯塔守护着港口，每晚八点亮灯。\n".encode())
    assert wait_job(a, job_id, {"done", "failed"})["status"] == "done"
    assert first_file(a, "灯塔几点亮灯？") == "灯塔.txt"

    deleted = admin(a, "DELETE", "/v1/documents/灯塔.txt")
    assert deleted.status_code == 200, deleted.text
    assert first_file(b, "灯塔几点亮灯？") != "灯塔.txt"
    listed = admin(b, "GET", "/v1/documents").json()["documents"]
    assert "灯塔.txt" not in {d["file"] for d in listed}


def test_the_widget_rate_limit_is_one_count_across_replicas(replicas: tuple[str, str]) -> None:
    a, b = replicas
    headers = {"Authorization": f"Bearer {WIDGET}", "Origin": SITE}

    def ask(url: str) -> httpx.Response:
        return HTTP.post(f"{url}/v1/ask", json={"question": "熊猫基地在哪里？"}, headers=headers)

    within = [ask(url) for url in (a, b) * (RATE // 2)]
    assert [r.status_code for r in within] == [200] * RATE, [r.text for r in within]
    over = [ask(a), ask(b)]
    assert [r.status_code for r in over] == [429, 429]
    assert all(int(r.headers["Retry-After"]) >= 1 for r in over)


def test_a_replica_killed_in_the_middle_of_a_job_leaves_it_failed(tmp_path: Path) -> None:
    # Long enough to ingest (thousands of distinct passages to embed: no near duplicates)
    # that the kill lands while it runs.
    chars = random.Random(15)
    big = "\n\n".join(
        "".join(chr(chars.randint(0x4E00, 0x9FA5)) for _ in range(80)) + "。" for _ in range(5000)
    ).encode()
    with redis_server(tmp_path / "redis") as server, ExitStack() as stack:
        replicas = start_replicas(stack, tmp_path / "index", server.url)
        (a, _), (b, _) = replicas
        job_id = upload(a, "饲养记录.txt", big)
        running = wait_job(b, job_id, {"running", "done", "failed"})
        assert running["status"] == "running", running

        # Whichever replica claimed it: its worker's name holds its pid.
        shared = redis.Redis.from_url(server.url, decode_responses=True)
        worker = shared.hget(f"rag:jobs:job:{job_id}", "worker")
        assert worker is not None
        pid = int(str(worker).split(":")[1])
        [(survivor, _)] = [(url, p) for url, p in replicas if p.pid != pid]
        [victim] = [p for _, p in replicas if p.pid == pid]
        os.kill(pid, signal.SIGKILL)
        victim.wait(timeout=60)

        # Within the job's lease (30 s) the survivor's worker finds it orphaned.
        failed = wait_job(survivor, job_id, {"done", "failed"}, timeout=180)
        assert failed["status"] == "failed", failed
        assert "WorkerLost" in failed["error"] and "upload the files again" in failed["error"]
        # And the survivor still takes work (the dead one's write lease runs out too).
        again = upload(survivor, "熊猫.txt", PANDA)
        assert wait_job(survivor, again, {"done", "failed"})["status"] == "done"
