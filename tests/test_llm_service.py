"""LLM answers through the real service over HTTP, the model being a STUB server on loopback."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam
from pydantic import SecretStr

from bench.service import free_port
from rag.pipeline import Pipeline
from rag.wire import ask_payload
from service.app import create_app
from service.settings import ServiceSettings
from tests.api import api_client, demo_loader, sse_events, without_tokens
from tests.fakes import HashEmbedder
from tests.stub_llm import Reply, StubLLM, running_stub, serve

KEY = "sk-stub-SECRET-4242"
QUESTION = "质检总局局长是谁？"
TIMEOUT = 2.0
GOOD = "质检总局局长是支树平[1]。"


def llm_settings(index_dir: Path, base_url: str) -> ServiceSettings:
    return ServiceSettings(
        index_dir=index_dir,
        dense_floor=0.0,  # for the fake embedder, see tests/conftest.py
        answerer="llm",
        llm_base_url=base_url,
        llm_model="stub-model",
        llm_api_key=SecretStr(KEY),
        llm_timeout=TIMEOUT,
    )


@pytest.fixture(scope="module")
def served_stub() -> Iterator[StubLLM]:
    with running_stub() as stub:
        yield stub


@pytest.fixture(scope="module")
def service(
    served_stub: StubLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Pipeline]]:
    """The service app on a loopback port, configured for the stub LLM; (URL, its pipeline)."""
    settings = llm_settings(tmp_path_factory.mktemp("llm") / "index", served_stub.url)
    app = create_app(settings, demo_loader(HashEmbedder()))
    with serve(app) as url:
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/readyz").status_code != 200:
            assert time.monotonic() < deadline, httpx.get(f"{url}/readyz").text
            time.sleep(0.05)
        yield url, app.state.service.pipeline


@pytest.fixture
def stub(served_stub: StubLLM) -> StubLLM:
    served_stub.reply = Reply(GOOD)
    served_stub.requests.clear()
    served_stub.release.clear()
    return served_stub


@pytest.fixture
def client(service: tuple[str, Pipeline]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service[0], timeout=30) as client:
        yield client


def read_events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs of an SSE response, each as soon as it has arrived."""
    event, data = "message", ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: "):
            data = line[len("data: ") :]
        elif not line and data:
            if data != "[DONE]":  # the end of an OpenAI stream is not JSON
                yield event, json.loads(data)
            event, data = "message", ""


# -- answers -----------------------------------------------------------------------------------


def test_ask_returns_the_llm_answer_with_citations_into_the_files(
    stub: StubLLM, client: httpx.Client, service: tuple[str, Pipeline]
) -> None:
    body = client.post("/v1/ask", json={"question": QUESTION}).json()

    assert body["answer"] == GOOD
    assert (body["composer"], body["unsupported"], body["note"]) == ("llm", [], None)
    (citation,) = body["citations"]
    first = body["passages"][0]
    assert citation["n"] == 1 and citation["passage_id"] == first["id"]
    assert citation["quote"] in first["text"] and "支树平" in citation["quote"]
    # Like an extractive citation, it points into the file: the cited paragraph holds it.
    path = f"/v1/documents/{citation['file']}/paragraphs/{citation['paragraph']}"
    assert citation["quote"] in client.get(path).json()["paragraph"]["text"]
    # The evaluator asks through the same composer.
    assert ask_payload(service[1], QUESTION, 5)["composer"] == "llm"


def test_unknown_citations_and_unsupported_sentences_are_reported(
    stub: StubLLM, client: httpx.Client
) -> None:
    stub.reply = Reply("局长是支树平[1][9]。他很受欢迎。")

    body = client.post("/v1/ask", json={"question": QUESTION}).json()

    assert body["answer"] == "局长是支树平[1]。他很受欢迎。"
    assert body["unsupported"] == ["他很受欢迎。"]
    assert body["note"] == "removed citations of passages that were not given: [9]"
    assert [c["n"] for c in body["citations"]] == [1]


def test_stream_forwards_model_tokens_as_they_arrive(stub: StubLLM, client: httpx.Client) -> None:
    raw = "质检总局局长是支树平[1][9]。"
    stub.reply = Reply(raw, chunk_chars=2, hold_after=2)  # the model pauses after 2 chunks
    events: list[tuple[str, dict[str, Any]]] = []

    with client.stream("POST", "/v1/ask/stream", json={"question": QUESTION}) as response:
        for event in read_events(response):
            events.append(event)
            if [e for e, _ in events] == ["retrieval", "delta", "delta"]:
                # The first tokens are here while the model still holds the rest.
                assert not stub.release.is_set()
                stub.release.set()

    names = [e for e, _ in events]
    assert names[:3] == ["retrieval", "delta", "delta"] and names[-1] == "answer"
    assert names.count("answer") == 1
    retrieval, answer = events[0][1], events[-1][1]
    assert retrieval["citations"] == [] and retrieval["passages"] == answer["passages"]
    assert "".join(d["text"] for e, d in events if e == "delta") == raw  # the model's own text
    assert answer["answer"] == "质检总局局长是支树平[1]。"  # checked
    assert answer["composer"] == "llm" and [c["n"] for c in answer["citations"]] == [1]


def test_openai_clients_get_the_llm_answer_streamed_and_whole(
    stub: StubLLM, service: tuple[str, Pipeline]
) -> None:
    client = OpenAI(base_url=f"{service[0]}/v1", api_key="unused-without-keys", max_retries=0)
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": QUESTION}]

    completion = client.chat.completions.create(model="rag", messages=messages)
    chunks = list(client.chat.completions.create(model="rag", messages=messages, stream=True))

    assert completion.choices[0].message.content == GOOD
    assert (completion.model_extra or {})["composer"] == "llm"
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == GOOD
    final = chunks[-1].model_extra or {}
    assert final["answer"] == GOOD and final["composer"] == "llm"
    extra = (completion.model_extra or {})["citations"]
    assert without_tokens(final["citations"]) == without_tokens(extra)
    assert [r.body.get("stream", False) for r in stub.requests] == [False, True]


# -- the model fails ---------------------------------------------------------------------------

FAILURES = [
    pytest.param(Reply(delay=10), f"timeout after {TIMEOUT:g} s", id="slow"),
    pytest.param(Reply(status=500), "HTTP 500", id="server-error-500"),
    pytest.param(Reply(status=429), "rate limited, HTTP 429", id="rate-limited-429"),
]


@pytest.mark.parametrize(("reply", "reason"), FAILURES)
def test_a_failing_model_gets_the_extractive_answer_on_every_endpoint(
    stub: StubLLM,
    client: httpx.Client,
    reply: Reply,
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stub.reply = reply
    note = f"LLM unavailable ({reason}); extractive answer"
    question = {"question": QUESTION}
    chat = {"model": "rag", "messages": [{"role": "user", "content": QUESTION}]}

    started = time.monotonic()
    plain = client.post("/v1/ask", json=question)
    streamed = client.post("/v1/ask/stream", json=question)
    completion = client.post("/v1/chat/completions", json=chat)
    elapsed = time.monotonic() - started

    answer = plain.json()
    assert (answer["composer"], answer["note"]) == ("extractive", note)
    assert "支树平" in answer["answer"] and answer["citations"]
    last, data = sse_events(streamed.text)[-1]
    final = json.loads(data)
    assert last == "answer"
    assert (final["composer"], final["note"], final["answer"]) == (
        "extractive",
        note,
        answer["answer"],
    )
    assert completion.json()["note"] == note
    assert elapsed < 3 * (TIMEOUT + 1)  # three requests, none waits past the timeout
    for text in (plain.text, streamed.text, completion.text, caplog.text):
        assert KEY not in text


@pytest.mark.parametrize("path", ["/v1/ask", "/v1/ask/stream"])
def test_a_follow_up_to_a_stalled_model_waits_one_timeout_not_two(
    stub: StubLLM, client: httpx.Client, path: str
) -> None:
    """The rewrite and the answer share `RAG_LLM_TIMEOUT`: each had its own, so a follow-up
    to a stalled model waited twice it (60 s by default) although the timeout is documented
    as bounding the whole answer."""
    stub.reply = Reply(delay=10)  # stalls past both timeouts: only the deadline ends a wait
    history = [{"question": "质检总局局长是谁？", "answer": "支树平。"}]
    follow_up = {"question": "他出席了什么会议？", "history": history}

    started = time.monotonic()
    response = client.post(path, json=follow_up)
    elapsed = time.monotonic() - started

    body = response.json() if path == "/v1/ask" else json.loads(sse_events(response.text)[-1][1])
    assert body["composer"] == "extractive"
    assert body["note"] == f"LLM unavailable (timeout after {TIMEOUT:g} s); extractive answer"
    assert body["standalone_question"] != follow_up["question"]  # the rules' rewrite
    # One timeout and the extractive answer; two timeouts would be at least 2 * TIMEOUT.
    assert elapsed < 1.5 * TIMEOUT


def test_a_stream_broken_midway_ends_with_the_extractive_answer(
    stub: StubLLM, client: httpx.Client
) -> None:
    stub.reply = Reply(GOOD, chunk_chars=2, fail_after=2)
    chat = {"model": "rag", "messages": [{"role": "user", "content": QUESTION}], "stream": True}

    with client.stream("POST", "/v1/ask/stream", json={"question": QUESTION}) as response:
        events = list(read_events(response))
    with client.stream("POST", "/v1/chat/completions", json=chat) as response:
        chunks = [data for _, data in read_events(response)]

    assert [e for e, _ in events] == ["retrieval", "delta", "delta", "answer"]
    answer = events[-1][1]
    note = "LLM unavailable (stream broken: connection lost); extractive answer"
    assert (answer["composer"], answer["note"]) == ("extractive", note)
    assert "支树平" in answer["answer"]
    # An OpenAI client cannot take text back: the content goes on with the note, then the
    # extractive answer; the final chunk has its citations.
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert content == "质检总局" + f"\n\n[{note}]\n\n" + answer["answer"]
    assert without_tokens(chunks[-1]["citations"]) == without_tokens(answer["citations"])


def test_a_refused_connection_falls_back_without_delay(tmp_path: Path) -> None:
    settings = llm_settings(tmp_path / "index", f"http://127.0.0.1:{free_port()}/v1")
    with api_client(settings, HashEmbedder()) as client:
        started = time.monotonic()
        body = client.post("/v1/ask", json={"question": QUESTION}).json()

    assert time.monotonic() - started < TIMEOUT
    assert body["composer"] == "extractive"
    assert body["note"] == "LLM unavailable (connection failed); extractive answer"


def test_the_key_is_sent_to_the_model_only(
    stub: StubLLM, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stub.reply = Reply(status=500)  # its error message echoes the Authorization header

    text = client.post("/v1/ask", json={"question": QUESTION}).text
    metrics = client.get("/metrics").text

    assert stub.requests[0].authorization == f"Bearer {KEY}"
    assert "Bearer ***" in caplog.text
    for shown in (text, metrics, caplog.text):
        assert KEY not in shown
