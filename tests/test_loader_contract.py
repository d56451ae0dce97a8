"""Contract test of the `Loader` protocol: every registered loader passes the same suite.

A new format's loader is registered in `rag.loaders.registry.LOADERS` and given a sample here
(`MAKE_SAMPLE`: bytes holding the words `质量是基础` and `安全是底线`).
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest

from rag.ingest.document import load_document
from rag.loaders.base import Extraction, Loader, LoadError, LoadOptions, NoTextError
from rag.loaders.registry import EXTENSIONS, LOADERS, loader_for
from tests.formats_samples import chromium_pdf, paragraphs_html

WORDS = ("质量是基础", "安全是底线")


def _docx() -> bytes:
    import docx

    document = docx.Document()
    for words in WORDS:
        document.add_paragraph(f"{words}。")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _xlsx() -> bytes:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in (("要点",), *((w,) for w in WORDS)):
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def _pptx() -> bytes:
    import pptx

    deck = pptx.Presentation()
    for words in WORDS:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        assert slide.shapes.title is not None
        slide.shapes.title.text = words
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def _pdf() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = chromium_pdf(Path(folder), paragraphs_html([f"{w}。" for w in WORDS]))
        return path.read_bytes()


def _epub() -> bytes:
    from tests.formats_samples import zip_bytes

    opf = (
        '<package xmlns="http://www.idpf.org/2007/opf"><manifest>'
        '<item id="c" href="c.xhtml" media-type="application/xhtml+xml"/></manifest>'
        '<spine><itemref idref="c"/></spine></package>'
    )
    container = '<container><rootfiles><rootfile full-path="c.opf"/></rootfiles></container>'
    chapter = "<html><body>" + "".join(f"<p>{w}。</p>" for w in WORDS) + "</body></html>"
    return zip_bytes(
        {
            "META-INF/container.xml": container.encode(),
            "c.opf": opf.encode(),
            "c.xhtml": chapter.encode(),
        }
    )


def _xls() -> bytes:
    import xlwt  # the dev extra

    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("要点")
    for row, text in enumerate(("要点", *WORDS)):
        sheet.write(row, 0, text)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _png() -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (520, 200), "white")
    font = ImageFont.truetype(CJK_FONT, 40)
    draw = ImageDraw.Draw(image)
    for row, words in enumerate(WORDS):
        draw.text((30, 30 + 90 * row), f"{words}。", fill="black", font=font)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


# A sample per format, built on first use: bytes holding both of WORDS.
MAKE_SAMPLE: dict[str, Callable[[], bytes]] = {
    "text": lambda: "质量是基础。\n\n安全是底线。\n".encode(),
    "markdown": lambda: "# 质量是基础\n\n安全是底线。\n".encode(),
    "html": lambda: (
        "<html><body><p>质量是基础。</p><nav>首页</nav><p>安全是底线。</p></body></html>"
    ).encode(),
    "csv": lambda: "要点\n质量是基础\n安全是底线\n".encode(),
    "docx": _docx,
    "xlsx": _xlsx,
    "pptx": _pptx,
    "pdf": _pdf,
    "image": _png,
    "epub": _epub,
    "xls": _xls,
}
CJK_FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
OPTIONS = LoadOptions(max_bytes=1 << 20)


@cache
def sample(format: str) -> bytes:
    return MAKE_SAMPLE[format]()


@pytest.fixture(params=LOADERS, ids=lambda loader: loader.format)
def loader(request: pytest.FixtureRequest) -> Loader:
    loader: Loader = request.param
    return loader


def extract(loader: Loader, tmp_path: Path) -> Extraction:
    path = tmp_path / f"sample{loader.extensions[0]}"
    path.write_bytes(sample(loader.format))
    return loader.extract(path, path.read_bytes(), OPTIONS)


def test_every_loader_has_a_sample_and_its_extensions_are_lower_case_with_a_dot(
    loader: Loader,
) -> None:
    assert loader.format in MAKE_SAMPLE
    assert loader.extensions and all(
        e.startswith(".") and e == e.lower() for e in loader.extensions
    )
    assert all(loader_for(Path(f"x{e.upper()}")) is loader for e in loader.extensions)


def test_blocks_map_every_character_into_the_extracted_text(loader: Loader, tmp_path: Path) -> None:
    extraction = extract(loader, tmp_path)
    assert extraction.format == loader.format and extraction.encoding
    lines = extraction.text.split("\n")
    texts = []
    for block in extraction.blocks:
        assert 1 <= block.line_start <= block.line_end <= len(lines)
        for i, ch in enumerate(block.text.text):
            a, b = int(block.text.starts[i]), int(block.text.ends[i])
            assert 0 <= a <= b <= len(extraction.text)
            if b - a == 1:
                assert extraction.text[a] == ch or not ch.strip()
        texts.append(block.text.text)
    joined = "".join(texts)
    assert "质量是基础" in joined and "安全是底线" in joined


def test_a_document_loads_with_numbered_cited_paragraphs(loader: Loader, tmp_path: Path) -> None:
    path = tmp_path / f"doc{loader.extensions[0]}"
    path.write_bytes(sample(loader.format))
    document = load_document(path, OPTIONS)
    assert [p.number for p in document.paragraphs] == sorted(p.number for p in document.paragraphs)
    for p in document.paragraphs:
        a, b = p.source_span()
        assert document.source.text[a:b].strip()  # offsets index the extracted text


def test_an_unreadable_file_is_a_load_error_with_a_reason(loader: Loader, tmp_path: Path) -> None:
    path = tmp_path / f"bad{loader.extensions[0]}"
    with pytest.raises(LoadError) as err:
        loader.extract(path, b"\x00\x01\x02\x00\xff\xfe\x00\x00binary", OPTIONS)
    assert err.value.reason and err.value.path == str(path)
    # Not read is not empty: an indexed earlier version of the file is kept.
    assert not isinstance(err.value, NoTextError)


def _blank_docx() -> bytes:
    import docx

    out = io.BytesIO()
    docx.Document().save(out)
    return out.getvalue()


def _blank_pptx() -> bytes:
    import pptx

    deck = pptx.Presentation()
    deck.slides.add_slide(deck.slide_layouts[6])  # a blank layout
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def _blank_xlsx() -> bytes:
    import openpyxl

    out = io.BytesIO()
    openpyxl.Workbook().save(out)
    return out.getvalue()


def _blank_pdf() -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# Documents read whole that hold no text: what makes a re-ingest remove an indexed version.
MAKE_BLANK: dict[str, Callable[[], bytes]] = {
    "empty.txt": lambda: b"",
    "spaces.txt": lambda: b" \n\t\n",
    "markup.html": lambda: b"<html><body><p> </p><nav>  </nav></body></html>",
    "blank.docx": _blank_docx,
    "blank.pptx": _blank_pptx,
    "blank.xlsx": _blank_xlsx,
    "empty.csv": lambda: b"",
    "blank.pdf": _blank_pdf,
}


@pytest.mark.parametrize("name", MAKE_BLANK)
def test_a_document_read_whole_with_no_text_is_a_no_text_error(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(MAKE_BLANK[name]())
    with pytest.raises(NoTextError) as err:
        load_document(path, OPTIONS)
    assert err.value.reason


def test_the_registry_refuses_an_unknown_extension() -> None:
    assert ".exe" not in EXTENSIONS
    with pytest.raises(LoadError, match=r"unsupported extension \.exe"):
        loader_for(Path("setup.exe"))
