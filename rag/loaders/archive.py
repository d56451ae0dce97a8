"""Open Office files (zip packages) safely: encryption, legacy formats and zip bombs refused."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from rag.loaders.base import LoadError

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MB = 1024 * 1024
# Office XML compresses about 5-20x; even a table-heavy workbook stays far under 100x. A zip
# bomb reaches 1000x and more, so a large member above this ratio is refused outright.
MAX_RATIO = 100
MAX_MEMBERS = 10_000
# Whatever the ratio, the unpacked parts are parsed in memory: cap their total.
MAX_UNPACKED = 512 * _MB
# The main part of each kind of Office package, and the extension it is saved with: a file
# of one kind named as another (an .xlsx renamed .docx) is told apart by what it holds.
_MAIN_PARTS = {
    "Word": ("word/document.xml", ".docx", "a Word document"),
    "Excel": ("xl/workbook.xml", ".xlsx", "an Excel workbook"),
    "PowerPoint": ("ppt/presentation.xml", ".pptx", "a PowerPoint deck"),
}


def open_package(
    path: Path, data: bytes, kind: str, marker: str = "[Content_Types].xml"
) -> zipfile.ZipFile:
    """Check an Office Open XML file before any parser reads it.

    Only the zip's central directory is read here: the declared uncompressed sizes are what
    Python's zipfile will let a member inflate to, so checking them bounds memory before a
    single byte is decompressed.

    Args:
        path: For error messages.
        data: The file's bytes.
        kind: "Word", "Excel", "PowerPoint" or "EPUB", for error messages.
        marker: A part every package of the kind holds (EPUB: `META-INF/container.xml`).

    Returns:
        The open package, members checked.

    Raises:
        LoadError: A password-protected file, a legacy binary file, not a zip, a zip bomb.
    """
    if data.startswith(_OLE_MAGIC):
        # An encrypted .docx/.xlsx/.pptx is an OLE compound file holding the encrypted zip.
        if "EncryptedPackage".encode("utf-16-le") in data:
            raise LoadError(
                path, f"password-protected {kind} file (encrypted); remove the password"
            )
        raise LoadError(
            path, f"legacy binary {kind} file (.doc/.xls/.ppt); save it as the modern format"
        )
    try:
        package = zipfile.ZipFile(io.BytesIO(data))
        members = package.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise LoadError(path, f"not a valid {kind} file (truncated or damaged: {e})") from None
    if len(members) > MAX_MEMBERS:
        raise LoadError(path, f"{kind} package holds {len(members)} parts (limit {MAX_MEMBERS})")
    unpacked = 0
    for member in members:
        unpacked += member.file_size
        if member.flag_bits & 0x1:
            raise LoadError(path, f"encrypted part {member.filename} in the {kind} package")
        if member.file_size > 10 * _MB and member.file_size > MAX_RATIO * max(
            member.compress_size, 1
        ):
            raise LoadError(
                path,
                f"zip bomb: part {member.filename} inflates {member.compress_size} bytes to "
                f"{member.file_size / _MB:.0f} MB",
            )
    names = set(package.namelist())
    if marker not in names:
        raise LoadError(path, f"not a {kind} file (a zip archive without {marker})")
    if kind in _MAIN_PARTS and _MAIN_PARTS[kind][0] not in names:
        for part, extension, what in _MAIN_PARTS.values():
            if part in names:
                raise LoadError(path, f"a {path.suffix} name on {what}: rename it to {extension}")
    if unpacked > MAX_UNPACKED:
        raise LoadError(
            path,
            f"{kind} package unpacks to {unpacked / _MB:.0f} MB "
            f"(limit {MAX_UNPACKED / _MB:.0f} MB)",
        )
    return package


def repackaged(package: zipfile.ZipFile, content_types: dict[bytes, bytes]) -> io.BytesIO:
    """A copy of `package` whose `[Content_Types].xml` has `content_types` replaced.

    Used to read macro-enabled files (.docm, .pptm) with parsers that accept only the plain
    content type. The macros (vbaProject.bin) stay an opaque blob: nothing parses or runs them.
    """
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as copy:
        for member in package.infolist():
            body = package.read(member)
            if member.filename == "[Content_Types].xml":
                for old, new in content_types.items():
                    body = body.replace(old, new)
            copy.writestr(member, body)
    out.seek(0)
    return out
