"""Uploaded files: safe names inside the upload directory, written atomically."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import unicodedata
from pathlib import Path
from typing import BinaryIO

from python_multipart.multipart import parse_options_header

from rag.loaders.decode import decode
from rag.loaders.registry import EXTENSIONS

MAX_NAME_BYTES = 255
# The legacy encodings of Chinese file names a client may send (old Windows tools send the
# name in the system's code page: GBK, or Big5 in Taiwan and Hong Kong).
_CHINESE_CODECS = frozenset({"gb18030", "big5", "cp950", "big5hkscs"})
# Kana: a Japanese name in Shift-JIS also reads as (rare) hanzi in GBK, but as kana in
# Shift-JIS; a GBK or Big5 name never does (their bytes give half-width kana at most).
_KANA = re.compile(r"[\u3041-\u30ff]")
# Hidden names of files not yet under their own (never walked, never an upload's name): one
# being written (`hold_upload`), and a queued job's, `.queued-<job id>-...` (jobs_memory).
HELD_PREFIX = ".upload-"
QUEUED_PREFIX = ".queued-"


class UploadError(ValueError):
    """An upload refused as a whole, with the message the client gets."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def sent_name(filename: str | None, disposition: str | None) -> str | None:
    """The file name a client meant, from the one Starlette parsed and its part's raw
    `Content-Disposition` header (as latin-1, the way headers are read), or UploadError.

    Starlette decodes a name as UTF-8 and, failing that, as latin-1: a GBK or Big5 name
    (from an old Windows tool) came out as mojibake ("ÖÊ¼ì.txt" for 质检.txt), stored and
    cited as such. Such a name is decoded as file contents are (`rag.loaders.decode`), and
    refused if it does not read as Chinese. (`filename*=` is ignored, as RFC 7578 asks.)
    """
    if filename is None or disposition is None:
        return filename
    raw = parse_options_header(disposition)[1].get(b"filename")
    if raw is None or raw.isascii() or filename != raw.decode("latin-1"):
        return filename  # decoded as UTF-8 (or as the charset the request named)
    try:
        name, encoding = decode(raw)
    except ValueError:
        encoding, name = "", ""
    unread = encoding not in _CHINESE_CODECS or any(unicodedata.category(c) == "Co" for c in name)
    if unread or _reads_as_japanese(raw):
        raise UploadError(
            400,
            f"file name {raw!r} is neither UTF-8 nor Chinese text in GBK or Big5; "
            "send file names encoded as UTF-8",
        )
    return name


def _reads_as_japanese(raw: bytes) -> bool:
    try:
        return _KANA.search(raw.decode("cp932")) is not None
    except UnicodeDecodeError:
        return False


def safe_name(raw: str | None) -> str:
    """The base name an upload is stored and cited under, or UploadError.

    Only the last path component of the client's name is kept ("../../etc/x.txt" becomes
    "x.txt"), so a name can never point outside the upload directory.
    """
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or name in {".", ".."} or name.startswith("."):
        raise UploadError(400, f"file name {raw!r} is not a usable file name")
    # Look-alikes such as "．．／x.txt" (fullwidth) are plain characters here, but become a
    # path once anything applies NFKC; refused rather than renamed, so that fullwidth
    # punctuation common in Chinese names ("报告（一）.txt") keeps its name.
    folded = unicodedata.normalize("NFKC", name)
    if folded.startswith(".") or "/" in folded or "\\" in folded:
        raise UploadError(400, f"file name {raw!r} reads as a path once normalised (NFKC)")
    if any(unicodedata.category(c) in {"Cc", "Cf"} for c in name):
        raise UploadError(400, f"file name {raw!r} contains control characters")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise UploadError(400, f"file name {raw!r} is longer than {MAX_NAME_BYTES} bytes")
    if Path(name).suffix.lower() not in EXTENSIONS:
        kinds = ", ".join(sorted(EXTENSIONS))
        raise UploadError(415, f"{name}: unsupported file type; accepted: {kinds}")
    return name


def store_upload(directory: Path, name: str, content: BinaryIO) -> Path:
    """Write `content` to `directory/name` atomically: ingestion never reads half a file."""
    return place_upload(hold_upload(directory, content), directory, name)


def hold_upload(directory: Path, content: BinaryIO, prefix: str = HELD_PREFIX) -> Path:
    """`content` written whole to a hidden file of its own in `directory` (see `place_upload`)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, held = tempfile.mkstemp(dir=directory, prefix=prefix)
    try:
        with os.fdopen(fd, "wb") as out:
            while block := content.read(1 << 20):
                out.write(block)
    except BaseException:
        Path(held).unlink(missing_ok=True)
        raise
    return Path(held)


def place_upload(held: Path, directory: Path, name: str) -> Path:
    """Move a `hold_upload` file to `directory/name`: a rename within one file system, so
    the file appears under its name whole."""
    directory.mkdir(parents=True, exist_ok=True)
    target = (directory / name).resolve()
    if not target.is_relative_to(directory.resolve()):  # belt and braces over safe_name
        held.unlink(missing_ok=True)
        raise UploadError(400, f"file name {name!r} leaves the upload directory")
    return Path(shutil.move(held, target))
