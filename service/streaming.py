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

from rag.types import Answer, StreamStart
from rag.wire import (
    CitationSigner,
    answer_payload,
    citation_payload,
    passage_payload,
    short_answer_payload,
)

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


AnswerStream = Iterator[StreamStart | str | Answer]


def ask_events(stream: Callable[[], AnswerStream], sign: CitationSigner) -> Iterator[bytes]:
    """retrieval -> delta* -> answer, or an error event if answering fails midway.

    The deltas of an LLM answer are the model's tokens, forwarded as they arrive; the
    extractive answer comes whole and is cut into clause-sized deltas. Either way the answer
    event carries the checked answer, which replaces the deltas.
    """
    streamed = False
    try:
        for item in stream():
            if isinstance(item, StreamStart):
                start = {
                    "passages": [passage_payload(p) for p in item.passages],
                    "citations": [citation_payload(c, sign) for c in item.citations],
                }
                yield sse(start, "retrieval")
            elif isinstance(item, str):
                streamed = True
                yield sse({"text": item}, "delta")
            else:
                if not streamed:
                    for piece in answer_pieces(item.answer):
                        yield sse({"text": piece}, "delta")
                yield sse(answer_payload(item, sign), "answer")
    except Exception:
        log.exception("answering failed")
        yield sse({"detail": "answering failed; see the service log"}, "error")


def answer_extras(answer: Answer, sign: CitationSigner) -> dict[str, Any]:
    """What an OpenAI completion carries besides the text: citations and how it was made."""
    return {
        "citations": [citation_payload(c, sign) for c in answer.citations],
        "abstained": answer.abstained,
        "composer": answer.composer,
        "unsupported": list(answer.unsupported),
        "note": answer.note,
        "standalone_question": answer.standalone_question,
        "short_answer": short_answer_payload(answer.short_answer),
    }


def chat_completion(answer: Answer, model: str, sign: CitationSigner) -> dict[str, Any]:
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
        **answer_extras(answer, sign),
    }


def chat_chunks(
    stream: Callable[[], AnswerStream], model: str, sign: CitationSigner
) -> Iterator[bytes]:
    """OpenAI `chat.completion.chunk` events; the final chunk carries the citations.

    The content is the model's tokens as they arrive (or the extractive answer in pieces).
    The final chunk also carries the checked text as `answer`. If the model failed midway,
    the content goes on with the note and the extractive answer that replaces it.
    """
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def chunk(delta: dict[str, str], finish: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return sse({**base, "choices": [choice], **extra})

    streamed = False
    try:
        for item in stream():
            if isinstance(item, StreamStart):
                yield chunk({"role": "assistant", "content": ""})
            elif isinstance(item, str):
                streamed = True
                yield chunk({"content": item})
            else:
                if not streamed:
                    pieces = answer_pieces(item.answer)
                elif item.composer != "llm":  # the model failed midway: say so, then replace
                    pieces = [f"\n\n[{item.note}]\n\n", *answer_pieces(item.answer)]
                else:
                    pieces = []
                for piece in pieces:
                    yield chunk({"content": piece})
                yield chunk({}, "stop", answer=item.answer, **answer_extras(item, sign))
                yield sse("[DONE]")
    except Exception:
        log.exception("answering failed")
        yield sse({"error": {"message": "answering failed; see the service log"}})
