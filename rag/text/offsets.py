"""Text that remembers where each character came from, so cleaning keeps a map to the source."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rag.types import OffsetMap

Replacement = str | Callable[[re.Match[str]], str]


@dataclass(frozen=True, eq=False)
class MappedText:
    """A string plus, for each character, the source span `[starts[i], ends[i])` it stands for.

    Every edit (`sub`, `strip`, slicing) returns a new MappedText whose characters still point
    into the original source, so offsets survive any number of cleaning steps. The spans are
    int64 arrays, not tuples: a single line of a few megabytes (a minified page saved as
    text) would otherwise cost two Python ints per character (docs/reliability.md).
    """

    text: str
    starts: np.ndarray
    ends: np.ndarray

    @classmethod
    def from_source(cls, source: str, offset: int = 0) -> MappedText:
        """Wrap `source`, which stands at `offset` in the whole source text."""
        starts = np.arange(offset, offset + len(source), dtype=np.int64)
        return cls(source, starts, starts + 1)

    @classmethod
    def from_pieces(cls, pieces: list[tuple[str, int, int]]) -> MappedText:
        """Build from `(text, source_start, source_end)` pieces, e.g. parsed HTML text nodes.

        A piece whose text has the length of its source span maps character by character
        (plain text); any other piece (an entity like `&amp;`) maps each character to the
        whole span.
        """
        starts: list[np.ndarray] = []
        ends: list[np.ndarray] = []
        for piece, a, b in pieces:
            if len(piece) == b - a:
                starts.append(np.arange(a, b, dtype=np.int64))
                ends.append(np.arange(a + 1, b + 1, dtype=np.int64))
            else:
                starts.append(np.full(len(piece), a, dtype=np.int64))
                ends.append(np.full(len(piece), b, dtype=np.int64))
        text = "".join(piece for piece, _, _ in pieces)
        return cls(text, _joined(starts), _joined(ends))

    def __len__(self) -> int:
        return len(self.text)

    def __getitem__(self, key: slice) -> MappedText:
        return MappedText(self.text[key], self.starts[key], self.ends[key])

    def sub(self, pattern: re.Pattern[str], repl: Replacement) -> MappedText:
        """Like `pattern.sub(repl, text)`; replacement text maps to the whole matched span."""
        text: list[str] = []
        starts: list[np.ndarray] = []
        ends: list[np.ndarray] = []
        pos = 0
        for m in pattern.finditer(self.text):
            a, b = m.span()
            text.append(self.text[pos:a])
            starts.append(self.starts[pos:a])
            ends.append(self.ends[pos:a])
            new = repl(m) if callable(repl) else m.expand(repl)
            if new:
                # The replacement stands for the whole match: from the first source char to the
                # end of the last (an empty match maps to the point where it occurred).
                src_a = int(self.starts[a]) if a < len(self.text) else self._end_point()
                if b > a:
                    src_b = int(self.ends[b - 1])
                else:
                    # An insertion inside a replacement run (both neighbours stand for the same
                    # source run) stands for that run too, so the map stays monotone.
                    src_b = max(src_a, int(self.ends[a - 1])) if a > 0 else src_a
                text.append(new)
                starts.append(np.full(len(new), src_a, dtype=np.int64))
                ends.append(np.full(len(new), src_b, dtype=np.int64))
            pos = b
        text.append(self.text[pos:])
        starts.append(self.starts[pos:])
        ends.append(self.ends[pos:])
        return MappedText("".join(text), _joined(starts), _joined(ends))

    def strip(self) -> MappedText:
        """Drop leading and trailing white space (Unicode-aware, like `str.strip`)."""
        left = len(self.text) - len(self.text.lstrip())
        right = len(self.text.rstrip())
        return self[left : max(left, right)]

    def _end_point(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def source_span(self, start: int = 0, end: int | None = None) -> tuple[int, int]:
        """Source span covered by `text[start:end]`."""
        end = len(self.text) if end is None else end
        if start >= end:
            point = int(self.starts[start]) if start < len(self.text) else self._end_point()
            return (point, point)
        return (int(self.starts[start]), int(self.ends[end - 1]))

    def offset_map(self) -> OffsetMap:
        """Compress the per-character map into pieces (see `OffsetMap`).

        A piece is a copy run (characters that each stand for the next single source
        character) or a replacement run (characters that all stand for one source span). A
        replacement run exactly as long as its span would read as a copy, so its first
        character is made a piece of its own.
        """
        n = len(self.text)
        if n == 0:
            return OffsetMap((), (), (), 0)
        starts, ends = self.starts, self.ends
        copy = ends - starts == 1
        # Whether character j continues the run of character j - 1.
        continues_copy = copy[1:] & copy[:-1] & (starts[1:] == ends[:-1])
        continues_replacement = ~copy[:-1] & (starts[1:] == starts[:-1]) & (ends[1:] == ends[:-1])
        first = np.flatnonzero(np.concatenate(([True], ~(continues_copy | continues_replacement))))
        last = np.append(first[1:], n) - 1
        length = last - first + 1
        split = ~copy[first] & (length > 1) & (length == ends[first] - starts[first])
        if split.any():
            first = np.sort(np.concatenate((first, first[split] + 1)))
            last = np.append(first[1:], n) - 1
        return OffsetMap(
            tuple(first.tolist()),
            tuple(starts[first].tolist()),
            tuple(ends[last].tolist()),
            n,
        )


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
