"""Text that remembers where each character came from, so cleaning keeps a map to the source."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from rag.types import OffsetMap

Replacement = str | Callable[[re.Match[str]], str]


@dataclass(frozen=True)
class MappedText:
    """A string plus, for each character, the source span `[starts[i], ends[i])` it stands for.

    Every edit (`sub`, `strip`, slicing) returns a new MappedText whose characters still point
    into the original source, so offsets survive any number of cleaning steps.
    """

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    @classmethod
    def from_source(cls, source: str, offset: int = 0) -> MappedText:
        """Wrap `source`, which stands at `offset` in the whole source text."""
        starts = tuple(range(offset, offset + len(source)))
        return cls(source, starts, tuple(s + 1 for s in starts))

    @classmethod
    def from_pieces(cls, pieces: list[tuple[str, int, int]]) -> MappedText:
        """Build from `(text, source_start, source_end)` pieces, e.g. parsed HTML text nodes.

        A piece whose text has the length of its source span maps character by character
        (plain text); any other piece (an entity like `&amp;`) maps each character to the
        whole span.
        """
        text: list[str] = []
        starts: list[int] = []
        ends: list[int] = []
        for piece, a, b in pieces:
            text.append(piece)
            if len(piece) == b - a:
                starts.extend(range(a, b))
                ends.extend(range(a + 1, b + 1))
            else:
                starts.extend([a] * len(piece))
                ends.extend([b] * len(piece))
        return cls("".join(text), tuple(starts), tuple(ends))

    def __len__(self) -> int:
        return len(self.text)

    def __getitem__(self, key: slice) -> MappedText:
        return MappedText(self.text[key], self.starts[key], self.ends[key])

    def sub(self, pattern: re.Pattern[str], repl: Replacement) -> MappedText:
        """Like `pattern.sub(repl, text)`; replacement text maps to the whole matched span."""
        text: list[str] = []
        starts: list[int] = []
        ends: list[int] = []
        pos = 0
        for m in pattern.finditer(self.text):
            a, b = m.span()
            text.append(self.text[pos:a])
            starts.extend(self.starts[pos:a])
            ends.extend(self.ends[pos:a])
            new = repl(m) if callable(repl) else m.expand(repl)
            if new:
                # The replacement stands for the whole match: from the first source char to the
                # end of the last (an empty match maps to the point where it occurred).
                src_a = self.starts[a] if a < len(self.text) else self._end_point()
                if b > a:
                    src_b = self.ends[b - 1]
                else:
                    # An insertion inside a replacement run (both neighbours stand for the same
                    # source run) stands for that run too, so the map stays monotone.
                    src_b = max(src_a, self.ends[a - 1]) if a > 0 else src_a
                text.append(new)
                starts.extend([src_a] * len(new))
                ends.extend([src_b] * len(new))
            pos = b
        text.append(self.text[pos:])
        starts.extend(self.starts[pos:])
        ends.extend(self.ends[pos:])
        return MappedText("".join(text), tuple(starts), tuple(ends))

    def strip(self) -> MappedText:
        """Drop leading and trailing white space (Unicode-aware, like `str.strip`)."""
        left = len(self.text) - len(self.text.lstrip())
        right = len(self.text.rstrip())
        return self[left : max(left, right)]

    def _end_point(self) -> int:
        return self.ends[-1] if self.ends else 0

    def source_span(self, start: int = 0, end: int | None = None) -> tuple[int, int]:
        """Source span covered by `text[start:end]`."""
        end = len(self.text) if end is None else end
        if start >= end:
            point = self.starts[start] if start < len(self.text) else self._end_point()
            return (point, point)
        return (self.starts[start], self.ends[end - 1])

    def offset_map(self) -> OffsetMap:
        """Compress the per-character map into pieces (see `OffsetMap`)."""
        clean_starts: list[int] = []
        source_starts: list[int] = []
        source_ends: list[int] = []
        i, n = 0, len(self.text)
        while i < n:
            a, b = self.starts[i], self.ends[i]
            j = i + 1
            if b - a == 1:
                # Extend a character-by-character copy run.
                while (
                    j < n
                    and self.starts[j] == self.ends[j - 1]
                    and self.ends[j] - self.starts[j] == 1
                ):
                    j += 1
                b = self.ends[j - 1]
            else:
                # Extend a replacement run: consecutive characters standing for one span.
                while j < n and self.starts[j] == a and self.ends[j] == b:
                    j += 1
                if j - i == b - a:
                    # Same length as its span: would read as a copy; split to keep it a replacement.
                    j = i + 1 if j - i > 1 else j
            clean_starts.append(i)
            source_starts.append(a)
            source_ends.append(b)
            i = j
        return OffsetMap(tuple(clean_starts), tuple(source_starts), tuple(source_ends), n)
