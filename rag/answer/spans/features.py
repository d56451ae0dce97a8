"""Features of a candidate span: type fit, closeness to the question's words, anchors, shape."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rag.answer.spans.candidates import UNIT, Candidate, SpanKind, foldable, tagged_words
from rag.answer.spans.question_type import QuestionType, question_type
from rag.text.sentences import split_sentences
from rag.text.tokenize import jieba_tokens

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
    "list",
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
# The unit a number question asks in ("多少平方公里" -> 平方公里): the answer carries it.
_ASKED_UNIT = re.compile(rf"(?:多少|几)({UNIT})")
# "哪些/有哪几/几种" ask for several things: an enumeration may be the answer.
_PLURAL = re.compile(r"哪些|哪几|几[种个项类]|有什么|分别")
# The category asked within: the noun right after the wh-word ("什么龙科", "哪个队伍").
_CATEGORY_AFTER = re.compile(r"(?:什么|哪一?[个些种类位家所座条部]?)$")
_NOUN_TAGS = frozenset({"n", "nr", "ns", "nt", "nz", "vn", "ng", "j", "l"})
# Characters before which an answer usually starts: function words and punctuation.
_BEFORE = frozenset("为是的与和由在被了及或把将从于对到向即称叫乃")
_LOOSE = frozenset("的了是在和与及或于对把被将也都就要会能从向以为由之其这那着过呢吗而且并但地得")
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
    right: str  # and just after it (after the unit asked, if any)
    unit: str = ""  # the unit a number question asks in ("平方公里"), else ""
    category: str = ""  # the noun after the wh-word ("龙科" in "什么龙科"), else ""
    plural: bool = False  # asks for several things ("哪些")


@lru_cache(maxsize=256)
def prepare(question: str, weights: Mapping[str, float] | None = None) -> Question:
    """The question's type, content words and wh-word anchors.

    Args:
        question: the question as asked, in either script.
        weights: word weights (e.g. IDF from the index); by default a word weighs its
            length, capped at 4, since longer words are rarer. Must be hashable to be
            given (cached: the composer prepares a question for sentence choice, then
            for the short answer).
    """
    folded = foldable(question).rstrip("？?。 ")
    wh = WH_WORD.search(folded)
    left = folded[: wh.start()] if wh else folded
    right = folded[wh.end() :] if wh else ""
    unit_m = _ASKED_UNIT.search(folded)
    unit = unit_m.group(1) if unit_m else ""
    if wh and unit_m and unit_m.start() <= wh.start() < unit_m.end():
        right = folded[max(wh.end(), unit_m.end()) :]
    category = ""
    at = 0
    for a, b, tag in tagged_words(folded):
        if a == at and b > a and _CATEGORY_AFTER.search(folded[:a]) and tag in _NOUN_TAGS:
            category = folded[a:b]
            break
        at = b
    stripped = FRAMING.sub(" ", WH_WORD.sub(" ", folded))
    words = {w for w in jieba_tokens(stripped) if w not in _STOP and w.strip()}
    words |= set(_DATE_WORD.findall(stripped))  # jieba cuts "9月" into 9 and 月
    longer = {w for w in words if len(w) > 1}
    words = longer or words
    terms = {w: (weights.get(w, 1.0) if weights else float(min(len(w), 4))) for w in words}
    kind = question_type(question)
    plural = bool(_PLURAL.search(folded))
    return Question(question, folded, kind, terms, left, right, unit, category, plural)


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


# Coarse classes of jieba's part-of-speech tags, for the words around a candidate.
WORD_CLASSES = ("noun", "name", "verb", "function", "number", "edge", "other")
WORD_SIDES = ("before", "after", "first", "last")
_TAG_CLASS = {
    **dict.fromkeys(("n", "vn", "an", "ng", "nz", "j", "l", "i", "eng"), "noun"),
    **dict.fromkeys(("nr", "nrfg", "nrt", "ns", "nt"), "name"),
    **dict.fromkeys(("v", "vd", "vg", "vi", "vq", "a", "ad", "ag", "d"), "verb"),
    **dict.fromkeys(("u", "uj", "ul", "uz", "ug", "uv", "ud", "p", "c", "r", "y", "e"), "function"),
    **dict.fromkeys(("m", "mq", "q", "t", "tg"), "number"),
    "x": "edge",
}


def word_class(tag: str, word: str) -> str:
    """The coarse class of a word from its tag; punctuation and white space are an edge."""
    if not word.strip() or word[0] in _PUNCT:
        return "edge"
    return _TAG_CLASS.get(tag, "other")


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
    "unit_match",
    "unit_missing",
    "ordinal",
    "category_suffix",
    "category_inside",
    "plural_list",
    "list_balance",
    "word_start",
    "word_end",
    "after_function",
    "loose_start",
    "loose_end",
    "left_chars",
    "right_chars",
    "right_next",
    *(f"{q}:log_len2" for q in QUESTION_TYPES),
    # The part of speech of the words on either side of the candidate and of its own first
    # and last words: "华盛顿" before "海军工厂" (a noun) is cut short, "为安东尼" starts
    # with a preposition (`word_classes`).
    *(f"{side}:{cls}" for side in WORD_SIDES for cls in WORD_CLASSES),
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


Edges = Mapping[int, tuple[str, str]]


def word_boundaries(folded: str, regions: Sequence[tuple[int, int]]) -> Edges:
    """Where jieba's words start or end in the `regions` of `folded` (cached per region):
    each offset with the classes (`word_class`) of the word ending there and of the word
    starting there ("edge" at a region's ends)."""
    out: dict[int, tuple[str, str]] = {}
    for lo, hi in regions:
        for a, b, tag in tagged_words(folded[lo:hi]):
            cls = word_class(tag, folded[lo + a : lo + b])
            out[lo + a] = (out.get(lo + a, ("edge", "edge"))[0], cls)
            out[lo + b] = (cls, out.get(lo + b, ("edge", "edge"))[1])
    return out


def _list_balance(text: str) -> float:
    """How alike the items of an enumeration are in length (1: all the same)."""
    items = re.split(r"、|和|及|与|或", text)
    if len(items) < 2:
        return 0.0
    mid = sorted(len(i) for i in items)[len(items) // 2]
    gap = abs(len(items[0]) - mid) + abs(len(items[-1]) - mid)
    return 1.0 / (1.0 + gap)


def candidate_features(
    question: Question,
    folded: str,
    candidates: Sequence[Candidate],
    boundaries: Edges | None = None,
) -> np.ndarray:
    """One feature row per candidate of `folded` (the text, folded), in `NAMES` order.

    `boundaries` are the offsets where jieba's words start or end, with the classes of
    the words on either side (`word_boundaries`).
    The features over the question's words found in the text are computed for all
    candidates at once (candidates x hits arrays): a quote has hundreds of candidates.
    """
    boundaries = boundaries or {}
    total = sum(question.terms.values()) or 1.0
    words = list(question.terms)
    hit_list: list[tuple[int, int, int]] = []  # start, end, index into `words`
    for w, word in enumerate(words):
        at = folded.find(word)
        while at >= 0:
            hit_list.append((at, at + len(word), w))
            at = folded.find(word, at + 1)
    sentences = split_sentences(folded) or [(0, len(folded))]
    cover = []
    for a, b in sentences:
        seen = {w for h0, h1, w in hit_list if a <= h0 and h1 <= b}
        cover.append(sum(question.terms[words[w]] for w in seen) / total)
    n = len(candidates)
    out = np.zeros((n, len(NAMES)))
    if not n:
        return out
    cs = np.fromiter((c.start for c in candidates), dtype=np.int64, count=n)[:, None]
    ce = np.fromiter((c.end for c in candidates), dtype=np.int64, count=n)[:, None]
    if hit_list:
        hits = np.asarray(hit_list, dtype=np.int64)
        hs, he, hw_index = hits[:, 0][None, :], hits[:, 1][None, :], hits[:, 2]
        weight = np.asarray([question.terms[w] for w in words])
        hw = weight[hw_index]
        onehot = np.zeros((len(hit_list), len(words)))
        onehot[np.arange(len(hit_list)), hw_index] = 1.0
        outside = (he <= cs) | (hs >= ce)
        gap = np.maximum(np.maximum(cs - he, hs - ce), 0)
        dist = np.where(outside, gap, len(folded)).min(axis=1).astype(float)
        for name, width in (("window15", 15), ("window40", 40)):
            near = outside & (he > cs - width) & (hs < ce + width)
            out[:, INDEX[name]] = ((near.astype(float) @ onehot) > 0) @ weight / total
        # The question's words on the wh-word's left should precede the answer in the
        # text, and those on its right follow it ("谁主持了X" -> "梅克保主持会议").
        in_left = np.asarray([words[w] in question.left for w in hw_index])[None, :]
        in_right = np.asarray([words[w] in question.right for w in hw_index])[None, :]
        left = outside & (hs >= cs - 12) & (he <= cs) & in_left
        right = outside & (hs >= ce) & (hs < ce + 12) & in_right
        out[:, INDEX["left_words"]] = left.astype(float) @ hw / total
        out[:, INDEX["right_words"]] = right.astype(float) @ hw / total
    else:
        dist = np.full(n, float(len(folded)))
    out[:, INDEX["near"]] = 1.0 / (1.0 + dist)
    out[:, INDEX["log_dist"]] = np.log1p(dist) / 5
    out += _own_features(question, folded, candidates, cs[:, 0], ce[:, 0], sentences, cover)
    out += _edge_features(question, folded, cs[:, 0], boundaries, start=True)
    out += _edge_features(question, folded, ce[:, 0], boundaries, start=False)
    return out


def _own_features(
    question: Question,
    folded: str,
    candidates: Sequence[Candidate],
    start: np.ndarray,
    stop: np.ndarray,
    sentences: Sequence[tuple[int, int]],
    cover: Sequence[float],
) -> np.ndarray:
    """The features of each candidate's own text (`folded[start:stop]`) and of the sentence
    it starts in."""
    n, col = len(candidates), INDEX
    out = np.zeros((n, len(NAMES)))
    texts = [folded[c.start : c.end] for c in candidates]
    length = stop - start
    rows = np.arange(n)
    kind_col = {k: col[f"{question.kind}:{k}"] for k in SPAN_KINDS}
    out[rows, np.fromiter((kind_col[c.kind] for c in candidates), np.int64, n)] = 1.0
    # Characters of the text that are among the question's, counted up to each offset.
    qchars = {ch for ch in question.folded if ch not in _STOP}
    counted = np.zeros(len(folded) + 1, dtype=np.int64)
    counted[1:] = np.cumsum([ch in qchars for ch in folded])
    out[:, col["overlap"]] = (counted[stop] - counted[start]) / length
    out[:, col["in_question"]] = [t in question.folded for t in texts]
    sentence_starts = np.asarray([a for a, _ in sentences])
    sentence = np.searchsorted(sentence_starts, start, side="right") - 1
    covered = np.asarray(cover)[sentence]
    best = max(cover)
    out[:, col["sentence_cover"]] = covered
    out[:, col["best_sentence"]] = (covered == best) & (best > 0)
    out[:, col["first_in_sentence"]] = start == sentence_starts[sentence]
    log_len = np.fromiter(map(math.log, length.tolist()), dtype=float, count=n)  # libm's log
    out[:, col["log_len"]] = log_len
    out[:, col[f"{question.kind}:log_len"]] = log_len
    out[:, col[f"{question.kind}:log_len2"]] = log_len * log_len / 4
    out[:, col["len1"]] = length == 1
    out[:, col["len_long"]] = length > 10
    out[:, col["loose_start"]] = [t[0] in _LOOSE for t in texts]
    out[:, col["loose_end"]] = [t[-1] in _LOOSE for t in texts]
    if question.unit:
        # "70.99" before "平方公里" leaves out the unit the question asked in.
        out[:, col["unit_match"]] = [t.endswith(question.unit) for t in texts]
    if "第几" in question.folded:
        out[:, col["ordinal"]] = [t[0] == "第" for t in texts]
    if question.category:
        out[:, col["category_suffix"]] = [t[-1] == question.category[-1] for t in texts]
        out[:, col["category_inside"]] = [question.category in t for t in texts]
    for i, c in enumerate(candidates):
        if c.kind == "list":
            out[i, col["plural_list"]] = question.plural
            out[i, col["list_balance"]] = _list_balance(texts[i])
    return out


def _edge_features(
    question: Question, folded: str, offsets: np.ndarray, boundaries: Edges, start: bool
) -> np.ndarray:
    """The features of what lies before each candidate (`start`: `offsets` are the
    candidates' starts) or after it (their ends). They depend on the offset alone, and a
    quote's hundreds of candidates have far fewer distinct offsets: each is worked out once."""
    distinct, which = np.unique(offsets, return_inverse=True)
    rows = np.zeros((len(distinct), len(NAMES)))
    side = _Before(question) if start else _After(question)
    for row, at in zip(rows, distinct.tolist(), strict=True):
        for index, value in side.features(folded, at, boundaries):
            row[index] = value
    return rows[which]


_NO_EDGE = ("other", "other")  # inside a word: neither side is known


class _Before:
    """The features of the text before a candidate, for one question."""

    def __init__(self, question: Question) -> None:
        self.left_q = _strip_copula(question.left)
        # The question's characters just around its wh-word, for a paraphrase-tolerant
        # match of the answer's surroundings ("担任了什么院系的教授" ~ "任...表演系教授").
        self.near = {ch for ch in question.left[-6:] if ch not in _STOP}

    def features(self, folded: str, at: int, boundaries: Edges) -> list[tuple[int, float]]:
        """(column, value) of the features of a candidate starting at `at`."""
        col = INDEX
        before = folded[max(0, at - 8) : at]
        stripped = _strip_copula(before)
        before_cls, first_cls = boundaries.get(at, _NO_EDGE)
        anchor = _anchor(self.left_q, stripped) / 3 if self.left_q and stripped else 0.0
        pairs = [
            (col["left_anchor"], anchor),
            (col["boundary_left"], at == 0 or folded[at - 1] in _PUNCT),
            (col["word_start"], at in boundaries),
            (col[f"before:{before_cls}"], 1.0),
            (col[f"first:{first_cls}"], 1.0),
            (col["after_function"], at > 0 and folded[at - 1] in _BEFORE),
        ]
        if self.near:
            pairs.append((col["left_chars"], len(self.near.intersection(before)) / len(self.near)))
        return pairs


class _After:
    """The features of the text after a candidate, for one question."""

    def __init__(self, question: Question) -> None:
        self.has_right = bool(question.right)
        self.right_q = question.right.lstrip("是的")
        self.near = {ch for ch in self.right_q[:6] if ch not in _STOP}
        self.unit = question.unit

    def features(self, folded: str, at: int, boundaries: Edges) -> list[tuple[int, float]]:
        """(column, value) of the features of a candidate ending at `at`."""
        col = INDEX
        after = folded[at : at + 8]
        last_cls, after_cls = boundaries.get(at, _NO_EDGE)
        pairs = [
            (col["boundary_right"], at == len(folded) or folded[at] in _PUNCT),
            (col["word_end"], at in boundaries),
            (col[f"last:{last_cls}"], 1.0),
            (col[f"after:{after_cls}"], 1.0),
        ]
        if self.has_right:
            pairs.append((col["right_anchor"], _prefix(self.right_q, after.lstrip("是的")) / 3))
        if self.unit:
            pairs.append((col["unit_missing"], after.startswith(self.unit)))
        if self.near:
            pairs.append((col["right_chars"], len(self.near.intersection(after)) / len(self.near)))
            pairs.append((col["right_next"], bool(after) and after[0] in self.right_q[:2]))
        return pairs
