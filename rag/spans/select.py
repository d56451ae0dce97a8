"""Choosing the short answer: candidate spans scored by a linear model over their features."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from rag.spans.candidates import SpanKind, find_candidates, foldable
from rag.spans.features import NAMES, Question, candidate_features, phrase_regions, prepare
from rag.spans.weights import WEIGHTS

# Below this probability-like score no span fits: the sentence stays the answer.
MIN_SCORE = 0.05


@dataclass(frozen=True)
class Span:
    """`text[start:end]` of the text it was chosen from, its kind and its score (0-1)."""

    start: int
    end: int
    kind: SpanKind
    score: float


def score_spans(
    question: Question, text: str, weights: Mapping[str, float] = WEIGHTS
) -> list[Span]:
    """Every candidate span of `text`, best first, scored softmax-style over the candidates."""
    folded = foldable(text)
    regions = phrase_regions(question, folded)
    candidates = [c for c in find_candidates(text, regions) if folded[c.start : c.end].strip()]
    if not candidates:
        return []
    rows = candidate_features(question, folded, candidates)
    w = [weights.get(name, 0.0) for name in NAMES]
    logits = [sum(x * y for x, y in zip(row, w, strict=True)) for row in rows]
    top = max(logits)
    exp = [math.exp(v - top) for v in logits]
    norm = sum(exp)
    spans = [Span(c.start, c.end, c.kind, e / norm) for c, e in zip(candidates, exp, strict=True)]
    spans.sort(key=lambda s: (-s.score, s.start))
    return spans


def best_span(
    question: str | Question,
    text: str,
    weights: Mapping[str, float] = WEIGHTS,
    min_score: float = MIN_SCORE,
) -> Span | None:
    """The span of `text` that answers `question`, or None for a why/how question or none fits.

    Args:
        question: the question (any script), or one already `prepare`d.
        text: where to look (a sentence, a quote, a whole context).
        weights: the scorer's weights by feature name.
        min_score: the least share of the candidates' probability mass the best must have.
    """
    q = question if isinstance(question, Question) else prepare(question)
    if q.kind == "why_how":
        return None
    spans = score_spans(q, text, weights)
    if not spans or spans[0].score < min_score:
        return None
    return spans[0]


def span_text(text: str, span: Span) -> str:
    return text[span.start : span.end]
