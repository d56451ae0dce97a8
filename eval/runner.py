"""Asking a question set: who answers (in process, over HTTP, the baseline) and the run loop."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import httpx

from eval.datasets import Question
from rag.pipeline import Pipeline
from rag.types import Turn
from rag.wire import ask_payload

# What scoring reads of an answer object.
ANSWER_KEYS = frozenset(("answer", "abstained", "citations", "passages"))
# question text, top_k, the conversation's earlier turns -> the answer object of `POST /v1/ask`
Ask = Callable[[str, int, Sequence[Turn]], dict[str, Any]]


@dataclass(frozen=True)
class Outcome:
    """One question asked: what was asked, and the answer object or the error."""

    question: Question
    asked: str
    answer: dict[str, Any] | None
    error: str | None
    seconds: float


def local_asker(pipeline: Pipeline) -> Ask:
    """In process, through the very function behind `POST /v1/ask`."""
    return lambda question, top_k, history: ask_payload(
        pipeline, question.strip(), top_k, history=history
    )


def http_asker(client: httpx.Client, collection: str | None = None) -> Ask:
    """A running service's `POST /v1/ask` (the client carries base URL and key)."""
    extra = {} if collection is None else {"collection": collection}

    def ask(question: str, top_k: int, history: Sequence[Turn]) -> dict[str, Any]:
        body: dict[str, Any] = {"question": question, "top_k": top_k, **extra}
        if history:
            body["history"] = [{"question": t.question, "answer": t.answer} for t in history]
        response = client.post("/v1/ask", json=body)
        if response.is_error:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
        try:
            answer = response.json()
        except ValueError:
            answer = None
        # A --url that is not this service (a proxy's page, another API) can answer 200: its
        # reply is that question's error, not a KeyError that ends the run while scoring.
        if not isinstance(answer, dict) or not answer.keys() >= ANSWER_KEYS:
            raise RuntimeError(f"not an answer of POST /v1/ask: {response.text[:200]}")
        return answer

    return ask


def ask_one(ask: Ask, question: Question, asked: str, top_k: int) -> Outcome:
    started = time.perf_counter()
    try:
        answer, error = ask(asked, top_k, question.history), None
    except Exception as err:  # one failed question is a result, not the end of the run
        answer, error = None, f"{type(err).__name__}: {err}"
    return Outcome(question, asked, answer, error, time.perf_counter() - started)


def run_questions(
    items: Sequence[tuple[Question, str]],
    ask: Ask,
    top_k: int,
    workers: int = 1,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> tuple[list[Outcome], bool]:
    """Ask every (question, text to ask); return the outcomes and whether Ctrl-C cut it short.

    An interrupted run returns what finished, so its report is valid, only partial.
    """
    outcomes: list[Outcome] = []

    def record(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)

    try:
        if workers <= 1:
            for question, asked in items:
                record(ask_one(ask, question, asked, top_k))
        else:
            _run_parallel(items, ask, top_k, workers, record)
    except KeyboardInterrupt:
        return outcomes, True
    return outcomes, False


def _run_parallel(
    items: Iterable[tuple[Question, str]],
    ask: Ask,
    top_k: int,
    workers: int,
    record: Callable[[Outcome], None],
) -> None:
    # At most 2 x workers questions in flight, so Ctrl-C has little queued work to cancel.
    pending: set[Future[Outcome]] = set()
    queue = iter(items)
    with ThreadPoolExecutor(workers) as pool:
        try:
            for question, asked in queue:
                pending.add(pool.submit(ask_one, ask, question, asked, top_k))
                if len(pending) >= 2 * workers:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        record(future.result())
            for future in pending:
                record(future.result())
        except KeyboardInterrupt:
            for future in pending:
                future.cancel()
            raise
