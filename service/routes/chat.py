"""OpenAI-compatible chat completions, so existing chat clients and SDKs can ask."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter
from fastapi.sse import EventSourceResponse

from service.deps import AskAccess, ChatCollection, ChatHistory, ChatQuestion, ChatTopK
from service.routes.ask import ERRORS, MAX_BODY
from service.schemas import ChatRequest
from service.streaming import chat_chunks, chat_completion

router = APIRouter(prefix="/v1", tags=["openai"], max_body_size=MAX_BODY, responses=ERRORS)


@router.post(
    "/chat/completions",
    response_model=None,
    responses={
        200: {
            "description": "A chat completion, or with `stream: true` its chunks as events",
            "content": {"application/json": {}, "text/event-stream": {}},
        }
    },
)
def chat_completions(
    _: AskAccess,
    body: ChatRequest,
    question: ChatQuestion,
    history: ChatHistory,
    top_k: ChatTopK,
    target: ChatCollection,
) -> dict[str, Any] | EventSourceResponse:
    """The last user message is the question, the messages before it its history (user
    messages with the assistant's replies), `model` the collection (see `GET /v1/models`);
    citations ride in a `citations` field."""
    pipeline, sign = target.pipeline, target.sign
    if body.stream:
        stream = partial(pipeline.ask_stream, question, top_k, history)
        chunks = chat_chunks(stream, body.model, sign)
        return EventSourceResponse(chunks, headers={"Cache-Control": "no-cache"})
    return chat_completion(pipeline.ask(question, top_k, history), body.model, sign)
