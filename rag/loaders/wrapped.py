"""Hard-wrapped plain text: which lines run on into the next, as one paragraph.

Chinese text files are often wrapped at a fixed width (an old editor's 70 or 80 columns, a
copy out of a PDF): every line of a paragraph but its last then fills the width, and a new
paragraph starts on an indented or a short line. Read one line at a time, such a file gives
paragraphs that stop in the middle of a sentence, and passages that hold half of one.

A file counts as wrapped when many of its lines have the same width, at least `MIN_WIDTH`
columns, and none is much wider; a line of that width then runs on into the next one
unless the next one is indented. Files written one paragraph per line (most web text) have
lines of every width, so they never qualify and are read a line at a time as before.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

# Widths are display columns, hanzi and full-width punctuation counting two, as the editors
# and the byte counts of GBK that did the wrapping counted them. (Counting GB18030 bytes
# instead is ten times faster, but gives four to rare hanzi and symbols: 1-3% of the
# wrapped files of eval.studies.wrapped_text then read a line at a time. A character at a
# time costs 0.15 us, well under 1% of an ingest.)
MIN_WIDTH = 40  # narrower equal lines are verse, lists or records, not a wrap
# Lines wrapped at W end between W-2 and W+4 columns: a full-width character that would
# cross the edge goes to the next line, and closing punctuation (one or two marks, `”。`)
# hangs past it rather than open a line.
BELOW, ABOVE = 2, 4
MIN_FULL = 3  # full lines a file needs
MIN_SHARE = 0.3  # of its non-blank lines
MAX_WIDER = 0.05  # lines wider than the wrap allows: a wrapped file has (almost) none
# A paragraph's indent: a full-width space (the Chinese two), a tab, or two spaces. One space
# may be where a wrapped English line was cut.
_INDENT = re.compile(r"\u3000|\t| {2}")
# Aligned columns or a box's sides and corners: a fixed-width table, whose rows stay apart
# (`─` alone is not one: Chinese text uses `──` as a dash).
_TABULAR = re.compile(r"\S {3,}\S|\t|[│┃┌┐└┘├┤┬┴┼║╔╗╚╝╠╣╦╩╬]")


def width(line: str) -> int:
    """Display columns of `line`: two for a wide or ambiguous-width (CJK) character."""
    return sum(2 if unicodedata.east_asian_width(c) in "WFA" else 1 for c in line)


def wrap_width(widths: Sequence[int]) -> int | None:
    """The width the lines were wrapped at, or None when they do not look wrapped.

    `widths` are those of the non-blank lines, trailing white space left out.
    """
    counts = Counter(w for w in widths if w >= MIN_WIDTH)
    if not counts:
        return None
    wrap = max(counts, key=lambda w: (counts[w], w))  # most lines of a wrap fill it exactly
    full = sum(counts[w] for w in range(wrap - BELOW, wrap + ABOVE + 1))
    wider = sum(n for w, n in counts.items() if w > wrap + ABOVE)
    if full < MIN_FULL or full < MIN_SHARE * len(widths) or wider > MAX_WIDER * len(widths):
        return None
    return wrap


def runs_on(lines: Sequence[str]) -> list[bool]:
    """For each line, whether its paragraph goes on in the next line.

    Only for a wrapped file (`wrap_width`); otherwise every line is its own paragraph.
    """
    widths = [width(line.rstrip()) for line in lines]
    wrap = wrap_width([w for w, line in zip(widths, lines, strict=True) if line.strip()])
    out = [False] * len(lines)
    if wrap is None:
        return out
    for i in range(len(lines) - 1):
        line, after = lines[i], lines[i + 1]
        out[i] = (
            widths[i] >= wrap - BELOW
            and bool(after.strip())
            and not _INDENT.match(after)  # an indented line opens a paragraph
            and not _TABULAR.search(line)
            and not _TABULAR.search(after)
        )
    return out
