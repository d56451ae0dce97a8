"""The wire format: the JSON of answers, citations, passages and sources, defined once.

`rag ask --json`, `rag search --json`, the HTTP API (`service/schemas.py` documents this same
shape for OpenAPI, and a test holds the two together), the evaluator's predictions and the
widget all read or write these dicts. A location (file, paragraph, lines, offsets, page,
sheet, OCR confidence) is written from `rag.types.Location`'s fields, for sources and
citations alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from rag.types import Answer, Citation, Location, ScoredPassage, ShortAnswer, Source, Turn

if TYPE_CHECKING:
    from rag.pipeline import Pipeline
    from rag.retrieve.retriever import Retrieval

# The fields of a location on the wire, in order.
LOCATION_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Location))


def location_payload(location: Location) -> dict[str, Any]:
    return {name: getattr(location, name) for name in LOCATION_FIELDS}


# Signs a citation for the HTTP service (its `token`, see service/citation_tokens.py);
# the CLI has no tokens to give, and its citations carry `token: null`.
CitationSigner = Callable[[Citation], str]


def source_payload(source: Source) -> dict[str, Any]:
    return location_payload(source)


def passage_payload(scored: ScoredPassage) -> dict[str, Any]:
    return {
        "id": scored.passage.id,
        "text": scored.passage.text,
        "score": scored.score,
        "sources": [source_payload(s) for s in scored.passage.sources],
    }


def citation_payload(citation: Citation, sign: CitationSigner | None = None) -> dict[str, Any]:
    return {
        "n": citation.n,
        **location_payload(citation),
        "quote": citation.quote,
        "passage_id": citation.passage_id,
        "also_in": [{"file": f, "paragraph": p} for f, p in citation.also_in],
        "token": None if sign is None else sign(citation),
    }


def short_answer_payload(short: ShortAnswer | None) -> dict[str, Any] | None:
    """The answer span itself (issue 17): its text, the citation whose quote holds it, its
    offsets in that quote and in the file; None when the answer has none."""
    if short is None:
        return None
    return {
        "text": short.text,
        "citation": short.citation,
        "quote_start": short.quote_start,
        "quote_end": short.quote_end,
        "char_start": short.char_start,
        "char_end": short.char_end,
    }


def answer_payload(answer: Answer, sign: CitationSigner | None = None) -> dict[str, Any]:
    return {
        "question": answer.question,
        "answer": answer.answer,
        "abstained": answer.abstained,
        "citations": [citation_payload(c, sign) for c in answer.citations],
        "passages": [passage_payload(p) for p in answer.passages],
        "timings_ms": dict(answer.timings_ms),
        "composer": answer.composer,
        "unsupported": list(answer.unsupported),
        "note": answer.note,
        # The question as searched and answered: rewritten from the conversation's history.
        "standalone_question": answer.standalone_question,
        "short_answer": short_answer_payload(answer.short_answer),
    }


def search_payload(
    retrieval: Retrieval, timings_ms: dict[str, float] | None = None
) -> dict[str, Any]:
    """What `POST /v1/search` and `rag search --json` return."""
    return {
        "passages": [passage_payload(p) for p in retrieval.passages],
        "timings_ms": dict(retrieval.timings_ms if timings_ms is None else timings_ms),
    }


def ask_payload(
    pipeline: Pipeline,
    question: str,
    top_k: int,
    sign: CitationSigner | None = None,
    history: Sequence[Turn] = (),
) -> dict[str, Any]:
    """What `POST /v1/ask` answers to a valid question; `rag eval` asks through it too."""
    return answer_payload(pipeline.ask(question, top_k, history), sign)


def turns_from_payload(rows: Sequence[dict[str, Any]]) -> tuple[Turn, ...]:
    """`history` as the wire writes it (`[{"question", "answer"}]`) as turns.

    Raises:
        ValueError: a row is not an object with string `question` and `answer`.
    """
    turns = []
    for n, row in enumerate(rows, 1):
        question, answer = (row.get(k) if isinstance(row, dict) else None for k in TURN_FIELDS)
        if not isinstance(question, str) or not isinstance(answer, str):
            raise ValueError(f"history turn {n} needs a string question and answer")
        turns.append(Turn(question, answer))
    return tuple(turns)


TURN_FIELDS = ("question", "answer")
