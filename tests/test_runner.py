"""Asking a question set: order, errors as results, parallel workers, Ctrl-C."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from eval.datasets import Question
from eval.runner import Outcome, run_questions
from rag.types import Turn

QUESTIONS = [(Question(str(i), f"问题{i}", ()), f"问题{i}") for i in range(10)]


def echo(question: str, top_k: int, history: Sequence[Turn]) -> dict[str, Any]:
    if question == "问题3":
        raise ValueError("no answer for 3")
    return {"answer": question, "top_k": top_k}


def test_every_question_is_asked_in_order_and_errors_are_results() -> None:
    outcomes, interrupted = run_questions(QUESTIONS, echo, top_k=7)

    assert not interrupted
    assert [o.question.id for o in outcomes] == [str(i) for i in range(10)]
    assert outcomes[0].answer == {"answer": "问题0", "top_k": 7}
    assert outcomes[3].answer is None and outcomes[3].error == "ValueError: no answer for 3"


def test_workers_ask_in_parallel_and_miss_none() -> None:
    outcomes, interrupted = run_questions(QUESTIONS, echo, top_k=5, workers=4)

    assert not interrupted
    assert sorted(int(o.question.id) for o in outcomes) == list(range(10))


@pytest.mark.parametrize("workers", [1, 3])
def test_ctrl_c_returns_what_finished(workers: int) -> None:
    seen: list[Outcome] = []

    def on_outcome(outcome: Outcome) -> None:
        seen.append(outcome)
        if len(seen) == 4:
            raise KeyboardInterrupt

    outcomes, interrupted = run_questions(QUESTIONS, echo, 5, workers, on_outcome)

    assert interrupted
    assert len(outcomes) == 4 and outcomes == seen


@pytest.mark.parametrize("reply", ["<html>proxy</html>", "{}", "[1, 2]"])
def test_a_url_that_answers_no_answer_object_is_that_questions_error(reply: str) -> None:
    # A 200 that was not an answer (a proxy's page, another API's JSON) ended the run in a
    # KeyError traceback while scoring, every answer lost.
    import httpx

    from eval.runner import ask_one, http_asker

    transport = httpx.MockTransport(lambda _: httpx.Response(200, text=reply))
    client = httpx.Client(base_url="http://service", transport=transport)

    outcome = ask_one(http_asker(client), *QUESTIONS[0], top_k=5)

    assert outcome.answer is None
    assert outcome.error is not None and "not an answer of POST /v1/ask" in outcome.error
