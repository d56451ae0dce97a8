"""Server-Sent Events: the answer stream of /v1/ask/stream and the OpenAI chunk stream."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from fastapi.sse import format_sse_event

from rag.payload import answer_payload, citation_payload
from rag.types import Answer

log = logging.getLogger("rag.service")

# Stream the answer clause by clause: each piece ends after Chinese or Latin punctuation.
_PIECE = re.compile(r".+?(?:[，。！？；：、,.!?;:]+|$)", re.S)


def answer_pieces(text: str) -> list[str]:
    """`text` cut into clause-sized pieces whose concatenation is `text`."""
    return [m.group(0) for m in _PIECE.finditer(text) if m.group(0)]


def sse(data: Any, event: str | None = None) -> bytes:
    if isinstance(data, str) and event is None:
        return format_sse_event(data_str=data)  # a literal such as OpenAI's [DONE]
    return format_sse_event(data_str=json.dumps(data, ensure_ascii=False), event=event)


def ask_events(answer: Callable[[], Answer]) -> Iterator[bytes]:
    """retrieval -> delta* -> answer, or an error event if answering fails midway."""
    try:
        result = answer()
    except Exception:
        log.exception("answering failed")
        yield sse({"detail": "answering failed; see the service log"}, "error")
        return
    # Built once: the first and last events carry the very same passages and citations.
    payload = answer_payload(result)
    yield sse({"passages": payload["passages"], "citations": payload["citations"]}, "retrieval")
    for piece in answer_pieces(result.answer):
        yield sse({"text": piece}, "delta")
    yield sse(payload, "answer")


def chat_completion(answer: Answer, model: str) -> dict[str, Any]:
    """A non-streamed OpenAI `chat.completion`, with the citations in an extra field."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.answer},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "citations": [citation_payload(c) for c in answer.citations],
        "abstained": answer.abstained,
    }


def chat_chunks(answer: Callable[[], Answer], model: str) -> Iterator[bytes]:
    """OpenAI `chat.completion.chunk` events; the final chunk carries the citations."""
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def chunk(delta: dict[str, str], finish: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return sse({**base, "choices": [choice], **extra})

    try:
        result = answer()
    except Exception:
        log.exception("answering failed")
        yield sse({"error": {"message": "answering failed; see the service log"}})
        return
    yield chunk({"role": "assistant", "content": ""})
    for piece in answer_pieces(result.answer):
        yield chunk({"content": piece})
    yield chunk(
        {},
        "stop",
        citations=[citation_payload(c) for c in result.citations],
        abstained=result.abstained,
    )
    yield sse("[DONE]")
