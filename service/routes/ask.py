"""Asking and searching: /v1/ask, /v1/ask/stream and /v1/search."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from fastapi import APIRouter
from fastapi.sse import EventSourceResponse

from rag.wire import ask_payload, search_payload
from service.deps import (
    AskAccess,
    AskBody,
    AskCollection,
    SearchAccess,
    SearchBody,
    SearchCollection,
    history_turns,
)
from service.schemas import AnswerOut, ErrorOut, InvalidOut, SearchOut
from service.streaming import ask_events

# JSON bodies here are a question, a number and the conversation's history (at most
# RAG_MAX_HISTORY_CHARS, 20,000 by default: up to 120 KB as JSON \u escapes): anything
# bigger is refused unread (413).
MAX_BODY = 192 * 1024

# 400: a body that is not even text (invalid UTF-8), before it can be parsed as JSON.
ERRORS: dict[int | str, dict[str, Any]] = {
    **{code: {"model": ErrorOut} for code in (400, 401, 403, 404, 413, 429, 503)},
    422: {"model": InvalidOut},
}

router = APIRouter(prefix="/v1", tags=["ask"], max_body_size=MAX_BODY, responses=ERRORS)


@router.post("/ask", response_model=AnswerOut)
def ask(_: AskAccess, body: AskBody, target: AskCollection) -> dict[str, Any]:
    """Answer a question from a collection's documents, citing file, paragraph and offsets.

    A follow-up sent with the conversation's `history` is answered as its
    `standalone_question`.
    """
    history = history_turns(body.history)
    return ask_payload(target.pipeline, body.question, body.top_k, target.sign, history)


@router.post(
    "/ask/stream",
    response_model=None,
    responses={
        200: {
            "description": "Events retrieval, delta..., answer (see docs/api.md)",
            "content": {"text/event-stream": {}},
        }
    },
)
def ask_stream(_: AskAccess, body: AskBody, target: AskCollection) -> EventSourceResponse:
    """The answer as Server-Sent Events: passages first, then the text, then the answer."""
    history = history_turns(body.history)
    stream = partial(target.pipeline.ask_stream, body.question, body.top_k, history)
    events = ask_events(stream, target.sign)
    return EventSourceResponse(events, headers={"Cache-Control": "no-cache"})


@router.post("/search", response_model=SearchOut)
def search(_: SearchAccess, body: SearchBody, target: SearchCollection) -> dict[str, Any]:
    """Passages of a collection for a query, best first, without composing an answer."""
    started = time.perf_counter()
    retrieval = target.pipeline.search(body.query, body.top_k)
    timings = {**retrieval.timings_ms, "total": round((time.perf_counter() - started) * 1000, 3)}
    return search_payload(retrieval, timings)
