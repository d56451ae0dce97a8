"""What every document loader gives and takes: options, blocks, the extraction, the protocol."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from rag.offsets import MappedText


class LoadError(Exception):
    """A file that cannot be loaded, with a reason a person can act on."""

    def __init__(self, path: Path | str, reason: str) -> None:
        # Both go to `args` so the error survives pickling (e.g. from a worker process).
        super().__init__(str(path), reason)
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class LoadOptions:
    """Limits and switches for one extraction (from the settings: `RAG_MAX_PAGES`...)."""

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


@dataclass(frozen=True)
class Extraction:
    """A document's extracted text and its blocks; every offset indexes `text`."""

    text: str  # the document's extracted text: all offsets index it
    encoding: str  # detected text encoding; for binary formats the format name
    format: str  # the loader's format name
    blocks: tuple[Block, ...]  # in reading order; blank ones may be included (dropped later)
    notes: tuple[str, ...] = ()  # what was truncated or passed over inside the file


class Loader(Protocol):
    """One file format: `extract` turns a file's bytes into an `Extraction`."""

    format: str  # "text", "markdown", "html", "pdf", "docx", ...
    extensions: tuple[str, ...]  # lower case, with the dot: (".pdf",)

    def extract(self, path: Path, data: bytes, options: LoadOptions) -> Extraction:
        """Raises LoadError(path, reason) for a file it cannot read."""
        ...
