"""The normalised identity of a text: what two copies of a passage must share to be one."""

from __future__ import annotations

import hashlib
import re

from rag.text.script import fold_script

_SPACE = re.compile(r"\s+")
# Punctuation differences (，vs ,) and spacing should not make two copies of a text distinct.
_PUNCT = re.compile(r"[\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    """Folded text without white space or punctuation: what two copies must share."""
    return _PUNCT.sub("", _SPACE.sub("", fold_script(text)))


def identity(text: str) -> str:
    """What two copies of a passage must share: the `normalise`d text.

    A text of nothing but punctuation and symbols (a `★★★` or `……` line) normalises to
    nothing, which would make all such texts one passage, cited for one another's text:
    its identity is the folded text without white space instead.
    """
    return normalise(text) or _SPACE.sub("", fold_script(text))


def content_hash(text: str) -> str:
    """Identity of a passage for exact deduplication: normalise, fold script, hash.

    `質量是基礎。` and `质量是基础, ` hash alike, so a traditional copy of a simplified
    passage is one passage with two sources.
    """
    return hashlib.sha1(identity(text).encode("utf-8")).hexdigest()
