"""The JSON shape of answers and passages, shared by `rag ask --json` and `POST /v1/ask`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rag.types import Answer, Citation, ScoredPassage, ShortAnswer, Source

if TYPE_CHECKING:
    from rag.pipeline import Pipeline


def source_payload(source: Source) -> dict[str, Any]:
    return {
        "file": source.file,
        "paragraph": source.paragraph,
        "line_start": source.line_start,
        "line_end": source.line_end,
        "char_start": source.char_start,
        "char_end": source.char_end,
    }


def passage_payload(scored: ScoredPassage) -> dict[str, Any]:
    return {
        "id": scored.passage.id,
        "text": scored.passage.text,
        "score": scored.score,
        "sources": [source_payload(s) for s in scored.passage.sources],
    }


def citation_payload(citation: Citation) -> dict[str, Any]:
    return {
        "n": citation.n,
        "file": citation.file,
        "paragraph": citation.paragraph,
        "line_start": citation.line_start,
        "line_end": citation.line_end,
        "char_start": citation.char_start,
        "char_end": citation.char_end,
        "quote": citation.quote,
        "passage_id": citation.passage_id,
        "also_in": [{"file": f, "paragraph": p} for f, p in citation.also_in],
    }


def short_answer_payload(short: ShortAnswer | None) -> dict[str, Any] | None:
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


def answer_payload(answer: Answer) -> dict[str, Any]:
    return {
        "question": answer.question,
        "answer": answer.answer,
        "abstained": answer.abstained,
        "citations": [citation_payload(c) for c in answer.citations],
        "passages": [passage_payload(p) for p in answer.passages],
        "timings_ms": dict(answer.timings_ms),
        "composer": answer.composer,
        "unsupported": list(answer.unsupported),
        "note": answer.note,
        "short_answer": short_answer_payload(answer.short_answer),
    }


def ask_payload(pipeline: Pipeline, question: str, top_k: int) -> dict[str, Any]:
    """What `POST /v1/ask` answers to a valid question; `rag eval` asks through it too."""
    return answer_payload(pipeline.ask(question, top_k))
