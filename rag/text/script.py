"""Script folding with OpenCC: one searchable form for simplified and traditional Chinese."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Literal

from opencc import OpenCC

Script = Literal["hans", "hant"]


@lru_cache(maxsize=4)
def _converter(config: str) -> OpenCC:
    # Building a converter loads its phrase dictionaries; share one per config.
    return OpenCC(config)


class _Simplifier:
    """OpenCC's t2s, with a character table for the texts that hold none of its phrases.

    t2s is one group of two dictionaries: 277 phrases, then 4,113 single characters for what
    no phrase matched. A text in which no phrase occurs is therefore converted character
    by character, each to its first listed form: `str.translate` does that in C, where
    OpenCC builds a parse tree in pure Python (0.22-0.24 s against 0.026-0.033 s for 3,000
    CMRC/DRCD texts; 1-2% of them hold a phrase and take OpenCC's path). The output is
    OpenCC's (tested on CMRC 2018 and DRCD). OpenCC keeps its sentence separators as they
    are: none of them is in the character table, and no phrase holds one.
    """

    def __init__(self) -> None:
        self._opencc = _converter("t2s")
        # opencc-python-reimplemented's loaded dictionaries: [[(longest, shortest, {key:
        # forms}) for phrases, the same for characters]].
        chain = self._opencc._dict_chain_data
        if len(chain) != 1 or len(chain[0]) != 2 or chain[0][1][0] != 1:
            raise RuntimeError("OpenCC's t2s is no longer one group of phrases then characters")
        (_, _, phrases), (_, _, characters) = chain[0]
        self._phrases = re.compile("|".join(map(re.escape, phrases)))
        self._characters = {ord(key): forms.split(" ")[0] for key, forms in characters.items()}

    def convert(self, text: str) -> str:
        if self._phrases.search(text) is None:
            return text.translate(self._characters)
        converted: str = self._opencc.convert(text)
        return converted


@lru_cache(maxsize=1)
def _simplifier() -> _Simplifier:
    return _Simplifier()


@lru_cache(maxsize=8192)
def fold_script(text: str) -> str:
    """The form every index and every query is matched in.

    Cached: composing folds the same retrieved sentences again and again.

    NFKC turns full-width letters and digits into ASCII (`７个` -> `7个`), lower-casing makes
    Latin words case-blind, and OpenCC's phrase-level t2s maps traditional to simplified
    (`質量` -> `质量`), so either script finds the other. Idempotent.
    """
    return _simplifier().convert(unicodedata.normalize("NFKC", text).lower())


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
    if _simplifier().convert(text) != text:
        return "hant"
    if _converter("s2t").convert(text) != text:
        return "hans"
    return None


def to_script(text: str, script: Script) -> str:
    """Convert `text` to one script (phrase level), e.g. to answer in the question's script."""
    if script == "hans":
        return _simplifier().convert(text)
    converted: str = _converter("s2t").convert(text)
    return converted
