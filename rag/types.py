"""Plain data types that flow through the pipeline, from a decoded file to a cited answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Format = Literal["text", "markdown", "html"]


@dataclass(frozen=True)
class SourceText:
    """A file decoded to text: every offset in the pipeline points into `text`."""

    path: str
    text: str
    encoding: str
    format: Format


@dataclass(frozen=True)
class Paragraph:
    """One numbered paragraph of a document, cleaned, with a map back to the source.

    `number` is 1-based and counts every paragraph of the source, including those that
    cleaning dropped, so that "paragraph 7" means the same thing to a reader of the file.
    `text` is the cleaned text; `origin` maps its positions back to `SourceText.text`.
    """

    file: str
    number: int
    text: str
    origin: OffsetMap
    line_start: int
    line_end: int

    def source_span(self, start: int = 0, end: int | None = None) -> tuple[int, int]:
        """Source character span of `text[start:end]`."""
        return self.origin.source_span(start, len(self.text) if end is None else end)


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


@dataclass(frozen=True)
class Document:
    """A loaded file: its decoded source and its numbered, cleaned paragraphs."""

    source: SourceText
    paragraphs: tuple[Paragraph, ...]
    content_hash: str

    @property
    def path(self) -> str:
        return self.source.path


@dataclass(frozen=True)
class Source:
    """Where a passage's text stands in a file: the unit a citation points at."""

    file: str
    paragraph: int
    line_start: int
    line_end: int
    char_start: int
    char_end: int
    text: str  # the cleaned text of this span, in the file's own script
    # Maps positions in `text` to the source, so a quote inside it gets exact offsets.
    origin: OffsetMap | None = field(default=None, compare=False, repr=False)

    def quote_span(self, start: int, end: int) -> tuple[int, int]:
        """Source offsets of `text[start:end]` (the whole span if the map is unknown)."""
        if self.origin is None:
            return (self.char_start, self.char_end)
        return self.origin.source_span(start, end)


@dataclass(frozen=True)
class Chunk:
    """A sentence-aligned piece of one paragraph, before deduplication."""

    text: str
    source: Source
    paragraph: Paragraph
    start: int  # offset of `text` within `paragraph.text`


@dataclass(frozen=True)
class Passage:
    """A unit of retrieval: deduplicated text that may stand in several places."""

    id: int
    text: str
    sources: tuple[Source, ...]


@dataclass(frozen=True)
class ScoredPassage:
    """A retrieved passage with its fused score in [0, 1] and the parts it came from."""

    passage: Passage
    score: float
    dense: float | None = None
    lexical: float | None = None


@dataclass(frozen=True)
class Citation:
    n: int
    file: str
    paragraph: int
    line_start: int
    line_end: int
    char_start: int
    char_end: int
    quote: str
    passage_id: int
    # Other places holding the same (deduplicated) passage: (file, paragraph).
    also_in: tuple[tuple[str, int], ...] = ()


ComposerName = Literal["extractive", "llm"]


@dataclass(frozen=True)
class ShortAnswer:
    """The words of a cited quote that answer the question themselves ("支树平").

    `quote[quote_start:quote_end]` of citation `citation` is `text`; `char_start` and
    `char_end` are its offsets in the file, inside the citation's own.
    """

    text: str
    citation: int  # the `n` of the citation whose quote holds it
    quote_start: int
    quote_end: int
    char_start: int
    char_end: int


@dataclass(frozen=True)
class Answer:
    question: str
    answer: str
    abstained: bool
    citations: tuple[Citation, ...]
    passages: tuple[ScoredPassage, ...]
    timings_ms: dict[str, float] = field(default_factory=dict)
    # Who wrote `answer`: an LLM answer that failed falls back to, and says, "extractive".
    composer: ComposerName = "extractive"
    # Sentences of an LLM answer that cite no passage it was given: claims nothing vouches for.
    unsupported: tuple[str, ...] = ()
    # Why the answer is not quite what was configured (the LLM failed, citations were
    # removed), for the reader; None when there is nothing to say.
    note: str | None = None
    # The answer span itself, inside a cited quote; None for why/how or when no span fits.
    short_answer: ShortAnswer | None = None


@dataclass(frozen=True)
class StreamStart:
    """The first item of an answer stream: the passages, and the citations once known.

    The extractive composer has its whole answer at once, so its stream starts with the
    citations; an LLM's citations are known only when its text has been checked.
    """

    passages: tuple[ScoredPassage, ...]
    citations: tuple[Citation, ...] = ()
