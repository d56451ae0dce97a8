"""The HTTP API, called through httpx against the app (fake embedder, demo corpus, no keys)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from embeddings.base import Kind, Vectors
from rag.wire import answer_payload
from service.app import create_app
from service.settings import ServiceSettings
from tests.api import (
    LOCAL_URL,
    NETWORK_CLIENT,
    QUERY,
    SITE,
    WIDGET,
    api_client,
    keyed_settings,
    sse_events,
    wait_ready,
    without_tokens,
)
from tests.fakes import HashEmbedder

QUESTION = "质检总局局长是谁？"
CHAT = {"model": "rag", "messages": [{"role": "user", "content": QUESTION}]}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for the read-only tests of this module."""
    settings = ServiceSettings(index_dir=tmp_path_factory.mktemp("api") / "index", dense_floor=0.0)
    with api_client(settings, HashEmbedder()) as test_client:
        yield test_client


def without_timings(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer without what differs between two askings: timings and citation tokens
    (signed by the service only; `null` from the CLI)."""
    citations = [{**c, "token": None} for c in answer["citations"]]
    return {k: v for k, v in answer.items() if k != "timings_ms"} | {"citations": citations}


# -- asking ---------------------------------------------------------------------------------


def test_ask_returns_the_answer_object_of_the_cli(client: TestClient) -> None:
    response = client.post("/v1/ask", json={"question": QUESTION})

    assert response.status_code == 200
    body = response.json()
    pipeline = client.app.state.service.pipeline  # type: ignore[attr-defined]
    assert without_timings(body) == without_timings(answer_payload(pipeline.ask(QUESTION)))
    assert "支树平" in body["answer"]
    assert body["citations"][0]["quote"] in body["answer"]
    assert all(c["token"].startswith("v2.") for c in body["citations"])
    assert {"embed", "lexical", "compose", "total"} <= body["timings_ms"].keys()


def test_top_k_bounds_the_passages(client: TestClient) -> None:
    body = client.post("/v1/ask", json={"question": QUESTION, "top_k": 2}).json()
    assert len(body["passages"]) == 2


def test_search_returns_scored_passages_with_sources(client: TestClient) -> None:
    body = client.post("/v1/search", json={"query": "质检总局", "top_k": 3}).json()

    assert len(body["passages"]) == 3
    scores = [p["score"] for p in body["passages"]]
    assert scores == sorted(scores, reverse=True)
    assert all(p["sources"][0]["file"].endswith(".txt") for p in body["passages"])


def test_stream_sends_retrieval_then_pieces_then_the_whole_answer(client: TestClient) -> None:
    response = client.post("/v1/ask/stream", json={"question": QUESTION})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names[0] == "retrieval" and names[-1] == "answer"
    assert set(names[1:-1]) == {"delta"} and len(names) > 3
    retrieval, final = json.loads(events[0][1]), json.loads(events[-1][1])
    assert "".join(json.loads(data)["text"] for _, data in events[1:-1]) == final["answer"]
    assert retrieval["citations"] == final["citations"]
    assert retrieval["passages"] == final["passages"]
    ask = client.post("/v1/ask", json={"question": QUESTION}).json()
    assert without_timings(final) == without_timings(ask)


def test_chat_completion_answers_the_last_user_message(client: TestClient) -> None:
    messages = [
        {"role": "system", "content": "你是助手"},
        {"role": "user", "content": "你好"},
        {"role": "assistant", "content": "你好！"},
        {"role": "user", "content": [{"type": "text", "text": QUESTION}]},
    ]
    response = client.post("/v1/chat/completions", json={"model": "rag", "messages": messages})

    body = response.json()
    assert body["object"] == "chat.completion"
    ask = client.post("/v1/ask", json={"question": QUESTION}).json()
    assert body["choices"][0]["message"] == {"role": "assistant", "content": ask["answer"]}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert without_tokens(body["citations"]) == without_tokens(ask["citations"])
    assert body["short_answer"] == ask["short_answer"]


def test_chat_stream_ends_with_citations_and_done(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", json={**CHAT, "stream": True})

    events = sse_events(response.text)
    assert events[-1] == (None, "[DONE]")
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    ask = client.post("/v1/ask", json={"question": QUESTION}).json()
    assert text == ask["answer"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert without_tokens(chunks[-1]["citations"]) == without_tokens(ask["citations"])
    assert chunks[-1]["short_answer"] == ask["short_answer"]


def test_a_request_without_top_k_gets_rag_top_k_passages(tmp_path: Path) -> None:
    """The schema's default (5) was used whatever RAG_TOP_K said; chat completions obeyed it.
    A widget key sending no top_k gets RAG_TOP_K up to its own cap, not a refusal."""
    settings = keyed_settings(tmp_path / "index", top_k=8, widget_rate_limit="1000/minute")
    with api_client(settings, HashEmbedder(), client=NETWORK_CLIENT) as client:
        query = {"Authorization": f"Bearer {QUERY}"}
        widget = {"Authorization": f"Bearer {WIDGET}", "Origin": SITE}

        def passages(path: str, body: dict[str, Any], headers: dict[str, str]) -> int:
            response = client.post(path, json=body, headers=headers)
            assert response.status_code == 200, response.text
            return len(response.json()["passages"])

        assert passages("/v1/ask", {"question": QUESTION}, query) == 8
        assert passages("/v1/search", {"query": QUESTION}, query) == 8
        assert passages("/v1/ask", {"question": QUESTION, "top_k": 3}, query) == 3
        assert passages("/v1/ask", {"question": QUESTION}, widget) == 5
        refused = client.post("/v1/ask", json={"question": QUESTION, "top_k": 8}, headers=widget)
        assert refused.status_code == 403


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/v1/ask", {"question": "问" * 501}, "the question is 501 characters; the limit is 500"),
        ("/v1/ask", {"question": "   "}, "the question is empty"),
        ("/v1/ask/stream", {"question": "问" * 501}, "the limit is 500"),
        # A search query is read like a question: an unbounded one held a query slot for
        # seconds while the embedder read it in windows, and blanks searched for nothing.
        ("/v1/search", {"query": "问" * 501}, "the query is 501 characters; the limit is 500"),
        ("/v1/search", {"query": " \u3000\n"}, "the query is empty"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "system", "content": "x"}]},
            "no user message",
        ),
    ],
)
def test_unaskable_questions_are_422_with_a_reason(
    client: TestClient, path: str, body: dict[str, object], message: str
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 422
    assert message in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"question": QUESTION, "top_k": 0},
        {"question": QUESTION, "top_k": 51},
        {"question": 42},
        {"question": QUESTION, "unknown": 1},
        {},
    ],
)
def test_invalid_bodies_are_422(client: TestClient, body: dict[str, object]) -> None:
    response = client.post("/v1/ask", json=body)
    assert response.status_code == 422
    assert response.json()["detail"]


def test_malformed_json_is_422_and_oversized_bodies_413(client: TestClient) -> None:
    headers = {"content-type": "application/json"}
    assert client.post("/v1/ask", content=b"{not json", headers=headers).status_code == 422
    huge = json.dumps({"question": "问" * 40_000}).encode()
    assert client.post("/v1/ask", content=huge, headers=headers).status_code == 413


# -- reading a cited paragraph --------------------------------------------------------------


def test_a_citation_opens_on_its_paragraph_with_neighbours(client: TestClient) -> None:
    citation = client.post("/v1/ask", json={"question": QUESTION}).json()["citations"][0]

    response = client.get(
        f"/v1/documents/{citation['file']}/paragraphs/{citation['paragraph']}",
        params={"context": 2},
    )

    body = response.json()
    assert body["file"] == citation["file"]
    assert body["paragraph"]["number"] == citation["paragraph"]
    assert citation["quote"] in body["paragraph"]["text"]
    assert 0 < len(body["before"]) <= 2 and len(body["after"]) <= 2
    assert all(p["number"] < citation["paragraph"] for p in body["before"])
    assert body["paragraph"]["char_start"] <= citation["char_start"]
    assert citation["char_end"] <= body["paragraph"]["char_end"]


def test_missing_documents_and_paragraphs_are_404(client: TestClient) -> None:
    file = client.get("/v1/documents").json()["documents"][0]["file"]
    assert client.get("/v1/documents/nope.txt/paragraphs/1").status_code == 404
    response = client.get(f"/v1/documents/{file}/paragraphs/9999")
    assert response.status_code == 404
    assert "no paragraph 9999" in response.json()["detail"]
    assert client.get(f"/v1/documents/{file}/paragraphs/1?context=6").status_code == 422


@pytest.mark.parametrize("number", [10**30, -(10**30), 2**63])
def test_a_paragraph_number_beyond_64_bits_is_422_not_500(client: TestClient, number: int) -> None:
    """SQLite cannot bind such a number: it was an OverflowError, a 500."""
    file = client.get("/v1/documents").json()["documents"][0]["file"]

    response = client.get(f"/v1/documents/{file}/paragraphs/{number}")

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "number"]


# -- operations -----------------------------------------------------------------------------


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    # Uptime monitors and load balancers probe with HEAD: the status, no body.
    for path in ("/healthz", "/readyz"):
        head = client.head(path)
        assert (head.status_code, head.content) == (200, b"")


def test_metrics_count_requests_by_route_and_report_the_index(client: TestClient) -> None:
    client.get("/v1/documents/x.txt/paragraphs/1")
    text = client.get("/metrics").text

    assert 'rag_index_documents{collection="default"} 5.0' in text
    assert 'rag_http_requests_total{method="GET",route="/v1/documents/{file:path}/' in text
    assert 'route="/healthz",status="200"' in text
    assert "rag_http_request_duration_seconds_bucket" in text
    assert "rag_index_passages" in text


def test_openapi_documents_every_endpoint(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/v1/ask",
        "/v1/ask/stream",
        "/v1/search",
        "/v1/chat/completions",
        "/v1/documents",
        "/v1/jobs/{job_id}",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= paths.keys()
    assert client.get("/docs").status_code == 200


def test_queries_wait_for_loading_and_readyz_says_so(tmp_path: Path) -> None:
    import threading

    release = threading.Event()

    def slow_load(settings: ServiceSettings) -> object:
        release.wait(timeout=30)
        raise RuntimeError("index is corrupt")

    app = create_app(ServiceSettings(index_dir=tmp_path), slow_load)  # type: ignore[arg-type]
    with TestClient(app, client=("127.0.0.1", 1), base_url=LOCAL_URL) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503
        response = client.post("/v1/ask", json={"question": QUESTION})
        assert response.status_code == 503 and response.headers["retry-after"]
        release.set()
        with pytest.raises(TimeoutError):
            wait_ready(client, timeout=1)
        assert client.get("/readyz").json() == {
            "status": "failed",
            "detail": "RuntimeError: index is corrupt",
        }
        assert "index is corrupt" in client.post("/v1/search", json={"query": "x"}).text


class BrokenComposer:
    """TEST FAKE: a composer that always fails, to see how failures reach clients."""

    def compose(self, question: str, passages: object, deadline: object = None) -> object:
        raise RuntimeError("composer exploded")


def test_a_failure_while_loading_is_reported_not_hidden(tmp_path: Path) -> None:
    from rag.pipeline import Pipeline, open_pipeline

    class BrokenQueries(HashEmbedder):
        def embed_batch(self, texts: Sequence[str], kind: Kind) -> Vectors:
            if kind == "query":
                raise RuntimeError("embedder exploded")
            return super().embed_batch(texts, kind)

    def load(settings: ServiceSettings) -> Pipeline:
        return open_pipeline(settings, BrokenQueries())

    app = create_app(ServiceSettings(index_dir=tmp_path, dense_floor=0.0), load)
    with TestClient(
        app, client=("127.0.0.1", 1), base_url=LOCAL_URL, raise_server_exceptions=False
    ) as client:
        # Loading asks a warm-up question, which fails: the service reports it.
        for _ in range(500):
            status = client.get("/readyz").json()
            if status["status"] != "loading":
                break
            time.sleep(0.02)
        assert status == {"status": "failed", "detail": "RuntimeError: embedder exploded"}


def test_the_warm_up_never_calls_the_configured_composer(tmp_path: Path) -> None:
    # An LLM composer would make readiness wait on (and pay for) a remote model.
    from rag.pipeline import Pipeline, open_pipeline

    def load(settings: ServiceSettings) -> Pipeline:
        pipeline = open_pipeline(settings, HashEmbedder())
        pipeline.composer = BrokenComposer()  # type: ignore[assignment]
        return pipeline

    app = create_app(ServiceSettings(index_dir=tmp_path, dense_floor=0.0), load)
    with TestClient(
        app, client=("127.0.0.1", 1), base_url=LOCAL_URL, raise_server_exceptions=False
    ) as client:
        wait_ready(client)
        response = client.post("/v1/ask", json={"question": QUESTION})
        assert response.status_code == 500
        assert "detail" in response.json()


def test_a_stream_that_fails_midway_ends_with_an_error_event(client: TestClient) -> None:
    pipeline = client.app.state.service.pipeline  # type: ignore[attr-defined]
    composer = pipeline.composer
    pipeline.composer = BrokenComposer()
    try:
        stream = client.post("/v1/ask/stream", json={"question": QUESTION})
        # The app answers 500 and re-raises for the server to log; do not raise it here.
        lenient = TestClient(
            client.app, client=("127.0.0.1", 1), base_url=LOCAL_URL, raise_server_exceptions=False
        )
        plain = lenient.post("/v1/ask", json={"question": QUESTION})
    finally:
        pipeline.composer = composer

    assert stream.status_code == 200
    error = ("error", '{"detail": "answering failed; see the service log"}')
    assert sse_events(stream.text) == [error]
    assert plain.status_code == 500
    assert plain.json() == {"detail": "internal error; see the service log"}
