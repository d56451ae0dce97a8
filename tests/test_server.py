"""The real service process on loopback, called over TCP by httpx and the OpenAI SDK."""

from __future__ import annotations

import json

import httpx
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

from rag.text.script import fold_script
from tests.api import sse_events
from tests.conftest import seed_questions

pytestmark = pytest.mark.slow

TRADITIONAL = "王岐山在哪裡主持召開質量工作座談會？"


def test_seed_questions_get_cited_answers_over_http(live_service: str) -> None:
    # d-02 (a near-tie at rank 5/6) and d-06 (top score 0.499 at the 0.5 abstention
    # threshold) are expected failures of the default engine in test_seeds_integration.py:
    # not a service matter.
    questions = [
        q for q in seed_questions() if q.get("answers") and q["id"] not in {"d-02", "d-06"}
    ]
    if not questions:
        pytest.skip("../shared/qa/seeds-dev.jsonl is not available")
    with httpx.Client(base_url=live_service, timeout=30) as client:
        for q in questions:
            answer = client.post("/v1/ask", json={"question": q["question"]}).json()
            # The answer quotes the file's script; the gold answer may be in the other one.
            folded = fold_script(answer["answer"]).replace(" ", "")
            golds = [fold_script(str(g)).replace(" ", "") for g in q["answers"]]  # type: ignore[attr-defined]
            assert any(gold in folded for gold in golds), q
            assert answer["citations"][0]["file"] == q["file"], q


def test_a_traditional_question_streams_over_tcp(live_service: str) -> None:
    body = {"question": TRADITIONAL}
    with (
        httpx.Client(base_url=live_service, timeout=30) as client,
        client.stream("POST", "/v1/ask/stream", json=body) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    events = sse_events(text)
    final = json.loads(events[-1][1])
    assert [e for e, _ in events][:: len(events) - 1] == ["retrieval", "answer"]
    assert "北京" in final["answer"]
    assert final["citations"] and not final["abstained"]


def test_the_openai_sdk_talks_to_the_service(live_service: str) -> None:
    client = OpenAI(base_url=f"{live_service}/v1", api_key="unused-without-keys", max_retries=0)
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": TRADITIONAL}]

    completion = client.chat.completions.create(model="rag", messages=messages)
    stream = client.chat.completions.create(model="rag", messages=messages, stream=True)
    chunks = list(stream)

    content = completion.choices[0].message.content or ""
    assert "北京" in content
    assert (completion.model_extra or {})["citations"][0]["quote"]
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == content
    # Each request signs its citations from its own clock: compare them without the token.
    streamed_citations = (chunks[-1].model_extra or {})["citations"]
    citations = (completion.model_extra or {})["citations"]
    assert all(c.pop("token") for c in [*streamed_citations, *citations])
    assert streamed_citations == citations
