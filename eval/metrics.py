"""Retrieval and answer metrics, each a small pure function over plain values."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from rag.text.script import fold_script

_SPACE = re.compile(r"\s+")
_NOISE = re.compile(r"[\s\W_]+")
_WORD = re.compile(r"[^\W_]")  # what `normalise_answer` keeps: a letter, ideograph or digit


def first_hit_rank(retrieved: Sequence[set[tuple[str, int]]], gold: tuple[str, int]) -> int | None:
    """1-based rank of the first retrieved passage that has `gold` among its (file, paragraph)."""
    for rank, places in enumerate(retrieved, start=1):
        if gold in places:
            return rank
    return None


def hit_at(rank: int | None, k: int) -> float:
    return 1.0 if rank is not None and rank <= k else 0.0


def reciprocal_rank(rank: int | None, k: int = 10) -> float:
    return 1.0 / rank if rank is not None and rank <= k else 0.0


def scorable(gold: str) -> bool:
    """Whether a gold answer holds a letter, ideograph or digit, which scoring can match.

    One of only white space, punctuation or symbols ("", "。", "——") is no gold: exact
    match and F1 drop all of it, leaving nothing to match, while found as written it is in
    almost every answer ("" in all, 。 in any that ends a sentence).
    """
    return _WORD.search(gold) is not None


def answer_hit(answer: str, golds: Sequence[str]) -> float:
    """1 if a gold answer occurs in the answer, both script-folded and without white space.

    Only golds that are `scorable` count: "" or 。 would occur in (almost) every answer.
    """
    text = _SPACE.sub("", fold_script(answer))
    needles = [_SPACE.sub("", fold_script(g)) for g in golds if scorable(g)]
    return 1.0 if any(needle in text for needle in needles) else 0.0


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def normalise_answer(text: str) -> str:
    """SQuAD-style answer normal form: script-folded, without white space or punctuation."""
    return _NOISE.sub("", fold_script(text))


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    """1 if the prediction equals a gold answer once both are normalised."""
    p = normalise_answer(prediction)
    return float(bool(p) and any(p == normalise_answer(g) for g in golds))


def char_f1(prediction: str, golds: Sequence[str]) -> float:
    """Best character-overlap F1 against any gold answer (CMRC 2018's own measure)."""
    p = normalise_answer(prediction)
    best = 0.0
    for gold in golds:
        g = normalise_answer(gold)
        common = sum((Counter(p) & Counter(g)).values())
        if common:
            precision, recall = common / len(p), common / len(g)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best
