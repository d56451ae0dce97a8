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
"""

from __future__ import annotations

import re
from collections.abc import Callable

from rag.loaders.base import Block, Extraction
from rag.loaders.geometry import Line, paragraphs, reading_order
from rag.text.offsets import MappedText

_BLANK_LINES = re.compile(r"[ \t\u3000]*\n(?:[ \t\u3000\f]*\n)+")
_LINE_BREAKS = re.compile(r"\r\n?|[\f\v\u2028\u2029\x85]")
BLOCK_SEPARATOR = "\n\n"
PAGE_SEPARATOR = "\n\f\n"

# Characters that join a wrapped line without a space: hanzi, kana, hangul, full-width forms
# and CJK punctuation. A line break between two of them (or between one of them and anything)
# is an artefact of wrapping, never a word boundary.
_CJK = (
    r"\u2e80-\u2fff\u3000-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
    r"\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef"
)
_CJK_BREAK = re.compile(rf"(?<=[{_CJK}])[ \t]*\n[ \t]*|[ \t]*\n[ \t]*(?=[{_CJK}])")
# A soft hyphen at a line end (a word split by the typesetter) goes with the line break; a
# hard hyphen stays and joins without a space (`self-` + `play`).
_HYPHEN_BREAK = re.compile(r"\u00ad\n|(?<=-)\n")
_OTHER_BREAK = re.compile(r"[ \t]*\n[ \t]*")


def join_wrapped_lines(mapped: MappedText) -> MappedText:
    """Join the lines of one wrapped paragraph: nothing between Chinese, a space elsewhere."""
    if "\n" not in mapped.text:
        return mapped
    mapped = mapped.sub(_CJK_BREAK, "")
    mapped = mapped.sub(_HYPHEN_BREAK, "")
    return mapped.sub(_OTHER_BREAK, " ")


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
    ) -> None:
        """Write one block; `transform` turns the written text into the block's text.

        Args:
            text: The block as written into the extraction text (normalised here).
            page: The 1-based page or slide.
            sheet: The spreadsheet sheet.
            ocr_confidence: Mean OCR confidence, for text that came from OCR.
            transform: Edits such as joining wrapped lines; the default keeps the text.
        """
        text = normalise_block_text(text)
        if not text:
            return
        if self._blocks:
            self._write(PAGE_SEPARATOR if self._pending_page_break else BLOCK_SEPARATOR)
        self._pending_page_break = False
        self._page_open = True
        start, first_line = self._length, self._line
        self._write(text)
        mapped = MappedText.from_source(text, start)
        if transform is not None:
            mapped = transform(mapped)
        self._blocks.append(Block(mapped, first_line, self._line, page, sheet, ocr_confidence))

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


def add_page_lines(builder: TextBuilder, lines: list[Line], page: int | None) -> None:
    """Write a page's positioned lines as paragraphs in reading order (PDF pages, OCR)."""
    for column in reading_order(lines):
        for group in paragraphs(column):
            weights = [(len(line.text), line.confidence) for line in group]
            known = [(n, c) for n, c in weights if c is not None]
            total = sum(n for n, _ in known)
            confidence = round(sum(n * c for n, c in known) / total, 4) if total else None
            builder.add(
                "\n".join(line.text for line in group),
                page=page,
                ocr_confidence=confidence,
                transform=join_wrapped_lines,
            )
