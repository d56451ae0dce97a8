"""Sentence boundaries of Chinese (and mixed) text, as spans that tile the text exactly."""

from __future__ import annotations

import re

# A sentence ends after 。！？；… (or their ASCII forms followed by a space) plus any closing
# quotes or brackets, so that `他说：“好。”` stays whole.
SENTENCE_END = r"(?:[。！？；…!?;]+|\.(?=\s))[」』”’）)\]]*"
# When a single sentence is longer than a chunk, fall back to clause breaks, then characters.
CLAUSE_END = r"[，、：,:]"

_SENTENCE_RE = re.compile(SENTENCE_END)


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Spans `(start, end)` of the sentences of `text`, covering it exactly."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _SENTENCE_RE.finditer(text):
        spans.append((start, m.end()))
        start = m.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans
