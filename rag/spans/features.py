"""Features of a candidate span: type fit, closeness to the question's words, anchors, shape."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rag.chunk import split_sentences
from rag.spans.candidates import Candidate, SpanKind, foldable
from rag.spans.question_type import QuestionType, question_type
from rag.tokenize import jieba_tokens

QUESTION_TYPES: tuple[QuestionType, ...] = ("who", "when", "where", "number", "what", "why_how")
SPAN_KINDS: tuple[SpanKind, ...] = (
    "person",
    "org",
    "place",
    "date",
    "number",
    "title",
    "noun",
    "phrase",
)
# The word (or phrase) that stands where the answer would: its neighbours in the question
# are the answer's neighbours in the text ("局长是谁" -> "局长支树平").
WH_WORD = re.compile(
    r"什么样的?|什么时候|什么地方|什么人|什么|哪一?[个位天年月日里儿些种国家座条部所]?|谁|"
    r"几[个项条月号日年次种名位岁]?|多少[个项条名位次种年钱人]?|多[大长高重远久]|何[时地处人种]?"
)
# Framing words: they make a question a question without saying what it is about.
FRAMING = re.compile(
    r"请问|是否|吗|呢|每年|每个|哪些|一般|通常|主要|分别|大约|大概|具体|被称为|称为|叫做|叫|是"
)
_DATE_WORD = re.compile(r"\d+[年月日号]")
_STOP = frozenset("的了是在和与及或于对把被将有也都就要会能从向以为由之其这那个等呀啊？?，,。")
_PUNCT = frozenset("，,。；;：:！!？?、（）()《》“”「」『』\"' \t")


@dataclass(frozen=True)
class Question:
    """A question prepared once for scoring every candidate against it."""

    text: str
    folded: str
    kind: QuestionType
    terms: Mapping[str, float]  # content words (folded) and their weights
    left: str  # folded question text just before the wh-word
    right: str  # and just after it


def prepare(question: str, weights: Mapping[str, float] | None = None) -> Question:
    """The question's type, content words and wh-word anchors.

    Args:
        question: the question as asked, in either script.
        weights: word weights (e.g. IDF from the index); by default a word weighs its
            length, capped at 4, since longer words are rarer.
    """
    folded = foldable(question).rstrip("？?。 ")
    wh = WH_WORD.search(folded)
    left = folded[: wh.start()] if wh else folded
    right = folded[wh.end() :] if wh else ""
    stripped = FRAMING.sub(" ", WH_WORD.sub(" ", folded))
    words = {w for w in jieba_tokens(stripped) if w not in _STOP and w.strip()}
    words |= set(_DATE_WORD.findall(stripped))  # jieba cuts "9月" into 9 and 月
    longer = {w for w in words if len(w) > 1}
    words = longer or words
    terms = {w: (weights.get(w, 1.0) if weights else float(min(len(w), 4))) for w in words}
    return Question(question, folded, question_type(question), terms, left, right)


def _anchor(a: str, b: str) -> int:
    """Length of the common suffix of `a` and `b` (at most 6)."""
    n = 0
    while n < min(len(a), len(b), 6) and a[len(a) - 1 - n] == b[len(b) - 1 - n]:
        n += 1
    return n


def _prefix(a: str, b: str) -> int:
    """Length of the common prefix of `a` and `b` (at most 6)."""
    n = 0
    while n < min(len(a), len(b), 6) and a[n] == b[n]:
        n += 1
    return n


def _strip_copula(text: str) -> str:
    return text.rstrip("是为了在由于：:，, ")


NAMES: tuple[str, ...] = (
    *(f"{q}:{k}" for q in QUESTION_TYPES for k in SPAN_KINDS),
    *(f"{q}:log_len" for q in QUESTION_TYPES),
    "overlap",
    "in_question",
    "near",
    "log_dist",
    "window15",
    "window40",
    "sentence_cover",
    "best_sentence",
    "left_anchor",
    "left_words",
    "right_words",
    "right_anchor",
    "log_len",
    "len1",
    "len_long",
    "boundary_left",
    "boundary_right",
    "first_in_sentence",
)
INDEX = {name: i for i, name in enumerate(NAMES)}


def phrase_regions(question: Question, folded: str, keep: int = 2) -> list[tuple[int, int]]:
    """The `keep` sentences of `folded` that hold the most question weight (where to look
    for candidates)."""
    scored = []
    for a, b in split_sentences(folded) or [(0, len(folded))]:
        seen = sum(w for t, w in question.terms.items() if t in folded[a:b])
        scored.append((-seen, a, b))
    scored.sort()
    # A sentence without any question word is looked into only when no sentence has one.
    kept = [t for t in scored[:keep] if t[0] < 0] or scored[:keep]
    return sorted((a, b) for _, a, b in kept)


def candidate_features(
    question: Question, folded: str, candidates: Sequence[Candidate]
) -> list[list[float]]:
    """One feature row per candidate of `folded` (the text, folded), in `NAMES` order."""
    total = sum(question.terms.values()) or 1.0
    hits: list[tuple[int, int, float]] = []
    for word, weight in question.terms.items():
        at = folded.find(word)
        while at >= 0:
            hits.append((at, at + len(word), weight))
            at = folded.find(word, at + 1)
    sentences = split_sentences(folded) or [(0, len(folded))]
    cover = []
    for a, b in sentences:
        seen = {folded[h[0] : h[1]] for h in hits if a <= h[0] and h[1] <= b}
        cover.append(sum(question.terms[w] for w in seen) / total)
    best = max(cover) if cover else 0.0
    qchars = {c for c in question.folded if c not in _STOP}
    rows = []
    for c in candidates:
        row = [0.0] * len(NAMES)
        text = folded[c.start : c.end]
        row[INDEX[f"{question.kind}:{c.kind}"]] = 1.0
        row[INDEX["overlap"]] = sum(ch in qchars for ch in text) / max(len(text), 1)
        row[INDEX["in_question"]] = float(text in question.folded)
        outside = [h for h in hits if h[1] <= c.start or h[0] >= c.end]
        dist = min((max(c.start - h[1], h[0] - c.end, 0) for h in outside), default=len(folded))
        row[INDEX["near"]] = 1.0 / (1.0 + dist)
        row[INDEX["log_dist"]] = math.log1p(dist) / 5
        for name, width in (("window15", 15), ("window40", 40)):
            seen = {
                folded[h[0] : h[1]]
                for h in outside
                if h[1] > c.start - width and h[0] < c.end + width
            }
            row[INDEX[name]] = sum(question.terms[w] for w in seen) / total
        s = next((i for i, (a, b) in enumerate(sentences) if a <= c.start < b), 0)
        row[INDEX["sentence_cover"]] = cover[s] if cover else 0.0
        row[INDEX["best_sentence"]] = float(bool(cover) and cover[s] == best and best > 0)
        before = _strip_copula(folded[max(0, c.start - 8) : c.start])
        after = folded[c.end : c.end + 8]
        left = _strip_copula(question.left)
        row[INDEX["left_anchor"]] = _anchor(left, before) / 3 if left and before else 0.0
        row[INDEX["right_anchor"]] = (
            _prefix(question.right.lstrip("是的"), after.lstrip("是的")) / 3
            if question.right
            else 0.0
        )
        # The question's words on the wh-word's left should precede the answer in the
        # text, and those on its right follow it ("谁主持了X" -> "梅克保主持会议").
        row[INDEX["left_words"]] = (
            sum(
                question.terms[folded[h[0] : h[1]]]
                for h in outside
                if c.start - 12 <= h[0] and h[1] <= c.start and folded[h[0] : h[1]] in question.left
            )
            / total
        )
        row[INDEX["right_words"]] = (
            sum(
                question.terms[folded[h[0] : h[1]]]
                for h in outside
                if c.end <= h[0] < c.end + 12 and folded[h[0] : h[1]] in question.right
            )
            / total
        )
        row[INDEX["log_len"]] = math.log(len(text))
        row[INDEX[f"{question.kind}:log_len"]] = math.log(len(text))
        row[INDEX["len1"]] = float(len(text) == 1)
        row[INDEX["len_long"]] = float(len(text) > 10)
        row[INDEX["boundary_left"]] = float(c.start == 0 or folded[c.start - 1] in _PUNCT)
        row[INDEX["boundary_right"]] = float(c.end == len(folded) or folded[c.end] in _PUNCT)
        row[INDEX["first_in_sentence"]] = float(c.start == sentences[s][0])
        rows.append(row)
    return rows
