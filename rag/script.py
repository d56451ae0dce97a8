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
