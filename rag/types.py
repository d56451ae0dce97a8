"""Plain data types that flow through the pipeline, from a decoded file to a cited answer."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

from rag.text.offsets import OffsetMap

# Loader format names ("text", "markdown", "html", ...): see `rag.loaders.registry`.
Format = str


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
    # Where the loader found it (`rag.loaders.base.Block`); None where a format has none.
    page: int | None = field(default=None, kw_only=True)
    sheet: str | None = field(default=None, kw_only=True)
    ocr_confidence: float | None = field(default=None, kw_only=True)
    # A paragraph continued over a page break: (source offset, page) where each later page's
    # part starts; `page` is where the paragraph starts.
    page_breaks: tuple[tuple[int, int], ...] = field(default=(), kw_only=True)

    def source_span(self, start: int = 0, end: int | None = None) -> tuple[int, int]:
        """Source character span of `text[start:end]`."""
        return self.origin.source_span(start, len(self.text) if end is None else end)

    def page_at(self, source_offset: int) -> int | None:
        """The page that the source character at `source_offset` stands on."""
        page = self.page
        for offset, later in self.page_breaks:
            if source_offset >= offset:
                page = later
        return page


@dataclass(frozen=True)
class Document:
    """A loaded file: its decoded source and its numbered, cleaned paragraphs."""

    source: SourceText
    paragraphs: tuple[Paragraph, ...]
    content_hash: str
    notes: tuple[str, ...] = ()  # what the loader truncated or passed over (`Extraction.notes`)

    @property
    def path(self) -> str:
        return self.source.path


@dataclass(frozen=True)
class Location:
    """Where a span of text stands in a file: what a source and a citation both name.

    The wire format (`rag.wire`) writes exactly these fields for both. `page` is the 1-based
    PDF page or slide, `sheet` a spreadsheet's sheet, `ocr_confidence` the mean OCR
    confidence (0-1) of text that came from OCR; each None where a format has none.
    """

    file: str
    paragraph: int
    line_start: int
    line_end: int
    char_start: int
    char_end: int
    page: int | None = field(default=None, kw_only=True)
    sheet: str | None = field(default=None, kw_only=True)
    ocr_confidence: float | None = field(default=None, kw_only=True)

    @property
    def label(self) -> str:
        """How a person reads the place: `report.pdf p.3 ¶12`, `prices.xlsx [2024] ¶7`."""
        page = f" p.{self.page}" if self.page is not None else ""
        sheet = f" [{self.sheet}]" if self.sheet is not None else ""
        return f"{self.file}{sheet}{page} ¶{self.paragraph}"


@dataclass(frozen=True)
class Source(Location):
    """Where a passage's text stands in a file: the unit a citation points at."""

    text: str  # the cleaned text of this span, in the file's own script
    # Maps positions in `text` to the source, so a quote inside it gets exact offsets.
    origin: OffsetMap | None = field(default=None, compare=False, repr=False)
    # Source offsets where the span's lines after its first begin: a quote of a span over
    # several lines (a wrapped paragraph) is then placed on its own lines. Empty for a span
    # on one line, and for one stored before they were kept.
    line_breaks: tuple[int, ...] = field(default=(), compare=False, repr=False, kw_only=True)

    def quote_span(self, start: int, end: int) -> tuple[int, int]:
        """Source offsets of `text[start:end]` (the whole span if the map is unknown)."""
        if self.origin is None:
            return (self.char_start, self.char_end)
        return self.origin.source_span(start, end)

    def lines_of(self, char_start: int, char_end: int) -> tuple[int, int]:
        """The 1-based lines (first, last) of the source offsets `char_start:char_end`
        inside this span; the span's own lines when its line breaks are unknown."""
        if len(self.line_breaks) != self.line_end - self.line_start:
            return (self.line_start, self.line_end)
        last = max(char_end - 1, char_start)
        return (
            self.line_start + bisect_right(self.line_breaks, char_start),
            self.line_start + bisect_right(self.line_breaks, last),
        )


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
class Citation(Location):
    """A quoted span of a passage, located in the file it is quoted from."""

    quote: str
    passage_id: int
    # Other places holding the same (deduplicated) passage: (file, paragraph).
    also_in: tuple[tuple[str, int], ...] = ()
    n: int = field(kw_only=True)  # its number in the answer text: `[n]`


# A name of `rag.answer.factory.COMPOSERS`.
ComposerName = str


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
    # Conversations (rag/conversation/): what was searched and answered, the question
    # rewritten to stand alone from the previous turns; the question itself without any.
    standalone_question: str | None = None


@dataclass(frozen=True)
class Turn:
    """One earlier exchange of a conversation: what was asked and what was answered."""

    question: str
    answer: str


@dataclass(frozen=True)
class StreamStart:
    """The first item of an answer stream: the passages, and the citations once known.

    The extractive composer has its whole answer at once, so its stream starts with the
    citations; an LLM's citations are known only when its text has been checked.
    """

    passages: tuple[ScoredPassage, ...]
    citations: tuple[Citation, ...] = ()
