"""EPUB books: the chapters of the spine in order, each read by the HTML loader, each a page.

An EPUB is a zip (checked like an Office package: zip bombs, encrypted parts) holding
`META-INF/container.xml`, which names the package document (OPF); its spine lists the
chapters' XHTML files in reading order. Each chapter is read by the HTML loader's block
parser (scripts, navigation and the `<head>` left out) and written as a page of the
extraction text, so a citation says `p.3` for the third chapter of the spine. No EPUB
library: EbookLib is AGPL, and the format needs only zipfile, ElementTree and our HTML reader.
A book whose chapters are encrypted (DRM) is refused with that reason; obfuscated fonts (the
usual entry of `encryption.xml`) do not matter.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from pathlib import Path
from urllib.parse import unquote
from xml.etree import ElementTree

from rag.loaders.archive import open_package
from rag.loaders.base import Extraction, LoadError, LoadOptions, NoTextError
from rag.loaders.html import html_blocks
from rag.loaders.layout import TextBuilder, join_wrapped_lines
from rag.loaders.text import decode_text

_HEAD = re.compile(r"<head[\s>].*?</head\s*>", re.IGNORECASE | re.DOTALL)
_CONTAINER = "META-INF/container.xml"
_XHTML = {"application/xhtml+xml", "text/html", "application/x-dtbook+xml"}


class EpubLoader:
    """EPUB 2 and 3 books."""

    format: str = "epub"
    extensions: tuple[str, ...] = (".epub",)

    def extract(self, path: Path, data: bytes, options: LoadOptions) -> Extraction:
        if not data.startswith(b"PK"):
            raise LoadError(path, "not a readable EPUB (not a zip archive; truncated or damaged)")
        package = open_package(path, data, "EPUB", marker=_CONTAINER)
        with package:
            chapters = _spine(path, package)
            if _encrypted(package, set(chapters)):
                raise LoadError(path, "EPUB chapters are encrypted (DRM); cannot be read")
            builder = TextBuilder()
            notes: list[str] = []
            missing = []
            count = min(len(chapters), options.max_pages)
            if count < len(chapters):
                notes.append(
                    f"chapter limit: read the first {count} of {len(chapters)} chapters "
                    "(RAG_MAX_PAGES)"
                )
            for number, name in enumerate(chapters[:count], 1):
                try:
                    raw = package.read(name)
                except (KeyError, zipfile.BadZipFile, OSError, EOFError):
                    missing.append(str(number))
                    continue
                try:
                    text, _ = decode_text(path, raw)
                except NoTextError:
                    continue  # an empty chapter (a placeholder): nothing to read
                except LoadError:
                    missing.append(str(number))  # binary or undecodable: this chapter only
                    continue
                builder.new_page()
                for block in html_blocks(_HEAD.sub("", text)):
                    builder.add(block.text.text, page=number, transform=join_wrapped_lines)
            if missing:
                notes.append(f"chapters {', '.join(missing)} missing or damaged, skipped")
        if not builder.block_count:
            if missing:  # chapters it could not read
                raise LoadError(path, f"no text found in the EPUB ({notes[-1]})")
            raise NoTextError(path, "no text found in the EPUB")
        return builder.build("epub", self.format, notes)


def _xml(path: Path, data: bytes, what: str) -> ElementTree.Element:
    # Entities are refused outright (no book needs them; an entity bomb is their only use).
    if b"<!ENTITY" in data:
        raise LoadError(path, f"EPUB {what} declares XML entities; refused")
    try:
        return ElementTree.fromstring(data)
    except ElementTree.ParseError as e:
        raise LoadError(path, f"EPUB {what} is not well-formed XML ({e})") from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _spine(path: Path, package: zipfile.ZipFile) -> list[str]:
    """The zip names of the spine's (X)HTML documents, in reading order."""
    container = _xml(path, package.read(_CONTAINER), "container")
    rootfile = next(
        (e.get("full-path") for e in container.iter() if _local(e.tag) == "rootfile"), None
    )
    if not rootfile or rootfile not in package.namelist():
        raise LoadError(path, "EPUB names no package document (OPF) that it holds")
    opf = _xml(path, package.read(rootfile), "package document")
    base = posixpath.dirname(rootfile)
    manifest = {
        item.get("id"): (item.get("href") or "", item.get("media-type") or "")
        for item in opf.iter()
        if _local(item.tag) == "item"
    }
    chapters = []
    for ref in opf.iter():
        if _local(ref.tag) != "itemref":
            continue
        href, media = manifest.get(ref.get("idref"), ("", ""))
        if href and media in _XHTML:
            chapters.append(posixpath.normpath(posixpath.join(base, unquote(href))))
    if not chapters:
        raise LoadError(path, "EPUB spine lists no chapters")
    return chapters


def _encrypted(package: zipfile.ZipFile, chapters: set[str]) -> bool:
    """Whether `META-INF/encryption.xml` encrypts any chapter (fonts alone do not count)."""
    try:
        data = package.read("META-INF/encryption.xml")
    except KeyError:
        return False
    if b"<!ENTITY" in data:
        return True
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError:
        return True
    return any(
        _local(element.tag) == "CipherReference" and unquote(element.get("URI") or "") in chapters
        for element in root.iter()
    )
