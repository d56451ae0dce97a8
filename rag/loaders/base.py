"""What every loader is and returns: the `Loader` protocol, its options, blocks and errors.

A loader turns a file's bytes into an `Extraction`: the document's text (every offset in the
pipeline indexes it) and its raw blocks in reading order, each mapped character by character
into that text. Numbering, cleaning and chunking are format-independent and happen after
(`rag.ingest`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from rag.text.offsets import MappedText


class LoadError(Exception):
    """A file that cannot be loaded, with a reason a person can act on."""

    def __init__(self, path: Path | str, reason: str) -> None:
        # Both go to `args` so the error survives pickling (e.g. from a worker process).
        super().__init__(str(path), reason)
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class NoTextError(LoadError):
    """A file that was read whole and holds no text: emptied, blank, or markup only.

    Unlike the other load errors this says something about the document rather than about
    the reading: an indexed earlier version of it no longer stands for the file.
    """


@dataclass(frozen=True)
class LoadOptions:
    max_bytes: int
    max_pages: int = 2000  # RAG_MAX_PAGES: PDF pages / slides read; the rest noted
    max_rows: int = 100_000  # RAG_MAX_ROWS: spreadsheet rows read; the rest noted
    ocr: Literal["auto", "off"] = "auto"  # RAG_OCR


@dataclass(frozen=True)
class Block:
    """One raw paragraph as a loader found it, before cleaning."""

    text: MappedText  # maps every character into Extraction.text
    line_start: int  # 1-based lines of Extraction.text, inclusive
    line_end: int
    page: int | None = None  # 1-based PDF page or slide; None where a format has none
    sheet: str | None = None  # spreadsheet sheet name
    ocr_confidence: float | None = None  # set when the text came from OCR (mean, 0-1)
    # A paragraph that runs on over a page break: (offset in Extraction.text, page) where each
    # later page's part starts; `page` is the page it starts on.
    page_breaks: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Extraction:
    text: str  # the document's extracted text: all offsets index it
    encoding: str  # detected text encoding; for binary formats the format name
    format: str  # the loader's format name
    blocks: tuple[Block, ...]  # in reading order; blank ones may be included (dropped later)
    notes: tuple[str, ...] = ()  # what was truncated or passed over inside the file


class Loader(Protocol):
    """Reads one file format. Heavy imports belong inside `extract`: `import rag` stays cheap."""

    format: str  # "text", "markdown", "html", "pdf", "docx", ...
    extensions: tuple[str, ...]  # lower case, with the dot: (".pdf",)

    def extract(self, path: Path, data: bytes, options: LoadOptions) -> Extraction:
        """The file's text and blocks; raises LoadError(path, reason) if it cannot be read."""
        ...
