"""A file to a `Document`: read its bytes, extract with its format's loader, number, clean."""

from __future__ import annotations

import hashlib
from pathlib import Path

from rag.ingest.clean import clean_paragraphs
from rag.ingest.paragraphs import RawParagraph, number_blocks
from rag.loaders.base import Extraction, LoadError, LoadOptions, NoTextError
from rag.loaders.registry import loader_for
from rag.types import Document, SourceText

_MB = 1024 * 1024


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """The bytes of a file some loader reads, within the size limit.

    Raises:
        LoadError: Unsupported extension, missing, unreadable, too large or empty file.
    """
    loader_for(path)  # an unsupported extension is refused before anything is read
    try:
        if not path.is_file():
            reason = "not a regular file" if path.exists() else "no such file"
            raise LoadError(path, reason)
        size = path.stat().st_size
        if size > max_bytes:
            raise LoadError(
                path, f"file too large ({size / _MB:.1f} MB > {max_bytes / _MB:g} MB limit)"
            )
        with path.open("rb") as f:
            # Read one byte past the limit: the file may have grown since the stat.
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise LoadError(path, f"cannot read file ({e.strerror or e})") from e
    if len(data) > max_bytes:
        raise LoadError(path, f"file too large (over the {max_bytes / _MB:g} MB limit)")
    if not data:
        raise NoTextError(path, "empty file")
    return data


def extract(path: Path, options: LoadOptions) -> tuple[bytes, Extraction]:
    """Read `path` and extract it with the loader of its extension."""
    data = read_bytes(path, options.max_bytes)
    return data, extract_bytes(path, data, options)


def extract_bytes(path: Path, data: bytes, options: LoadOptions) -> Extraction:
    """`data` extracted by the loader of `path`'s extension; any failure is a `LoadError`.

    Loaders turn what they expect to go wrong into `LoadError`s; this catches the rest (a
    parsing library failing in a way nobody foresaw on a crafted file), so that one bad file
    is reported and skipped instead of stopping the ingest of every file after it.
    """
    loader = loader_for(path)
    try:
        return loader.extract(path, data, options)
    except LoadError:
        raise
    except Exception as e:
        reason = f"the {loader.format} reader failed on this file ({type(e).__name__}: {e})"
        raise LoadError(path, reason) from e


def read_source(path: Path, max_bytes: int) -> SourceText:
    """Read one file's extracted text: what every offset of its citations indexes.

    Raises:
        LoadError: The file cannot be read or decoded.
    """
    _, extraction = extract(path, LoadOptions(max_bytes))
    return SourceText(str(path), extraction.text, extraction.encoding, extraction.format)


def read_paragraphs(path: Path, max_bytes: int) -> tuple[SourceText, list[RawParagraph]]:
    """A file's extracted text and its numbered raw paragraphs, before cleaning."""
    _, extraction = extract(path, LoadOptions(max_bytes))
    source = SourceText(str(path), extraction.text, extraction.encoding, extraction.format)
    return source, number_blocks(extraction.blocks)


def load_document(path: Path, options: LoadOptions | int) -> Document:
    """Load one file into numbered, cleaned paragraphs.

    Args:
        path: The file to load.
        options: The loaders' options, or only the size limit in bytes.

    Returns:
        The document; `content_hash` is the SHA-256 of the raw bytes, in hex.

    Raises:
        LoadError: The file cannot be read or decoded, or no text is left once it is
            parsed and cleaned.
    """
    if isinstance(options, int):
        options = LoadOptions(options)
    return parse_document(path, read_bytes(path, options.max_bytes), options)


def parse_document(path: Path, data: bytes, options: LoadOptions) -> Document:
    """`load_document` of bytes already read (and hashed) by the caller.

    Raises:
        LoadError: The bytes cannot be decoded, or no text is left once they are parsed
            and cleaned.
    """
    extraction = extract_bytes(path, data, options)
    source = SourceText(str(path), extraction.text, extraction.encoding, extraction.format)
    paragraphs = clean_paragraphs(number_blocks(extraction.blocks), source.path)
    if not paragraphs:
        # Markup only, boilerplate only, or nesting deeper than the markdown parser follows.
        raise NoTextError(path, f"no text left after reading it as {source.format}")
    return Document(source, tuple(paragraphs), hashlib.sha256(data).hexdigest(), extraction.notes)
