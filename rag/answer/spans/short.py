"""The short answer of a composed answer: the best span of its cited quotes, with offsets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rag.answer.spans.candidates import foldable
from rag.answer.spans.features import Question, prepare
from rag.answer.spans.select import MIN_SCORE, best_span
from rag.answer.spans.weights import WEIGHTS
from rag.types import Citation, ShortAnswer, Source

_QUOTE_PAIRS = frozenset({"“”", "「」", "『』", "《》", '""', "‘’"})


@dataclass(frozen=True)
class Quoted:
    """A citation with the source its quote was cut from, and where to look for the quote."""

    citation: Citation
    source: Source
    near: int  # the quote starts at or after this offset of `source.text`
    passage_id: int | None = None  # the passage the quote was cut from


def short_answer(
    question: str | Question,
    quoted: Sequence[Quoted],
    weights: Mapping[str, float] = WEIGHTS,
    min_score: float = MIN_SCORE,
) -> ShortAnswer | None:
    """The span answering `question` in the first cited quote that has one, or None.

    The span's quote offsets slice the quote back to its text, and its file offsets come
    from the source's offset map, so they lie inside the citation's.
    """
    q = question if isinstance(question, Question) else prepare(question)
    if q.kind == "why_how":
        return None
    for item in quoted:
        quote = item.citation.quote
        at = item.source.text.find(quote, item.near)
        if at < 0:
            continue
        # Sliced from the source's folded text, which composing has already folded.
        folded = foldable(item.source.text)[at : at + len(quote)]
        span = best_span(q, quote, weights, min_score, folded)
        if span is not None:
            placed = _placed(item, at, span.start, span.end)
            if placed is not None:
                return placed
    return None


def place_span(
    quoted: Sequence[Quoted], passage_id: int, start: int, end: int
) -> ShortAnswer | None:
    """`passage.text[start:end]` of passage `passage_id` as a short answer, if a quote cut
    from that passage holds it whole; else None."""
    for item in quoted:
        if item.passage_id != passage_id:
            continue
        quote = item.citation.quote
        at = item.source.text.find(quote, item.near)
        if at >= 0 and at <= start and end <= at + len(quote):
            placed = _placed(item, at, start - at, end - at)
            if placed is not None:
                return placed
    return None


def _placed(item: Quoted, at: int, start: int, end: int) -> ShortAnswer | None:
    """`quote[start:end]` of `item` (its quote at `at` in the source), trimmed of spaces and
    enclosing quote marks, with its offsets in the quote and in the file."""
    quote = item.citation.quote
    raw = quote[start:end]
    a = start + len(raw) - len(raw.lstrip())
    b = start + len(raw.rstrip())
    if b - a > 2 and quote[a] + quote[b - 1] in _QUOTE_PAIRS:
        a, b = a + 1, b - 1  # 质量月, not “质量月”: the marks are the text's, not the answer's
    if b <= a:
        return None
    c = item.citation
    file_start, file_end = item.source.quote_span(at + a, at + b)
    file_start = min(max(file_start, c.char_start), c.char_end)
    file_end = min(max(file_end, file_start), c.char_end)
    return ShortAnswer(quote[a:b], c.n, a, b, file_start, file_end)
