"""Excel and CSV loaders: a row is one block named by its headers; sheets, merges, limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.loaders.base import LoadError, LoadOptions, NoTextError
from tests.formats_samples import (
    OPTIONS,
    REALDOCS,
    encrypted_office_file,
    extract,
    needs_realdocs,
    texts,
    with_zip_bomb,
)


@needs_realdocs
def test_realdocs_workbook_rows_carry_their_headers() -> None:
    extraction = extract(REALDOCS / "langchain-ChatGLM_closed.xlsx")
    assert extraction.format == "xlsx"
    assert {b.sheet for b in extraction.blocks} == {"Sheet1"}
    assert all(b.page is None for b in extraction.blocks)
    first = extraction.blocks[0].text.text
    assert "title: 加油~以及一些建议" in first
    assert "url: https://github.com/imClumsyPanda/langchain-ChatGLM/issues/2" in first
    assert "；" in first
    assert len(extraction.blocks) > 100


def _workbook(tmp_path: Path, name: str = "book.xlsx") -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    scores = book.active
    scores.title = "成绩"
    scores.append(["姓名", "成绩", None, "备注"])
    scores.append([None, "语文", "数学", None])
    scores.merge_cells("A1:A2")
    scores.merge_cells("B1:C1")
    scores.merge_cells("D1:D2")
    scores.append(["张三", 90, 85.5, "良好"])
    scores.append([None, None, None, None])  # an empty row
    scores.append(["李四", 78, 92, None])
    prices = book.create_sheet("价格表")
    prices.append(["类别", "产品", "价格"])
    prices.append(["五金", "螺丝", 0.5])
    prices.append([None, "螺母", 0.3])
    prices.merge_cells("A2:A3")  # a category merged down the rows
    book.create_sheet("空表")
    path = tmp_path / name
    book.save(path)
    return path


def test_merged_headers_sheets_and_empty_rows(tmp_path: Path) -> None:
    extraction = extract(_workbook(tmp_path))
    assert texts(extraction) == [
        "姓名: 张三；成绩-语文: 90；成绩-数学: 85.5；备注: 良好",
        "姓名: 李四；成绩-语文: 78；成绩-数学: 92",
        "类别: 五金；产品: 螺丝；价格: 0.5",
        "类别: 五金；产品: 螺母；价格: 0.3",
    ]
    assert [b.sheet for b in extraction.blocks] == ["成绩", "成绩", "价格表", "价格表"]
    # Each sheet starts a page of the extraction text.
    assert extraction.text.count("\f") == 1


def test_row_limit_stops_reading_and_says_where(tmp_path: Path) -> None:
    options = LoadOptions(max_bytes=1 << 30, max_rows=3)
    extraction = extract(_workbook(tmp_path), options)
    assert len(extraction.blocks) == 3
    assert any("row limit" in note and "价格表" in note for note in extraction.notes)


def test_macro_enabled_workbook_is_read_as_data(tmp_path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["项目", "金额"])
    book.active.append(["房租", 3000])
    path = tmp_path / "macro.xlsm"
    book.save(path)
    assert texts(extract(path)) == ["项目: 房租；金额: 3000"]


def test_sheet_starting_lower_down_keeps_merges_aligned(tmp_path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet["B3"] = "地区"
    sheet["C3"] = "人口"
    sheet["B4"] = "华东"
    sheet["C4"] = 100
    sheet["B5"] = None
    sheet["C5"] = 200
    sheet.merge_cells("B4:B5")
    path = tmp_path / "low.xlsx"
    book.save(path)
    assert texts(extract(path)) == ["地区: 华东；人口: 100", "地区: 华东；人口: 200"]


def test_encrypted_workbook_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "locked.xlsx"
    path.write_bytes(encrypted_office_file())
    with pytest.raises(LoadError, match="password-protected"):
        extract(path)


def test_zip_bomb_workbook_is_refused_before_inflating(tmp_path: Path) -> None:
    path = tmp_path / "bomb.xlsx"
    path.write_bytes(with_zip_bomb(_workbook(tmp_path).read_bytes()))
    with pytest.raises(LoadError, match="zip bomb"):
        extract(path)


@pytest.mark.parametrize("data", [b"PK\x03\x04broken", b"not a zip", b""])
def test_malformed_workbook_is_refused(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bad.xlsx"
    path.write_bytes(data)
    with pytest.raises(LoadError):
        extract(path)


def test_truncated_workbook_is_refused(tmp_path: Path) -> None:
    data = _workbook(tmp_path).read_bytes()
    path = tmp_path / "cut.xlsx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(LoadError, match="truncated or damaged"):
        extract(path)


def test_gbk_csv_rows_with_headers(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_bytes('产品,价格,备注\n螺丝,0.5,\n\n螺母,0.3,"含税，\n整箱"\n'.encode("gbk"))
    extraction = extract(path)
    assert extraction.encoding == "gb18030"
    assert texts(extraction) == [
        "产品: 螺丝；价格: 0.5",
        "产品: 螺母；价格: 0.3；备注: 含税，\n整箱",
    ]
    assert [b.line_start for b in extraction.blocks] == [1, 3]


def test_million_row_csv_is_cut_at_max_rows(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text("编号,名称\n" + "".join(f"{i},行{i}\n" for i in range(1_000_000)))
    extraction = extract(path, OPTIONS)  # max_rows 100,000
    assert len(extraction.blocks) == 100_000
    assert extraction.blocks[-1].text.text == "编号: 99999；名称: 行99999"
    assert any("row limit" in note for note in extraction.notes)


@pytest.mark.parametrize("encoding", ["big5", "gb18030", "utf-16-le", "utf-16-be"])
def test_csv_in_a_chinese_code_page_or_bomless_utf16_is_read(tmp_path: Path, encoding: str) -> None:
    # Excel on traditional Chinese Windows saves CSV in Big5, which is nearly always valid
    # GB18030 too: read as GB18030 it came back as mojibake (`﹎\ue6bd: ...`).
    path = tmp_path / "通訊錄.csv"
    path.write_bytes(
        "姓名,部門,電話\n王小明,資訊處,02-1234\n陳大華,會計室,02-5678\n".encode(encoding)
    )
    extraction = extract(path)
    assert texts(extraction) == [
        "姓名: 王小明；部門: 資訊處；電話: 02-1234",
        "姓名: 陳大華；部門: 會計室；電話: 02-5678",
    ]


def test_percentages_are_written_as_shown(tmp_path: Path) -> None:
    # Excel stores 15.3% as 0.153: written bare, a row said `增长率: 0.153`, and a question
    # about the rate was answered with a number a reader takes for 0.153%.
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["地区", "增长率", "占比", "备注", "销售额"])
    sheet.append(["华东", 0.153, 0.5, 0.25, 0.153])
    sheet["B2"].number_format = "0.0%"
    sheet["C2"].number_format = "0%"
    sheet["D2"].number_format = '"约"0.00"%"'  # a literal percent sign: not a percentage
    path = tmp_path / "业绩.xlsx"
    book.save(path)
    assert texts(extract(path)) == [
        "地区: 华东；增长率: 15.3%；占比: 50%；备注: 0.25；销售额: 0.153"
    ]


@pytest.mark.parametrize("data", [b",,,\r\n,,,\r\n", b"\n\n \n", b"\xef\xbb\xbf;;\n"])
def test_a_csv_emptied_of_its_rows_holds_no_text(tmp_path: Path, data: bytes) -> None:
    # A CSV emptied in Excel and saved again keeps its delimiters. It was refused with a
    # plain LoadError, unlike an emptied workbook, so the rows indexed from its earlier
    # version stayed in the index and kept being cited; a NoTextError removes them.
    path = tmp_path / "清单.csv"
    path.write_bytes(data)
    with pytest.raises(NoTextError, match="no rows in the CSV file"):
        extract(path)


def test_formula_cells_without_a_saved_value_are_noted(tmp_path: Path) -> None:
    # A workbook written by a program (openpyxl, pandas) holds formulas without their values;
    # nothing computes them, so the total was simply missing from its row, without a word.
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "汇总"
    for row in (["项目", "金额"], ["甲", 10], ["乙", 20], ["合计", "=SUM(B2:B3)"]):
        sheet.append(row)
    path = tmp_path / "汇总.xlsx"
    book.save(path)
    extraction = extract(path)
    assert texts(extraction)[-1] == "项目: 合计"
    assert extraction.notes == (
        "sheet 汇总: 1 formula cells have no saved value (written by a program, never saved "
        "in Excel) and were read as empty",
    )
    assert not extract(_workbook(tmp_path, "saved.xlsx")).notes  # no formulas: no note


def test_dates_are_written_as_their_format_shows_them(tmp_path: Path) -> None:
    # A date cell holds a day number, which openpyxl gives as a datetime at midnight: a row
    # said `签订日期: 2024-03-01 00:00`, a time Excel never shows. A format with no hours or
    # seconds shows the date alone; one with them keeps the time.
    import datetime as dt

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["合同", "签订日期", "生效", "会议时间"])
    sheet.append(
        ["甲", dt.date(2024, 3, 1), dt.datetime(2024, 3, 2, 9, 30), dt.datetime(2024, 3, 3, 14, 0)]
    )
    sheet["B2"].number_format = 'yyyy"年"m"月"d"日"'
    sheet["C2"].number_format = "yyyy-mm-dd"  # a time the format hides stays hidden
    sheet["D2"].number_format = "yyyy-mm-dd hh:mm"
    path = tmp_path / "合同.xlsx"
    book.save(path)
    assert texts(extract(path)) == [
        "合同: 甲；签订日期: 2024-03-01；生效: 2024-03-02；会议时间: 2024-03-03 14:00"
    ]


def test_a_title_row_above_the_header_is_the_sheets_title_not_its_header(tmp_path: Path) -> None:
    # Chinese workbooks open with a title ("2024年销售统计表") in A1, often merged across the
    # table, above the column names. Taken for the header, it named the first column and
    # the real names became a data row (`2024年销售统计表: 产品；B: 数量`), or prefixed every
    # name when merged. A row of one value above a row of several is now the sheet's title,
    # a block of its own, and the header is the row under it. A one-column list keeps its
    # first row as the header.
    import openpyxl

    book = openpyxl.Workbook()
    merged = book.active
    merged.title = "合并标题"
    merged.append(["2024年销售统计表"])
    merged.merge_cells("A1:C1")
    merged.append(["产品", "数量", "价格"])
    merged.append(["螺丝", 3, 1.5])
    plain = book.create_sheet("标题")
    plain.append([])
    plain.append(["2024年销售统计表"])
    plain.append(["产品", "数量", "价格"])
    plain.append(["螺母", 4, 2])
    column = book.create_sheet("名单")
    for name in ("姓名", "张三", "李四"):
        column.append([name])
    path = tmp_path / "销售.xlsx"
    book.save(path)
    assert texts(extract(path)) == [
        "2024年销售统计表",
        "产品: 螺丝；数量: 3；价格: 1.5",
        "2024年销售统计表",
        "产品: 螺母；数量: 4；价格: 2",
        "姓名: 张三",
        "姓名: 李四",
    ]


def test_durations_are_written_in_hours_as_excel_shows_them(tmp_path: Path) -> None:
    # A duration ([h]:mm, 工时 and 通话时长 sheets) came back as Python's "1 day, 2:30:00".
    import datetime as dt

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["项目", "工时", "通话时长"])
    sheet.append(["甲", dt.timedelta(hours=26, minutes=30), dt.timedelta(minutes=5, seconds=7)])
    sheet["B2"].number_format = "[h]:mm"
    sheet["C2"].number_format = "[h]:mm:ss"
    path = tmp_path / "工时.xlsx"
    book.save(path)
    assert texts(extract(path)) == ["项目: 甲；工时: 26:30；通话时长: 0:05:07"]


def test_excels_sep_line_names_the_delimiter_and_is_not_text(tmp_path: Path) -> None:
    # Excel reads (and some exports write) a first line `sep=;` naming the delimiter: it
    # was sniffed past and read as text, a block "sep=".
    path = tmp_path / "价格.csv"
    path.write_bytes("sep=|\r\n产品|价格;备注\r\n螺丝|1.5;含税\r\n".encode())
    assert texts(extract(path)) == ["产品: 螺丝；价格;备注: 1.5;含税"]
