"""EPUB loader: spine order, chapters as pages, and the books it refuses with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.loaders.base import LoadError, LoadOptions
from rag.loaders.epub import EpubLoader
from tests.formats_samples import OPTIONS, check_extraction, texts, with_zip_bomb, zip_bytes

CONTAINER = b"""<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OEBPS/content.opf"
    media-type="application/oebps-package+xml"/></rootfiles>
</container>"""

OPF = b"""<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0">
  <manifest>
    <item id="c2" href="text/ch%202.xhtml" media-type="application/xhtml+xml"/>
    <item id="c1" href="text/ch1.xhtml" media-type="application/xhtml+xml"/>
    <item id="css" href="style.css" media-type="text/css"/>
  </manifest>
  <spine><itemref idref="c1"/><itemref idref="c2"/></spine>
</package>"""


def chapter(title: str, *paragraphs: str) -> bytes:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        "<?xml version='1.0' encoding='utf-8'?><html xmlns='http://www.w3.org/1999/xhtml'>"
        f"<head><title>书名</title><style>p {{ margin: 0 }}</style></head>"
        f"<body><h1>{title}</h1>{body}</body></html>"
    ).encode()


def book(**replace: bytes) -> bytes:
    members = {
        "mimetype": b"application/epub+zip",
        "META-INF/container.xml": CONTAINER,
        "OEBPS/content.opf": OPF,
        "OEBPS/style.css": b"p { color: red }",
        # Listed second in the manifest, read second by the spine.
        "OEBPS/text/ch 2.xhtml": chapter("第二章 黄河", "黄河是中国第二长河，\n全长五千千米。"),
        "OEBPS/text/ch1.xhtml": chapter("第一章 长江", "长江是亚洲第一长河。", "It flows\non."),
    }
    members.update(replace)
    return zip_bytes(members)


def load(tmp_path: Path, data: bytes, options: LoadOptions = OPTIONS) -> list[str]:
    path = tmp_path / "书.epub"
    path.write_bytes(data)
    extraction = EpubLoader().extract(path, data, options)
    check_extraction(extraction)
    return [f"{b.page}:{t}" for b, t in zip(extraction.blocks, texts(extraction), strict=True)]


def test_chapters_in_spine_order_each_a_page(tmp_path: Path) -> None:
    assert load(tmp_path, book()) == [
        "1:第一章 长江",
        "1:长江是亚洲第一长河。",
        "1:It flows on.",
        "2:第二章 黄河",
        "2:黄河是中国第二长河，全长五千千米。",
    ]


def test_chapter_limit_reads_the_first_and_notes_the_rest(tmp_path: Path) -> None:
    data = book()
    path = tmp_path / "书.epub"
    extraction = EpubLoader().extract(path, data, LoadOptions(max_bytes=1 << 30, max_pages=1))
    assert {b.page for b in extraction.blocks} == {1}
    assert any("first 1 of 2 chapters" in note for note in extraction.notes)


def test_missing_chapter_is_noted_and_the_rest_read(tmp_path: Path) -> None:
    data = zip_bytes(
        {
            "META-INF/container.xml": CONTAINER,
            "OEBPS/content.opf": OPF,
            "OEBPS/text/ch1.xhtml": chapter("第一章 长江", "长江是亚洲第一长河。"),
        }
    )
    path = tmp_path / "书.epub"
    extraction = EpubLoader().extract(path, data, OPTIONS)
    assert texts(extraction)[0] == "第一章 长江"
    assert any("chapters 2 missing" in note for note in extraction.notes)


@pytest.mark.parametrize(
    ("content", "note"),
    [
        (b"", None),
        (b" \n", None),
        (b"\x00\x01\x02\xff" * 8, "chapters 2 missing or damaged, skipped"),
    ],
    ids=["empty", "blank", "binary"],
)
def test_an_empty_or_undecodable_chapter_does_not_refuse_the_book(
    tmp_path: Path, content: bytes, note: str | None
) -> None:
    # A chapter that decodes to nothing raised NoTextError out of the loader: the whole book
    # was refused as "empty file (only white space)" (and, being "no text", an indexed
    # earlier version of it removed); an undecodable one refused the book too.
    data = book(**{"OEBPS/text/ch 2.xhtml": content})
    path = tmp_path / "书.epub"
    extraction = EpubLoader().extract(path, data, OPTIONS)
    check_extraction(extraction)
    assert texts(extraction) == ["第一章 长江", "长江是亚洲第一长河。", "It flows on."]
    assert [n for n in extraction.notes if "chapters" in n] == ([note] if note else [])


DRM = b"""<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container"
  xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData><enc:CipherData>
  <enc:CipherReference URI="OEBPS/text/ch1.xhtml"/></enc:CipherData></enc:EncryptedData>
</encryption>"""
FONT_ONLY = DRM.replace(b"OEBPS/text/ch1.xhtml", b"OEBPS/fonts/kai.ttf")
ENTITY_BOMB = b"""<?xml version="1.0"?><!DOCTYPE c [<!ENTITY a "aaaaaaaaaa">
<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><container>&b;</container>"""


def test_obfuscated_fonts_do_not_stop_the_book(tmp_path: Path) -> None:
    assert load(tmp_path, book(**{"META-INF/encryption.xml": FONT_ONLY}))[0] == "1:第一章 长江"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (book(**{"META-INF/encryption.xml": DRM}), "encrypted \\(DRM\\)"),
        (book(**{"META-INF/container.xml": ENTITY_BOMB}), "declares XML entities"),
        (book(**{"META-INF/container.xml": b"<container><rootfiles>"}), "not well-formed"),
        (book(**{"OEBPS/content.opf": b"<package><spine/></package>"}), "no chapters"),
        (zip_bytes({"mimetype": b"application/epub+zip"}), "without META-INF/container.xml"),
        (with_zip_bomb(book()), "zip bomb"),
        (book()[:300], "truncated or damaged"),
        (b"%PDF-1.7 not a book", "not a zip archive"),
        (
            book(**{"OEBPS/text/ch1.xhtml": b"<html/>", "OEBPS/text/ch 2.xhtml": b"<p> </p>"}),
            "no text found",
        ),
    ],
    ids=[
        "drm",
        "entities",
        "bad-xml",
        "empty-spine",
        "no-container",
        "zip-bomb",
        "truncated",
        "not-zip",
        "no-text",
    ],
)
def test_bad_books_are_refused_with_their_reason(tmp_path: Path, data: bytes, reason: str) -> None:
    with pytest.raises(LoadError, match=reason):
        load(tmp_path, data)
