"""Admission control: the limiter on its own, then a real server on 127.0.0.1 shedding."""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from bench.service import free_port
from service.admission import Admission, Overloaded, ShedReason
from service.app import create_app
from service.settings import ServiceSettings
from tests.api import demo_loader
from tests.fakes import GatedEmbedder

QUESTION = "质检总局局长是谁？"


def run(test: Callable[[], Awaitable[None]]) -> None:
    anyio.run(test)


# The limiter on its own.


def test_up_to_max_inflight_run_and_the_rest_wait_first_come_first_served() -> None:
    admission = Admission(max_inflight=2, max_queue=2, queue_timeout_s=5)
    order: list[str] = []

    async def holder(name: str, release: anyio.Event) -> None:
        async with admission.slot():
            order.append(name)
            await release.wait()

    async def test() -> None:
        releases = {name: anyio.Event() for name in "abcd"}
        async with anyio.create_task_group() as group:
            for name in "abcd":
                group.start_soon(holder, name, releases[name])
                await anyio.sleep(0.01)  # a, b, c, d arrive in that order
            assert (admission.inflight, admission.waiting) == (2, 2)
            assert order == ["a", "b"]
            releases["b"].set()
            await anyio.sleep(0.01)
            assert order == ["a", "b", "c"]  # the oldest waiter, not whoever comes next
            assert (admission.inflight, admission.waiting) == (2, 1)
            for release in releases.values():
                release.set()
        assert (admission.inflight, admission.waiting) == (0, 0)

    run(test)


def test_a_request_beyond_the_queue_is_refused_at_once() -> None:
    admission = Admission(max_inflight=1, max_queue=1, queue_timeout_s=30)

    async def test() -> None:
        release = anyio.Event()

        async def hold() -> None:
            async with admission.slot():
                await release.wait()

        async with anyio.create_task_group() as group:
            group.start_soon(hold)
            group.start_soon(hold)  # waits in the queue
            await anyio.sleep(0.01)
            started = time.monotonic()
            with pytest.raises(Overloaded) as refused:
                await admission.acquire()
            assert time.monotonic() - started < 0.1
            assert refused.value.reason is ShedReason.QUEUE_FULL
            assert refused.value.retry_after_s >= 1
            assert "capacity" in refused.value.detail
            release.set()

    run(test)


def test_a_waiter_gives_up_after_the_queue_timeout_and_leaves_the_queue() -> None:
    admission = Admission(max_inflight=1, max_queue=4, queue_timeout_s=0.05)

    async def test() -> None:
        async with admission.slot():
            started = time.monotonic()
            with pytest.raises(Overloaded) as refused:
                await admission.acquire()
            assert 0.05 <= time.monotonic() - started < 1
            assert refused.value.reason is ShedReason.QUEUE_TIMEOUT
            assert admission.waiting == 0
        async with admission.slot():  # the slot came back, and the timed-out one took none
            assert admission.inflight == 1
        assert admission.inflight == 0

    run(test)


def test_with_no_queue_a_request_waits_for_nothing() -> None:
    admission = Admission(max_inflight=1, max_queue=0, queue_timeout_s=30)

    async def test() -> None:
        async with admission.slot():
            with pytest.raises(Overloaded):
                await admission.acquire()

    run(test)


def test_a_failing_or_cancelled_request_gives_its_slot_or_place_back() -> None:
    admission = Admission(max_inflight=1, max_queue=1, queue_timeout_s=30)

    async def test() -> None:
        with pytest.raises(RuntimeError):
            async with admission.slot():
                raise RuntimeError("the pipeline failed")
        assert admission.inflight == 0
        async with admission.slot():
            with anyio.move_on_after(0.02):  # a client gone while waiting
                await admission.acquire()
            assert admission.waiting == 0
            assert admission.inflight == 1
        assert admission.inflight == 0

    run(test)


@pytest.mark.parametrize(("inflight", "queue", "timeout"), [(0, 1, 1.0), (1, -1, 1.0), (1, 1, 0.0)])
def test_limits_that_admit_nothing_are_refused(inflight: int, queue: int, timeout: float) -> None:
    with pytest.raises(ValueError, match="max_inflight >= 1"):
        Admission(inflight, queue, timeout)


# A real server: uvicorn on 127.0.0.1, one slot, one place in the queue.


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """`app` served by uvicorn on a free port of 127.0.0.1 in a thread, until ready."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not server.started or httpx.get(f"{url}/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the server did not get ready"
            assert thread.is_alive(), "the server stopped"
            time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def metric(url: str, name: str, headers: dict[str, str], **labels: str) -> float:
    text = httpx.get(f"{url}/metrics", headers=headers).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    )


def eventually(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


KEY = {"Authorization": "Bearer admin-key"}


@pytest.fixture
def gate() -> Iterator[GatedEmbedder]:
    """Holds query embeddings, and with them a request inside its slot, while `hold` is set."""
    gate = GatedEmbedder(gated="query")
    yield gate
    gate.release.set()  # never leave a server thread waiting on a failed test


@pytest.fixture
def one_slot(tmp_path: Path, gate: GatedEmbedder) -> Iterator[str]:
    """A server with one query slot and one place in the queue, on the demo corpus."""
    settings = ServiceSettings(
        index_dir=tmp_path / "index",
        dense_floor=0.0,
        admin_keys=["admin-key"],
        max_inflight=1,
        max_queue=1,
        queue_timeout_s=1.0,
    )
    with serving(create_app(settings, demo_loader(gate))) as url:
        yield url


@pytest.mark.reliability
def test_the_server_sheds_with_503_keeps_health_and_recovers(
    one_slot: str, gate: GatedEmbedder
) -> None:
    url = one_slot
    with ThreadPoolExecutor(2) as pool:

        def post(path: str, body: dict[str, object]) -> Future[httpx.Response]:
            return pool.submit(httpx.post, f"{url}{path}", json=body, headers=KEY, timeout=30)

        gate.hold.set()
        try:
            running = post("/v1/ask", {"question": QUESTION})  # takes the one slot
            assert gate.waiting.wait(10)
            queued = post("/v1/search", {"query": QUESTION})  # takes the one place in line
            eventually(lambda: metric(url, "rag_queries_waiting", KEY) == 1)

            started = time.monotonic()
            refused = httpx.post(f"{url}/v1/ask/stream", json={"question": QUESTION}, headers=KEY)
            assert time.monotonic() - started < 1  # refused at once, not left to wait
            assert refused.status_code == 503
            assert int(refused.headers["retry-after"]) >= 1
            assert "capacity" in refused.json()["detail"]
            # Auth comes before admission: a caller without a key takes no place in line.
            assert httpx.post(f"{url}/v1/ask", json={"question": QUESTION}).status_code == 401
            for path in ("/healthz", "/readyz", "/metrics"):  # never shed
                assert httpx.get(f"{url}{path}", headers=KEY).status_code == 200

            timed_out = queued.result(timeout=10)  # after queue_timeout_s in line
            assert timed_out.status_code == 503
            assert "within 1 s" in timed_out.json()["detail"]
        finally:
            gate.release.set()
        assert running.result(timeout=10).status_code == 200

        with httpx.Client(base_url=url, headers=KEY, timeout=30) as client:
            for path, body in (
                ("/v1/ask", {"question": QUESTION}),
                ("/v1/search", {"query": QUESTION}),
                ("/v1/ask/stream", {"question": QUESTION}),
                ("/v1/chat/completions", {"messages": [{"role": "user", "content": QUESTION}]}),
            ):
                assert client.post(path, json=body).status_code == 200, path
        shed = "rag_shed_requests_total"
        assert metric(url, shed, KEY, route="/v1/ask/stream", reason="queue_full") == 1
        assert metric(url, shed, KEY, route="/v1/search", reason="queue_timeout") == 1
        assert metric(url, "rag_queries_inflight", KEY) == 0


@pytest.mark.reliability
def test_a_stream_whose_client_hangs_up_gives_its_slot_back(
    one_slot: str, gate: GatedEmbedder
) -> None:
    gate.hold.set()
    with httpx.Client(base_url=one_slot, headers=KEY, timeout=30) as client:
        with client.stream("POST", "/v1/ask/stream", json={"question": QUESTION}):
            assert gate.waiting.wait(10)  # the stream holds the one slot
            assert metric(one_slot, "rag_queries_inflight", KEY) == 1
        # The client has hung up; the pipeline finishes, and the slot must come back.
        gate.release.set()
        eventually(lambda: metric(one_slot, "rag_queries_inflight", KEY) == 0)
        assert client.post("/v1/ask", json={"question": QUESTION}).status_code == 200


# rag serve's connection backstop behind admission control.


@pytest.mark.parametrize(("env", "limit"), [("512", 512), ("0", None)])
def test_rag_serve_gives_uvicorn_the_connection_backstop(
    env: str, limit: int | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from cli.app import app
    from service.settings import get_service_settings

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda _app, **options: calls.append(options))
    monkeypatch.setenv("RAG_MAX_CONNECTIONS", env)
    get_service_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["serve", "--index", str(tmp_path), "--port", "0"])
    finally:
        get_service_settings.cache_clear()

    assert result.exit_code == 0, result.output
    [options] = calls
    assert options["limit_concurrency"] == limit


def test_an_llm_answerer_gets_admission_sized_for_a_remote_model() -> None:
    # A slot waits on the model, not the CPU: more at once, and a wait as long as an answer.
    llm = ServiceSettings(answerer="llm", llm_timeout=30)
    assert (llm.max_inflight, llm.queue_timeout_s) == (16, 10.0)
    assert ServiceSettings(answerer="llm", llm_timeout=4).queue_timeout_s == 4
    chosen = ServiceSettings(answerer="llm", max_inflight=3, queue_timeout_s=1)
    assert (chosen.max_inflight, chosen.queue_timeout_s) == (3, 1)
    assert (ServiceSettings().max_inflight, ServiceSettings().queue_timeout_s) == (4, 2.0)
