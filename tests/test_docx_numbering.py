"""Word's number formats, as list and clause numbers are written (rag.loaders.docx_numbering)."""

from __future__ import annotations

import pytest

from rag.loaders.docx_numbering import format_number


@pytest.mark.parametrize(
    ("fmt", "written"),
    [
        ("decimal", ["1", "10", "11", "20", "101", "1000"]),
        ("decimalZero", ["01", "10", "11", "20", "101", "1000"]),
        ("chineseCounting", ["一", "十", "十一", "二十", "一〇一", "一〇〇〇"]),
        ("chineseCountingThousand", ["一", "十", "十一", "二十", "一百〇一", "一千"]),
        ("japaneseCounting", ["一", "十", "十一", "二十", "百一", "千"]),
        ("chineseLegalSimplified", ["壹", "壹拾", "壹拾壹", "贰拾", "壹佰零壹", "壹仟"]),
        ("lowerLetter", ["a", "j", "k", "t", "wwww", "1000"]),
        ("upperRoman", ["I", "X", "XI", "XX", "CI", "M"]),
        ("decimalEnclosedCircleChinese", ["①", "⑩", "⑪", "⑳", "101", "1000"]),
        ("ideographTraditional", ["甲", "癸", "甲", "癸", "甲", "癸"]),
        ("ideographZodiac", ["子", "酉", "戌", "未", "辰", "卯"]),
        ("bullet", [""] * 6),
        ("someFutureFormat", ["1", "10", "11", "20", "101", "1000"]),
    ],
)
def test_number_formats(fmt: str, written: list[str]) -> None:
    assert [format_number(n, fmt) for n in (1, 10, 11, 20, 101, 1000)] == written


def test_chinese_counting_of_long_codes() -> None:
    # 民法典 has 1260 articles; 第一千二百六十条 is written in thousands.
    assert format_number(1260, "chineseCountingThousand") == "一千二百六十"
    assert format_number(10_010, "chineseCountingThousand") == "一万〇一十"
    assert format_number(120_000, "chineseLegalSimplified") == "壹拾贰万"


def test_a_hostile_start_value_writes_decimal_not_a_megabyte() -> None:
    assert format_number(10**9, "upperRoman") == str(10**9)
    assert format_number(10**9, "lowerLetter") == str(10**9)
    assert format_number(0, "upperRoman") == "0"
