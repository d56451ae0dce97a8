"""PDF loader: the real sample files, Chromium-printed Chinese PDFs, scans and bad input."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rag.loaders.base import LoadError, LoadOptions
from rag.loaders.pdf import PdfLoader
from tests.formats_samples import (
    NO_OCR,
    OPTIONS,
    PARAGRAPHS,
    REALDOCS,
    chromium_pdf,
    extract,
    needs_chromium,
    needs_realdocs,
    paragraphs_html,
    texts,
)

RUNNING = """
@page { @top-center { content: "长江流域年度报告"; font-size: 9pt; }
        @bottom-center { content: "第 " counter(page) " 页"; font-size: 9pt; } }
.columns { column-count: 2; column-gap: 8mm; }
"""
SMALL_PAGE = "@page { size: A6; margin: 8mm; } body { font-size: 11pt; }"


@needs_realdocs
def test_langchain_pdf_reads_eight_pages_in_column_order() -> None:
    extraction = extract(REALDOCS / "langchain.pdf", NO_OCR)
    assert extraction.format == "pdf"
    assert {b.page for b in extraction.blocks} == set(range(1, 9))
    found = texts(extraction)
    intro = found.index("I. INTRODUCTION")
    body = next(i for i, t in enumerate(found) if t.startswith("The past decade has witnessed"))
    assert extraction.blocks[body].page == 2 and body == intro + 1
    # Wrapped English lines join with one space; the two columns do not interleave.
    assert found[body].startswith(
        "The past decade has witnessed an unparalleled evolution in the realm of artificial "
        "intelligence (AI). This period, characterized by the ascendancy of deep learning"
    )
    assert "1050" not in found  # the page number at the foot of page 2
    assert any("running headers" in note for note in extraction.notes)


@needs_realdocs
def test_ocr_test_pdf_reads_text_layer_and_ocrs_the_image() -> None:
    extraction = extract(REALDOCS / "ocr_test.pdf")
    by_text = {b.text.text: b for b in extraction.blocks}
    assert by_text["我是文字"].ocr_confidence is None
    assert by_text["我是文字"].page == 1
    ocr = [b for b in extraction.blocks if b.ocr_confidence is not None]
    assert any("横向文本框" in b.text.text for b in ocr)
    assert all(0.5 < (b.ocr_confidence or 0) <= 1 for b in ocr)
    assert texts(extract(REALDOCS / "ocr_test.pdf", NO_OCR)) == ["我是文字"]


@pytest.fixture(scope="module")
def one_column(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pdf")
    # Paragraphs kept whole on a page, so that each is exactly one block.
    html = "<h1>江河与名胜</h1>" + paragraphs_html(PARAGRAPHS * 6)
    return chromium_pdf(folder, html, "one", "p { break-inside: avoid; }")


@needs_chromium
def test_chinese_lines_join_without_spaces_one_block_per_paragraph(one_column: Path) -> None:
    extraction = extract(one_column)
    found = texts(extraction)
    assert found[0] == "江河与名胜"
    assert found[1:] == PARAGRAPHS * 6
    # The paragraphs wrapped over several lines of the page: their line breaks were deleted.
    assert all(b.line_end > b.line_start for b in extraction.blocks[1:])
    assert {b.page for b in extraction.blocks} == {1, 2}
    assert extraction.text.count("\f") == 1


@needs_chromium
def test_two_columns_running_header_and_page_numbers(tmp_path: Path) -> None:
    html = "<h1>江河与名胜</h1><div class='columns'>" + paragraphs_html(PARAGRAPHS * 10) + "</div>"
    path = chromium_pdf(tmp_path, html, "two", RUNNING)
    extraction = extract(path)
    assert "长江流域年度报告" not in extraction.text
    assert "第 1 页" not in extraction.text and "第1 页" not in extraction.text
    assert len({b.page for b in extraction.blocks}) >= 2
    found = texts(extraction)
    assert found[0] == "江河与名胜"
    # Reading order: the paragraphs come back in sequence, each whole: one that runs on into
    # the next column or page is continued there, not cut.
    assert found[1:] == PARAGRAPHS * 10
    crossing = [b for b in extraction.blocks if b.page_breaks]
    assert crossing and all(b.page_breaks[0][1] == (b.page or 0) + 1 for b in crossing)


TABLE = """
<p>价格表如下。</p>
<table><tr><th>产品</th><th>规格</th><th colspan="2">价格</th></tr>
<tr><td>螺丝</td><td>M3</td><td>12元</td><td>批发10元</td></tr>
<tr><td>不锈钢六角螺母</td><td>M4</td><td>8元</td><td>批发6元</td></tr></table>
<p>以上价格含税。</p>
"""


@needs_chromium
@pytest.mark.parametrize(
    "borders",
    [
        "table { border-collapse: collapse; } td, th { border: 1px solid black; padding: 4px; }",
        "table { border-spacing: 2px; } td, th { border: 1px solid #888; width: 6em; }",
    ],
    ids=["collapsed-rules", "separate-boxes"],
)
def test_ruled_table_rows_are_paragraphs_with_their_column_headers(
    tmp_path: Path, borders: str
) -> None:
    extraction = extract(chromium_pdf(tmp_path, TABLE, "table", borders))
    # The header cell over two columns names both; the text layer alone would read a row as
    # `螺丝M3 12元批发10元`.
    assert texts(extraction) == [
        "价格表如下。",
        "产品: 螺丝；规格: M3；价格: 12元；价格: 批发10元",
        "产品: 不锈钢六角螺母；规格: M4；价格: 8元；价格: 批发6元",
        "以上价格含税。",
    ]
    assert {b.page for b in extraction.blocks} == {1}


@needs_chromium
def test_page_limit_reads_the_first_pages_and_notes_the_rest(one_column: Path) -> None:
    options = LoadOptions(max_bytes=1 << 30, max_pages=1)
    extraction = extract(one_column, options)
    assert {b.page for b in extraction.blocks} == {1}
    assert any("read the first 1 of 2 pages" in note for note in extraction.notes)


@needs_chromium
def test_ten_thousand_pages_stop_at_max_pages_quickly(one_column: Path, tmp_path: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.add_page(PdfReader(one_column).pages[0])
    for _ in range(9_999):
        writer.add_blank_page(width=595, height=842)
    big = tmp_path / "big.pdf"
    with big.open("wb") as f:
        writer.write(f)
    start = time.perf_counter()
    extraction = extract(big, OPTIONS)  # max_pages 2000
    assert time.perf_counter() - start < 60
    assert any("read the first 2000 of 10000 pages" in note for note in extraction.notes)
    assert {b.page for b in extraction.blocks} == {1}


@needs_chromium
def test_fonts_without_to_unicode_are_read_through_their_cmap(tmp_path: Path) -> None:
    from bench.formats import strip_to_unicode

    path = chromium_pdf(tmp_path, paragraphs_html(PARAGRAPHS), "good")
    garbled = strip_to_unicode(path, tmp_path / "garbled.pdf")
    extraction = extract(garbled, NO_OCR)  # PDFium reads glyph ids; pdfminer reads the cmap
    assert texts(extraction) == PARAGRAPHS
    assert any("without a ToUnicode map" in note for note in extraction.notes)


@needs_chromium
def test_garbage_text_layer_is_detected_and_not_indexed(tmp_path: Path) -> None:
    # Private-use code points: what a font with a made-up encoding leaves in the text layer.
    garbage = "".join(chr(0xE000 + (i * 37) % 3000) for i in range(300))
    path = chromium_pdf(tmp_path, f"<p>{garbage}</p>", "garbage")
    with pytest.raises(LoadError) as error:
        extract(path, NO_OCR)
    assert "garbage" in error.value.reason and "OCR is off" in error.value.reason


@needs_chromium
def test_scanned_page_is_ocrd_and_refused_without_ocr(tmp_path: Path) -> None:
    from bench.formats import scanned_pdf

    path = chromium_pdf(tmp_path, paragraphs_html(PARAGRAPHS[:1]), "small", SMALL_PAGE)
    scan = scanned_pdf(path, tmp_path / "scan.pdf", dpi=150)
    with pytest.raises(LoadError, match="OCR is off"):
        extract(scan, NO_OCR)
    extraction = extract(scan)
    assert all(b.ocr_confidence is not None and b.page == 1 for b in extraction.blocks)
    joined = "".join(texts(extraction))
    for phrase in ("长江是亚洲第一长河", "流域面积", "注入东海"):
        assert phrase in joined


def test_encrypted_pdf_is_refused_with_its_reason(tmp_path: Path) -> None:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt(user_password="secret", owner_password="owner")
    path = tmp_path / "locked.pdf"
    with path.open("wb") as f:
        writer.write(f)
    with pytest.raises(LoadError, match="password-protected"):
        extract(path)


@pytest.mark.parametrize(
    "data",
    [b"%PDF-1.7\n", b"not a pdf at all", b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\nendobj\n" * 3],
)
def test_malformed_pdf_is_refused(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bad.pdf"
    path.write_bytes(data)
    with pytest.raises(LoadError) as error:
        PdfLoader().extract(path, data, OPTIONS)
    assert error.value.reason


@needs_chromium
def test_truncated_pdf_is_read_or_refused_never_crashes(one_column: Path, tmp_path: Path) -> None:
    data = one_column.read_bytes()
    for cut in (len(data) // 3, len(data) // 2, len(data) - 200):
        path = tmp_path / f"cut{cut}.pdf"
        path.write_bytes(data[:cut])
        try:
            extract(path, NO_OCR)
        except LoadError as e:
            assert e.reason


def _turned(source: Path, rotation: int, target: Path) -> Path:
    """`source` stored as a reader's "rotate page" leaves it: each page's content drawn
    turned back by `rotation` degrees and `/Rotate rotation` set, so it shows as before."""
    from pypdf import PdfWriter, Transformation

    writer = PdfWriter(clone_from=source)
    for page in writer.pages:
        width, height = float(page.mediabox.width), float(page.mediabox.height)
        # pypdf turns counterclockwise; /Rotate turns the shown page clockwise.
        if rotation == 90:
            page.add_transformation(Transformation().rotate(90).translate(height, 0))
            page.mediabox.upper_right = (height, width)
        elif rotation == 180:
            page.add_transformation(Transformation().rotate(180).translate(width, height))
        else:
            page.add_transformation(Transformation().rotate(-90).translate(0, width))
            page.mediabox.upper_right = (height, width)
        page.cropbox = page.mediabox
        page.rotation = rotation
    with target.open("wb") as f:
        writer.write(f)
    return target


@needs_chromium
@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_a_page_turned_by_rotate_reads_as_it_is_shown(tmp_path: Path, rotation: int) -> None:
    # Positions came from the page's user space, before /Rotate: a turned page's lines ran
    # down the page and every character became a line of its own (`T\nh\ne`).
    html = TABLE + paragraphs_html(PARAGRAPHS * 4)
    upright = chromium_pdf(tmp_path, html, "upright", RUNNING + "p { break-inside: avoid; }")
    expected = extract(upright)
    assert len({b.page for b in expected.blocks}) == 2
    turned = extract(_turned(upright, rotation, tmp_path / "turned.pdf"))
    assert texts(turned) == texts(expected)
    assert turned.notes == expected.notes  # the running header and page numbers left out
    assert [b.page for b in turned.blocks] == [b.page for b in expected.blocks]


@needs_realdocs
@pytest.mark.parametrize("rotation", [90, 270])
def test_an_image_on_a_turned_page_is_ocrd_where_it_is_shown(tmp_path: Path, rotation: int) -> None:
    # The image's bounds were taken before /Rotate and the crop rendered another part of the
    # shown page: its text was lost (and the text layer read backwards, `字文是我`).
    upright = texts(extract(REALDOCS / "ocr_test.pdf"))
    turned = _turned(REALDOCS / "ocr_test.pdf", rotation, tmp_path / "turned.pdf")
    assert texts(extract(turned)) == upright
