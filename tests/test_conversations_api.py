"""Conversations over HTTP: history in /v1/ask, its stream and chat completions, and its limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.deps import ANSWER_READ, checked_history
from service.schemas import TurnIn
from service.settings import ServiceSettings
from tests.api import api_client, sse_events
from tests.fakes import HashEmbedder

FIRST = "王岐山在哪里主持召开质量工作座谈会？"
FIRST_ANSWER = "9月27日,王岐山在北京主持召开质量工作座谈会。"
FOLLOW_UP = "他在会上说了什么？"
STANDALONE = "王岐山在会上说了什么？"
HISTORY = [{"question": FIRST, "answer": FIRST_ANSWER}]
TURN_LIMIT, CHAR_LIMIT = 4, 2000


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = ServiceSettings(
        index_dir=tmp_path_factory.mktemp("conversations") / "index",
        dense_floor=0.0,  # the fake embedder's scale
        max_history_turns=TURN_LIMIT,
        max_history_chars=CHAR_LIMIT,
    )
    with api_client(settings, HashEmbedder()) as test_client:
        yield test_client


def test_a_follow_up_is_answered_as_its_standalone_question(client: TestClient) -> None:
    body = client.post("/v1/ask", json={"question": FOLLOW_UP, "history": HISTORY}).json()

    assert body["question"] == FOLLOW_UP
    assert body["standalone_question"] == STANDALONE
    alone = client.post("/v1/ask", json={"question": STANDALONE}).json()
    assert body["answer"] == alone["answer"]
    assert "rewrite" in body["timings_ms"]


def test_without_history_the_question_is_its_own_standalone_question(
    client: TestClient,
) -> None:
    body = client.post("/v1/ask", json={"question": FOLLOW_UP}).json()

    assert body["standalone_question"] == FOLLOW_UP
    assert "rewrite" not in body["timings_ms"]


def test_the_stream_answers_the_standalone_question(client: TestClient) -> None:
    response = client.post("/v1/ask/stream", json={"question": FOLLOW_UP, "history": HISTORY})

    events = dict(sse_events(response.text))
    assert json.loads(events["answer"])["standalone_question"] == STANDALONE


def test_chat_completions_take_the_earlier_messages_as_history(client: TestClient) -> None:
    messages = [
        {"role": "system", "content": "你是助手"},
        {"role": "user", "content": FIRST},
        {"role": "assistant", "content": FIRST_ANSWER},
        {"role": "user", "content": [{"type": "text", "text": FOLLOW_UP}]},
    ]
    body = client.post("/v1/chat/completions", json={"model": "rag", "messages": messages}).json()
    assert body["standalone_question"] == STANDALONE

    streamed = client.post(
        "/v1/chat/completions", json={"model": "rag", "messages": messages, "stream": True}
    )
    chunks = [json.loads(data) for _, data in sse_events(streamed.text) if data != "[DONE]"]
    assert chunks[-1]["standalone_question"] == STANDALONE


def test_the_answer_of_a_turn_is_the_reply_after_its_tool_calls(client: TestClient) -> None:
    """An assistant message calling a tool (no text) closed the turn with an empty answer, and
    the reply written after the tool's result was dropped: "他" then found no person."""
    call = [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    messages = [
        {"role": "user", "content": "谁在北京主持召开质量工作座谈会？"},
        {"role": "assistant", "content": None, "tool_calls": call},
        {"role": "tool", "tool_call_id": "1", "content": "{}"},
        {"role": "assistant", "content": "王岐山在北京主持召开质量工作座谈会。"},
        {"role": "user", "content": FOLLOW_UP},
    ]
    response = client.post("/v1/chat/completions", json={"model": "rag", "messages": messages})

    assert response.json()["standalone_question"] == STANDALONE


def test_function_and_tool_messages_are_no_turns(client: TestClient) -> None:
    """OpenAI's deprecated `function` role was a 422, though clients still send it."""
    call = {"name": "lookup", "arguments": "{}"}
    messages = [
        {"role": "user", "content": FIRST},
        {"role": "assistant", "content": None, "function_call": call},
        {"role": "function", "name": "lookup", "content": "{}"},
        {"role": "tool", "tool_call_id": "1", "content": "{}"},
        {"role": "assistant", "content": FIRST_ANSWER},
        {"role": "user", "content": FOLLOW_UP},
    ]
    response = client.post("/v1/chat/completions", json={"model": "rag", "messages": messages})

    assert response.status_code == 200, response.text
    assert response.json()["standalone_question"] == STANDALONE


@pytest.mark.parametrize("route", ["/v1/ask", "/v1/ask/stream"])
def test_too_many_turns_is_422_naming_the_limit(client: TestClient, route: str) -> None:
    history = HISTORY * (TURN_LIMIT + 1)
    response = client.post(route, json={"question": FOLLOW_UP, "history": history})

    assert response.status_code == 422
    assert f"the limit is {TURN_LIMIT}" in response.json()["detail"]
    assert "RAG_MAX_HISTORY_TURNS" in response.json()["detail"]


@pytest.mark.parametrize("route", ["/v1/ask", "/v1/ask/stream"])
def test_whole_long_answers_sent_back_are_not_refused(client: TestClient, route: str) -> None:
    """The rewriters read the opening of an answer only: a client sending back the answers
    it was shown, whole, was refused (422) once one was longer than the characters limit."""
    long_answer = FIRST_ANSWER + "会议强调了质量工作。" * (CHAR_LIMIT // 10)  # over it alone
    history = [{"question": FIRST, "answer": long_answer}] * TURN_LIMIT
    response = client.post(route, json={"question": FOLLOW_UP, "history": history})

    assert response.status_code == 200, response.text
    if route == "/v1/ask":
        assert response.json()["standalone_question"] == STANDALONE
    else:
        answer = json.loads(dict(sse_events(response.text))["answer"])
        assert answer["standalone_question"] == STANDALONE


@pytest.mark.parametrize(("question_chars", "status"), [(200, 200), (201, 422)])
def test_each_answer_counts_as_the_opening_read_of_it(
    client: TestClient, question_chars: int, status: int
) -> None:
    # TURN_LIMIT turns of 200 + ANSWER_READ characters: exactly the limit.
    assert TURN_LIMIT * (200 + ANSWER_READ) == CHAR_LIMIT
    turn = {"question": "问" * (question_chars - 1) + "？", "answer": "答" * CHAR_LIMIT}
    response = client.post("/v1/ask", json={"question": FOLLOW_UP, "history": [turn] * TURN_LIMIT})

    assert response.status_code == status, response.text


@pytest.mark.parametrize("route", ["/v1/ask", "/v1/ask/stream"])
def test_too_long_a_history_is_422_naming_the_limit(client: TestClient, route: str) -> None:
    history = [{"question": FIRST + "很长" * CHAR_LIMIT, "answer": FIRST_ANSWER}]
    response = client.post(route, json={"question": FOLLOW_UP, "history": history})

    assert response.status_code == 422
    assert f"the limit is {CHAR_LIMIT}" in response.json()["detail"]
    assert "RAG_MAX_HISTORY_CHARS" in response.json()["detail"]


def test_the_answers_passed_on_are_cut_to_what_is_read(tmp_path: Path) -> None:
    settings = ServiceSettings(index_dir=tmp_path, max_history_chars=CHAR_LIMIT)
    long_answer = "  " + FIRST_ANSWER * 100

    [turn] = checked_history([TurnIn(question=FIRST, answer=long_answer)], settings)

    assert turn == TurnIn(question=FIRST, answer=long_answer.strip()[:ANSWER_READ])


def chat_turns(*turns: tuple[str, str]) -> list[dict[str, str]]:
    return [
        {"role": role, "content": text}
        for question, answer in turns
        for role, text in (("user", question), ("assistant", answer))
    ]


def test_a_chat_beyond_the_history_limits_goes_on_from_its_latest_turns(
    client: TestClient,
) -> None:
    """A chat client sends its whole conversation each time: a 422 past the limits ended the
    conversation for good. The latest turns within them are its history instead."""
    older = [("谁主持召开了全国质量技术监督工作座谈会？", "梅克保主持。")] * (TURN_LIMIT + 3)
    long_ago = ("很长的问题？", "很长" * CHAR_LIMIT)  # over the characters limit alone
    messages = [
        *chat_turns(long_ago, *older, (FIRST, FIRST_ANSWER)),
        {"role": "user", "content": FOLLOW_UP},
    ]
    for stream in (False, True):
        response = client.post(
            "/v1/chat/completions", json={"messages": messages, "stream": stream}
        )
        assert response.status_code == 200, response.text
        if not stream:
            assert response.json()["standalone_question"] == STANDALONE


def test_a_long_answer_does_not_end_a_chats_memory(client: TestClient) -> None:
    """The rewriters read the opening of an answer only: a latest answer longer than the
    characters limit, counted whole, left the follow-up without any history."""
    long_answer = FIRST_ANSWER + "会议强调了质量工作。" * CHAR_LIMIT
    messages = [*chat_turns((FIRST, long_answer)), {"role": "user", "content": FOLLOW_UP}]
    response = client.post("/v1/chat/completions", json={"messages": messages})

    assert response.status_code == 200, response.text
    assert response.json()["standalone_question"] == STANDALONE


def test_the_widget_script_is_served_with_this_services_history_limits(
    client: TestClient,
) -> None:
    """The widget sends its conversation as `history` with every question: it must know
    the limits of the service it talks to (tests/test_widget_browser.py holds it to them)."""
    script = client.get("/widget.js")

    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert f"historyTurns: {TURN_LIMIT}, historyChars: {CHAR_LIMIT}," in script.text


def test_ten_thousand_turns_or_a_megabyte_are_refused_with_the_limit_named(
    client: TestClient,
) -> None:
    many = {"question": FOLLOW_UP, "history": [{"question": "问", "answer": "答"}] * 10_000}
    response = client.post("/v1/ask", json=many)
    assert response.status_code in (413, 422)
    assert "limit" in json.dumps(response.json()["detail"])

    megabyte = {"question": FOLLOW_UP, "history": [{"question": FIRST, "answer": "答" * 1_000_000}]}
    response = client.post("/v1/ask", json=megabyte)
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


@pytest.mark.parametrize(
    "history",
    [
        [{"question": FIRST}],
        [{"question": FIRST, "answer": 3}],
        [{"question": FIRST, "answer": "", "extra": 1}],
        "not a list",
        [{"question": "\ud800", "answer": ""}],
    ],
)
def test_malformed_history_is_422(client: TestClient, history: object) -> None:
    # Sent as ASCII JSON: a lone surrogate travels escaped, as a client may send it.
    body = json.dumps({"question": FOLLOW_UP, "history": history}).encode()
    headers = {"content-type": "application/json"}
    response = client.post("/v1/ask", content=body, headers=headers)
    assert response.status_code == 422
