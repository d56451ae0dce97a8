"""Choosing the short answer: candidate spans scored by a linear model over their features."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from rag.answer.spans.candidates import (
    Candidate,
    SpanKind,
    balanced,
    find_candidates,
    foldable,
)
from rag.answer.spans.features import (
    NAMES,
    Edges,
    Question,
    candidate_features,
    phrase_regions,
    prepare,
    word_boundaries,
)
from rag.answer.spans.question_type import QuestionType
from rag.answer.spans.weights import WEIGHTS

# Below this probability-like score no span fits: the sentence stays the answer.
MIN_SCORE = 0.05
SENTENCES_SEARCHED = 2


@dataclass(frozen=True)
class Span:
    """`text[start:end]` of the text it was chosen from, its kind and its score (0-1)."""

    start: int
    end: int
    kind: SpanKind
    score: float


def candidates_for(
    question: Question, text: str, folded: str, keep: int = SENTENCES_SEARCHED
) -> tuple[list[Candidate], Edges]:
    """The candidate spans of `text` (`folded` is its folded form) worth scoring, and the
    offsets of its word boundaries there, with the classes of the words around them.

    Only the `keep` sentences holding the most question words are looked into (the answer
    is nearly always there, and a quote grown with its neighbours is long). Phrases are
    candidates for every kind of question: "谁创立的" is answered by "香港天主教母佑会",
    "在哪里" by "沿岸碎波带", which no name tag finds.
    """
    out = []
    regions = phrase_regions(question, folded, keep=keep)
    for lo, hi in regions:
        out += [
            Candidate(lo + c.start, lo + c.end, c.kind)
            for c in find_candidates(text[lo:hi], folded=folded[lo:hi])
            if folded[lo + c.start : lo + c.end].strip()
            and balanced(folded[lo + c.start : lo + c.end])
        ]
    return out, word_boundaries(folded, regions)


def score_spans(
    question: Question,
    text: str,
    weights: Mapping[str, float] = WEIGHTS,
    folded: str | None = None,
) -> list[Span]:
    """Every candidate span of `text`, best first, scored softmax-style over the candidates.

    `folded` is `foldable(text)` when the caller has it (folding is the slow part).
    """
    if folded is None or len(folded) != len(text):
        folded = foldable(text)
    candidates, boundaries = candidates_for(question, text, folded)
    if not candidates:
        return []
    rows = np.asarray(candidate_features(question, folded, candidates, boundaries))
    logits = rows @ np.asarray([weights.get(name, 0.0) for name in NAMES])
    exp = np.exp(logits - logits.max())
    share = exp / exp.sum()
    spans = [Span(c.start, c.end, c.kind, float(p)) for c, p in zip(candidates, share, strict=True)]
    spans.sort(key=lambda s: (-s.score, s.start))
    return spans


def best_span(
    question: str | Question,
    text: str,
    weights: Mapping[str, float] = WEIGHTS,
    min_score: float = MIN_SCORE,
    folded: str | None = None,
) -> Span | None:
    """The span of `text` that answers `question`, or None for a why/how question or none fits.

    Args:
        question: the question (any script), or one already `prepare`d.
        text: where to look (a sentence, a quote, a whole context).
        weights: the scorer's weights by feature name.
        min_score: the least share of the candidates' probability mass the best must have.
        folded: `text` folded, when the caller has it.
    """
    q = question if isinstance(question, Question) else prepare(question)
    if q.kind == "why_how":
        return None
    spans = score_spans(q, text, weights, folded)
    if not spans or spans[0].score < min_score:
        return None
    return spans[0]


# The kinds of span that answer each question type outright ("what" only by a quoted name).
EXPECTED: dict[QuestionType, frozenset[SpanKind]] = {
    "who": frozenset({"person", "org"}),
    "when": frozenset({"date"}),
    "where": frozenset({"place", "org"}),
    "number": frozenset({"number", "date"}),
    "what": frozenset({"title"}),
    "why_how": frozenset(),
}


def anchor_term(question: Question, terms: Iterable[str]) -> str | None:
    """The question word nearest its wh-word: in the text the answer stands next to it."""
    wh_start, wh_end = len(question.left), len(question.folded) - len(question.right)
    # Ties go to the word after the wh-word (the category in "哪些意识"), then by the word
    # itself: `terms` may come from a set, whose order changes from one process to another.
    best: tuple[int, int, str] | None = None
    for term in terms:
        at = question.folded.find(term)
        if at < 0:
            continue
        end = at + len(term)
        gap = wh_start - end if end <= wh_start else at - wh_end
        key = (abs(gap), int(end <= wh_start), term)
        if best is None or key < best:
            best = key
    return best[2] if best else None


def typed_answer_near(
    question: Question, text: str, anchor: str, within: int = 6, folded: str | None = None
) -> bool:
    """Whether `text` holds a span of the asked type within `within` characters of `anchor`.

    Such a sentence answers the question even when it repeats few of its words
    ("梅克保主持会议" for "谁主持了...座谈会？"). Only names, dates, numbers and titles are
    looked at (no phrases), which keeps it cheap enough to run on a few sentences.
    """
    kinds = EXPECTED[question.kind]
    if folded is None or len(folded) != len(text):
        folded = foldable(text)
    at = folded.find(anchor)
    if not kinds or at < 0:
        return False
    spots = []
    while at >= 0:
        spots.append((at, at + len(anchor)))
        at = folded.find(anchor, at + 1)
    # Dates, numbers and titles are found by patterns alone: no need to cut words.
    names = not kinds <= {"date", "number", "title"}
    for c in find_candidates(text, phrases_in=(), words=names, folded=folded):
        if c.kind not in kinds or folded[c.start : c.end] in question.folded:
            continue
        if any(
            (c.end <= a and a - c.end <= within) or (b <= c.start and c.start - b <= within)
            for a, b in spots
        ):
            return True
    return False


def span_text(text: str, span: Span) -> str:
    return text[span.start : span.end]
