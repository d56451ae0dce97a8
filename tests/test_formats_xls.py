"""Legacy .xls loader (xlrd): rows with their column headers, sheets, and refused files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from rag.loaders.base import LoadError, LoadOptions
from rag.loaders.xls import XlsLoader
from tests.formats_samples import OPTIONS, check_extraction, encrypted_office_file, zip_bytes

xlwt = pytest.importorskip("xlwt", reason="the dev extra writes .xls files")


def workbook(tmp_path: Path) -> Path:
    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("价目表")
    sheet.write(0, 0, "产品")
    sheet.write(0, 1, "规格")
    sheet.write_merge(0, 0, 2, 3, "价格")  # a header over two columns, named under it
    sheet.write(1, 2, "零售")
    sheet.write(1, 3, "批发")
    sheet.write(2, 0, "螺丝")
    sheet.write(2, 1, "M3")
    sheet.write(2, 2, 12)
    sheet.write(2, 3, 10.5)
    # An empty row is skipped.
    sheet.write(4, 0, "螺母")
    sheet.write(4, 1, True)
    sheet.write(4, 3, dt.datetime(2024, 5, 1, 9, 30), xlwt.easyxf(num_format_str="YYYY-MM-DD"))
    book.add_sheet("空白")
    notes = book.add_sheet("备注")
    notes.write(0, 0, "说明")
    notes.write(1, 0, "价格含税")
    path = tmp_path / "价目.xls"
    book.save(str(path))
    return path


def test_rows_are_paragraphs_with_their_headers_and_sheets(tmp_path: Path) -> None:
    path = workbook(tmp_path)
    extraction = XlsLoader().extract(path, path.read_bytes(), OPTIONS)
    check_extraction(extraction)
    assert [(b.sheet, b.text.text) for b in extraction.blocks] == [
        ("价目表", "产品: 螺丝；规格: M3；价格-零售: 12；价格-批发: 10.5"),
        ("价目表", "产品: 螺母；规格: 是；价格-批发: 2024-05-01"),  # as YYYY-MM-DD shows it
        ("备注", "说明: 价格含税"),
    ]


def test_row_limit_stops_and_says_where(tmp_path: Path) -> None:
    path = workbook(tmp_path)
    options = LoadOptions(max_bytes=1 << 30, max_rows=1)
    extraction = XlsLoader().extract(path, path.read_bytes(), options)
    assert len(extraction.blocks) == 1
    assert any("row limit" in note for note in extraction.notes)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (encrypted_office_file(), "not a readable Excel file|encrypted"),
        (zip_bytes({"[Content_Types].xml": b"<Types/>"}), "rename it to .xlsx"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, "not a readable Excel file"),
        (b"name,price\n", "not an Excel 97-2003 file"),
    ],
    ids=["encrypted", "xlsx-renamed", "damaged", "csv-renamed"],
)
def test_bad_files_are_refused_with_their_reason(tmp_path: Path, data: bytes, reason: str) -> None:
    path = tmp_path / "bad.xls"
    with pytest.raises(LoadError, match=reason):
        XlsLoader().extract(path, data, OPTIONS)


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    data = workbook(tmp_path).read_bytes()
    path = tmp_path / "cut.xls"
    with pytest.raises(LoadError):
        XlsLoader().extract(path, data[: len(data) // 2], OPTIONS)


def test_percentages_are_written_as_shown(tmp_path: Path) -> None:
    # Excel stores 15.3% as 0.153: written bare, a row said `增长率: 0.153`.
    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("业绩")
    for c, name in enumerate(["地区", "增长率", "销售额"]):
        sheet.write(0, c, name)
    sheet.write(1, 0, "华东")
    sheet.write(1, 1, 0.153, xlwt.easyxf(num_format_str="0.0%"))
    sheet.write(1, 2, 0.153)
    path = tmp_path / "业绩.xls"
    book.save(str(path))
    extraction = XlsLoader().extract(path, path.read_bytes(), OPTIONS)
    assert [b.text.text for b in extraction.blocks] == ["地区: 华东；增长率: 15.3%；销售额: 0.153"]
