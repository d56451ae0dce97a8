"""Write a document's blocks into one `Extraction.text`, keeping each block's map into it.

The layout, the same for every binary format, so that line numbers and offsets mean something
to a reader of `GET /v1/documents/{file}/text`:

- each block is written as it stood in the file (a PDF paragraph keeps its wrapped lines, a
  table row its cells), and blocks are separated by one blank line (`"\\n\\n"`);
- a new page, slide or sheet starts after a line holding only a form feed (`"\\n\\f\\n"`), so
  `text.split("\\f")` gives the pages back;
- a block never holds a blank line itself (runs of blank lines inside a cell collapse to one
  line break), so blank lines always separate blocks.

A block's `MappedText` starts as the written text and may then drop characters (the line
breaks of a wrapped Chinese line) or replace them (a wrapped English line joins with a space);
every character still maps into `Extraction.text`.

A PDF paragraph that runs on into the next column or page stays one block: its parts are
written where they stand on the pages (the separator, and the page break, between them), and
the block's text joins them as one wrapped line break, leaving the separator out.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from rag.loaders.base import Block, Extraction
from rag.loaders.geometry import (
    Line,
    column_edges,
    paragraphs,
    reading_order,
    runs_on,
    uses_indents,
)
from rag.text.offsets import MappedText

# Leading blanks are taken only from where their run starts (`(?:(?<![ \t])[ \t]+)?`), else
# none: tried from every position inside a run, `[ \t]*` rescanned the rest of it each time,
# and a block holding 40,000 spaces (a Word paragraph laid out with spaces) took seconds per
# pattern. A match may still start at the line break itself, right after the blanks an earlier
# match took (`\n \n`).
_BLANK_LINES = re.compile(r"(?:(?<![ \t\u3000])[ \t\u3000]+)?\n(?:[ \t\u3000\f]*\n)+")
_LINE_BREAKS = re.compile(r"\r\n?|[\f\v\u2028\u2029\x85]")
BLOCK_SEPARATOR = "\n\n"
PAGE_SEPARATOR = "\n\f\n"
_SEPARATOR_INSIDE = re.compile(r"\n\f?\n")

# Characters that join a wrapped line without a space: hanzi, kana, hangul, full-width forms
# and CJK punctuation. A line break between two of them (or between one of them and anything)
# is an artefact of wrapping, never a word boundary.
_CJK = (
    r"\u2e80-\u2fff\u3000-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
    r"\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef"
)
_CJK_BREAK = re.compile(rf"(?<=[{_CJK}])[ \t]*\n[ \t]*|(?:(?<![ \t])[ \t]+)?\n[ \t]*(?=[{_CJK}])")
# A soft hyphen at a line end (a word split by the typesetter) goes with the line break; a
# hard hyphen stays and joins without a space (`self-` + `play`).
_HYPHEN_BREAK = re.compile(r"\u00ad\n|(?<=-)\n")
# PDFium reports any hyphen at a line end as a soft one; before a digit or a hanzi it is a
# real one (`1958-` + `1965`): no typesetter hyphenates there.
_REAL_HYPHEN = re.compile(rf"\u00ad(?=\n[0-9{_CJK}])")
_OTHER_BREAK = re.compile(r"(?:(?<![ \t])[ \t]+)?\n[ \t]*")


def join_wrapped_lines(mapped: MappedText) -> MappedText:
    """Join the lines of one wrapped paragraph: nothing between Chinese, a space elsewhere."""
    if "\n" not in mapped.text:
        return mapped
    mapped = mapped.sub(_REAL_HYPHEN, "-")
    # Hyphens first: the line break after `-` must not go as a break before a hanzi.
    mapped = mapped.sub(_HYPHEN_BREAK, "")
    mapped = mapped.sub(_CJK_BREAK, "")
    return mapped.sub(_OTHER_BREAK, " ")


def read_span(span: str) -> MappedText:
    """How the loaders read a span of `Extraction.text` that lies inside one block: wrapped
    lines joined, and the separator inside a paragraph continued on the next column or page
    read as one wrapped line break (a quote's span may cross it)."""
    mapped = MappedText.from_source(span)
    mapped = mapped.sub(_SEPARATOR_INSIDE, "\n")
    return join_wrapped_lines(mapped)


def normalise_block_text(text: str) -> str:
    """Make `text` safe to write as one block: `\\n` line breaks, no blank line inside."""
    text = _LINE_BREAKS.sub("\n", text)
    return _BLANK_LINES.sub("\n", text).strip()


class TextBuilder:
    """Accumulates blocks and page breaks into the text of an `Extraction`."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self._line = 1  # the 1-based line the next character is written on
        self._blocks: list[Block] = []
        self._raw: list[MappedText] = []  # each block's text before its transform
        self._page_open = False  # whether the current page holds a block yet
        self._pending_page_break = False

    def new_page(self) -> None:
        """Start a new page, slide or sheet: the next block goes after a form-feed line."""
        if self._blocks:
            self._pending_page_break = True
        self._page_open = False

    def add(
        self,
        text: str,
        *,
        page: int | None = None,
        sheet: str | None = None,
        ocr_confidence: float | None = None,
        transform: Callable[[MappedText], MappedText] | None = None,
        continues: bool = False,
    ) -> None:
        """Write one block; `transform` turns the written text into the block's text.

        Args:
            text: The block as written into the extraction text (normalised here).
            page: The 1-based page or slide.
            sheet: The spreadsheet sheet.
            ocr_confidence: Mean OCR confidence, for text that came from OCR.
            transform: Edits such as joining wrapped lines; the default keeps the text.
            continues: The text goes on the previous block (a paragraph running on into the
                next column or page): written after the separator, joined to that block's
                text as a wrapped line (`transform` sees both parts, with a line break
                between them that maps to the separator's first character).
        """
        text = normalise_block_text(text)
        if not text:
            return
        separator = self._length
        if self._blocks:
            self._write(PAGE_SEPARATOR if self._pending_page_break else BLOCK_SEPARATOR)
        page_break = self._pending_page_break
        self._pending_page_break = False
        self._page_open = True
        start, first_line = self._length, self._line
        self._write(text)
        mapped = MappedText.from_source(text, start)
        if not (continues and self._blocks):
            self._raw.append(mapped)
            if transform is not None:
                mapped = transform(mapped)
            self._blocks.append(Block(mapped, first_line, self._line, page, sheet, ocr_confidence))
            return
        before = self._blocks.pop()
        raw = MappedText.concat([self._raw.pop(), MappedText.from_source("\n", separator), mapped])
        self._raw.append(raw)
        breaks = before.page_breaks
        if page_break and page is not None and page != before.page:
            breaks += ((start, page),)
        self._blocks.append(
            Block(
                transform(raw) if transform is not None else raw,
                before.line_start,
                self._line,
                before.page,
                sheet,
                _mean_confidence(before, raw, ocr_confidence, len(text)),
                breaks,
            )
        )

    def _write(self, text: str) -> None:
        self._parts.append(text)
        self._length += len(text)
        self._line += text.count("\n")

    @property
    def block_count(self) -> int:
        return len(self._blocks)

    def build(self, encoding: str, fmt: str, notes: list[str] | tuple[str, ...] = ()) -> Extraction:
        """The extraction of everything added so far."""
        return Extraction("".join(self._parts), encoding, fmt, tuple(self._blocks), tuple(notes))


def _mean_confidence(
    before: Block, raw: MappedText, confidence: float | None, length: int
) -> float | None:
    """The OCR confidence of a block continued by `length` more characters."""
    if before.ocr_confidence is None or confidence is None:
        return before.ocr_confidence if confidence is None else confidence
    earlier = len(raw) - length
    return round((before.ocr_confidence * earlier + confidence * length) / len(raw), 4)


def _group_confidence(group: list[Line]) -> float | None:
    weights = [(len(line.text), line.confidence) for line in group]
    known = [(n, c) for n, c in weights if c is not None]
    total = sum(n for n, _ in known)
    return round(sum(n * c for n, c in known) / total, 4) if total else None


def add_page_lines(builder: TextBuilder, lines: list[Line], page: int | None) -> None:
    """Write positioned lines as paragraphs in reading order (OCR of an image) where the
    builder stands: a picture in a Word document or on a slide starts no page of its own
    (an image file's frames start theirs, `builder.new_page()`, before this)."""
    add_pages(builder, [(page, lines)], new_pages=False)


def add_pages(
    builder: TextBuilder, pages: list[tuple[int | None, list[Line]]], *, new_pages: bool = True
) -> None:
    """Write pages of positioned lines as paragraphs in reading order (PDF pages, OCR).

    A paragraph that the end of a column or page cuts (its last line runs to the column's
    edge, the next column's first line is not indented) is continued, not split: it keeps
    the page where it starts and notes where it crosses to the next (`Block.page_breaks`).
    """
    read = [(page, reading_order(lines)) for page, lines in pages]
    # Whether this document marks paragraphs by first-line indents: then a line that is not
    # indented at the top of a column continues the paragraph even after a full stop.
    indents = uses_indents([column for _, columns in read for column in columns])
    laid_out = [
        (page, [(column_edges(column), paragraphs(column, indents)) for column in columns])
        for page, columns in read
    ]
    last: tuple[Line, tuple[float, float]] | None = None
    for page, columns in laid_out:
        if new_pages:
            builder.new_page()
        for edges, groups in columns:
            for i, group in enumerate(groups):
                continues = i == 0 and last is not None and runs_on(*last, group[0], edges, indents)
                builder.add(
                    "\n".join(line.text for line in group),
                    page=page,
                    ocr_confidence=_group_confidence(group),
                    transform=join_wrapped_lines,
                    continues=continues,
                )
            if groups:
                last = (groups[-1][-1], edges)
