"""Tokenisers for the lexical index, all applied to script-folded text."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

# CJK ideographs (with extension A) are matched as overlapping bigrams; Latin words and numbers
# are kept whole (`2012`, `wto`). Everything else (punctuation, spaces) separates tokens.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUN = re.compile(rf"[{_CJK}]+|[a-z0-9]+(?:[.\-/][a-z0-9]+)*")
_IS_CJK = re.compile(rf"[{_CJK}]")

Tokenizer = Callable[[str], list[str]]


def bigram_tokens(folded: str) -> list[str]:
    """Overlapping character bigrams of CJK runs (a lone character stays a unigram)."""
    tokens: list[str] = []
    for run in _RUN.findall(folded):
        if _IS_CJK.match(run):
            if len(run) == 1:
                tokens.append(run)
            else:
                tokens.extend(run[i : i + 2] for i in range(len(run) - 1))
        else:
            tokens.append(run)
    return tokens


@lru_cache(maxsize=1)
def _jieba() -> object:
    import logging

    import jieba

    # jieba logs its dictionary loading at INFO; that is noise in a CLI.
    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def jieba_tokens(folded: str) -> list[str]:
    """Words from jieba's search-engine mode (overlapping words for long compounds)."""
    jieba = _jieba()
    return [t for t in jieba.lcut_for_search(folded) if _RUN.fullmatch(t)]  # type: ignore[attr-defined]


def mixed_tokens(folded: str) -> list[str]:
    return bigram_tokens(folded) + [t for t in jieba_tokens(folded) if len(t) != 2]


TOKENIZERS: dict[str, Tokenizer] = {
    "bigram": bigram_tokens,
    "jieba": jieba_tokens,
    "bigram+jieba": mixed_tokens,
}


def get_tokenizer(name: str) -> Tokenizer:
    try:
        return TOKENIZERS[name]
    except KeyError:
        raise ValueError(f"unknown tokenizer {name!r}; valid: {', '.join(TOKENIZERS)}") from None
