"""Text that remembers where each character came from, so cleaning keeps a map to the source."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class OffsetMap:
    """Maps positions of a cleaned text back to the source text it was cut from.

    Cleaning only deletes characters or replaces a source run with new text, so the map is a
    list of pieces: piece k covers cleaned `[clean_starts[k], clean_starts[k+1])` and source
    `[source_starts[k], source_ends[k])`. When both have the same length the piece maps
    character by character; otherwise (a replacement) every position maps to the whole run.
    """

    clean_starts: tuple[int, ...]
    source_starts: tuple[int, ...]
    source_ends: tuple[int, ...]
    length: int

    def source_span(self, start: int, end: int) -> tuple[int, int]:
        """Smallest source span `[a, b)` whose cleaning yields cleaned `[start, end)`."""
        from bisect import bisect_right

        if not 0 <= start <= end <= self.length:
            raise ValueError(f"span {start}:{end} outside cleaned text of length {self.length}")
        if not self.clean_starts:
            return (0, 0)
        if start == end == self.length:
            # The point after the last character is where its source ends, even when the last
            # piece is a replacement (whose inner positions all map to its start).
            return (self.source_ends[-1], self.source_ends[-1])
        if start == end:
            k = max(bisect_right(self.clean_starts, start) - 1, 0)
            pos = self._forward(k, start)
            return (pos, pos)
        first = bisect_right(self.clean_starts, start) - 1
        last = bisect_right(self.clean_starts, end - 1) - 1
        return (self._forward(first, start), self._backward(last, end - 1))

    def slice(self, start: int, end: int) -> OffsetMap:
        """The map of cleaned `[start, end)`, rebased so that `start` becomes position 0."""
        from bisect import bisect_right

        if not 0 <= start <= end <= self.length:
            raise ValueError(f"span {start}:{end} outside cleaned text of length {self.length}")
        if start == end or not self.clean_starts:
            return OffsetMap((), (), (), end - start)
        clean, src_a, src_b = [], [], []
        first = bisect_right(self.clean_starts, start) - 1
        for k in range(first, len(self.clean_starts)):
            lo = max(self.clean_starts[k], start)
            hi = min(self.clean_starts[k] + self._piece_len(k), end)
            if lo >= hi:
                break
            if self._is_copy(k):
                shift = self.source_starts[k] - self.clean_starts[k]
                clean.append(lo - start)
                src_a.append(lo + shift)
                src_b.append(hi + shift)
            else:
                clean.append(lo - start)
                src_a.append(self.source_starts[k])
                src_b.append(self.source_ends[k])
        return OffsetMap(tuple(clean), tuple(src_a), tuple(src_b), end - start)

    def to_json(self) -> list[Any]:
        return [
            list(self.clean_starts),
            list(self.source_starts),
            list(self.source_ends),
            self.length,
        ]

    @classmethod
    def from_json(cls, data: list[Any]) -> OffsetMap:
        clean, src_a, src_b, length = data
        return cls(tuple(clean), tuple(src_a), tuple(src_b), int(length))

    def _piece_len(self, k: int) -> int:
        nxt = self.clean_starts[k + 1] if k + 1 < len(self.clean_starts) else self.length
        return nxt - self.clean_starts[k]

    def _is_copy(self, k: int) -> bool:
        return self._piece_len(k) == self.source_ends[k] - self.source_starts[k]

    def _forward(self, k: int, pos: int) -> int:
        if self._is_copy(k):
            return self.source_starts[k] + pos - self.clean_starts[k]
        return self.source_starts[k]

    def _backward(self, k: int, pos: int) -> int:
        if self._is_copy(k):
            return self.source_starts[k] + pos - self.clean_starts[k] + 1
        return self.source_ends[k]


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

    @classmethod
    def concat(cls, parts: list[MappedText]) -> MappedText:
        """The parts one after the other, each character keeping its own source span."""
        return cls(
            "".join(part.text for part in parts),
            _joined([part.starts for part in parts]),
            _joined([part.ends for part in parts]),
        )

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
