"""Script folding with OpenCC: one searchable form for simplified and traditional Chinese."""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import Literal

from opencc import OpenCC

Script = Literal["hans", "hant"]


@lru_cache(maxsize=4)
def _converter(config: str) -> OpenCC:
    # Building a converter loads its phrase dictionaries; share one per config.
    return OpenCC(config)


@lru_cache(maxsize=8192)
def fold_script(text: str) -> str:
    """The form every index and every query is matched in.

    Cached: OpenCC is pure Python, and composing folds the same retrieved sentences again
    and again.

    NFKC turns full-width letters and digits into ASCII (`７个` -> `7个`), lower-casing makes
    Latin words case-blind, and OpenCC's phrase-level t2s maps traditional to simplified
    (`質量` -> `质量`), so either script finds the other. Idempotent.
    """
    folded: str = _converter("t2s").convert(unicodedata.normalize("NFKC", text).lower())
    return folded


class _CharFolds(dict[int, str]):
    """Code point -> folded character, filled on first sight (a `str.translate` table)."""

    def __missing__(self, point: int) -> str:
        char = chr(point)
        folded = fold_script(char)
        self[point] = folded = folded if len(folded) == 1 else char
        return folded


_CHAR_FOLDS = _CharFolds()


def fold_chars(text: str) -> str:
    """`text` folded character by character: the same length, offsets still index `text`.

    What composing matches questions and passages in: OpenCC's phrase-level conversion is
    pure Python and costs more than the rest of composing put together, while a table of
    characters is a dictionary look-up each. It differs from `fold_script` only where
    OpenCC reads a phrase (乾隆 stays 乾隆 there, becomes 干隆 here); the question and the
    passages are folded alike, so they still match each other. A character whose NFKC form
    is longer (a ligature, ㎡) is kept as it is.
    """
    return text.translate(_CHAR_FOLDS)


def detect_script(text: str) -> Script | None:
    """`hant` if the text changes under t2s conversion, `hans` if under s2t, else None."""
    if _converter("t2s").convert(text) != text:
        return "hant"
    if _converter("s2t").convert(text) != text:
        return "hans"
    return None


def to_script(text: str, script: Script) -> str:
    """Convert `text` to one script (phrase level), e.g. to answer in the question's script."""
    converted: str = _converter("t2s" if script == "hans" else "s2t").convert(text)
    return converted
