"""Line numbers of a text: offsets of line starts, for loaders of line-based formats."""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right

from rag.text.offsets import MappedText


class LineIndex:
    """Offsets of line starts, to turn a line number into an offset and back."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def offset(self, line: int) -> int:
        """Offset of the start of 0-based `line` (the text length past the last line)."""
        return self.starts[line] if line < len(self.starts) else len(self.text)

    def line_end(self, line: int) -> int:
        """Offset of the end of 0-based `line`, before its newline."""
        end = self.offset(line + 1)
        return end - 1 if end > 0 and self.text[end - 1] == "\n" else end

    def line_of(self, offset: int) -> int:
        """1-based line number holding `offset`."""
        return bisect_right(self.starts, offset)

    def breaks(self, start: int, end: int) -> tuple[int, ...]:
        """Offsets where the lines after the one holding `start` begin, before `end`."""
        first, stop = bisect_right(self.starts, start), bisect_left(self.starts, end)
        return tuple(self.starts[first:stop])

    def span(self, first: int, last: int) -> MappedText:
        """Lines `first` to `last` (0-based, inclusive) without the final newline."""
        a, b = self.offset(first), self.line_end(last)
        return MappedText.from_source(self.text[a:b], a)
