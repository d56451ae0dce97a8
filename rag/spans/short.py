"""The short answer of a composed answer: the best span of its cited quotes, with offsets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rag.spans.features import Question, prepare
from rag.spans.select import MIN_SCORE, best_span
from rag.spans.weights import WEIGHTS
from rag.types import Citation, ShortAnswer, Source

_QUOTE_PAIRS = frozenset({"“”", "「」", "『』", "《》", '""', "‘’"})


@dataclass(frozen=True)
class Quoted:
    """A citation with the source its quote was cut from, and where to look for the quote."""

    citation: Citation
    source: Source
    near: int  # the quote starts at or after this offset of `source.text`


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
        span = best_span(q, quote, weights, min_score)
        if span is None:
            continue
        raw = quote[span.start : span.end]
        a = span.start + len(raw) - len(raw.lstrip())
        b = span.start + len(raw.rstrip())
        if b - a > 2 and quote[a] + quote[b - 1] in _QUOTE_PAIRS:
            a, b = a + 1, b - 1  # 质量月, not “质量月”: the marks are the text's, not the answer's
        at = item.source.text.find(quote, item.near)
        if b <= a or at < 0:
            continue
        c = item.citation
        file_start, file_end = item.source.quote_span(at + a, at + b)
        file_start = min(max(file_start, c.char_start), c.char_end)
        file_end = min(max(file_end, file_start), c.char_end)
        return ShortAnswer(quote[a:b], c.n, a, b, file_start, file_end)
    return None
