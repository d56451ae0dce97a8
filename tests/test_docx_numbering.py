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


_NS = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def _paragraph(num_id: int) -> object:
    from lxml import etree

    return etree.fromstring(
        f'<w:p {_NS}><w:pPr><w:numPr><w:ilvl w:val="0"/><w:numId w:val="{num_id}"/></w:numPr>'
        "</w:pPr></w:p>"
    )


def test_a_list_linked_to_a_numbering_style_counts_with_that_style() -> None:
    # Word's list styles: abstract 1 only says "use the numbering of style OutlineList",
    # whose own numbering instance names abstract 0. Both lists count as one.
    from lxml import etree

    from rag.loaders.docx_numbering import Numbering

    numbering = etree.fromstring(
        f'<w:numbering {_NS}><w:abstractNum w:abstractNumId="0">'
        '<w:styleLink w:val="OutlineList"/><w:lvl w:ilvl="0"><w:start w:val="1"/>'
        '<w:numFmt w:val="chineseCounting"/><w:lvlText w:val="%1、"/><w:suff w:val="nothing"/>'
        '</w:lvl></w:abstractNum><w:abstractNum w:abstractNumId="1">'
        '<w:numStyleLink w:val="OutlineList"/></w:abstractNum>'
        '<w:num w:numId="1"><w:abstractNumId w:val="0"/></w:num>'
        '<w:num w:numId="2"><w:abstractNumId w:val="1"/></w:num></w:numbering>'
    )
    styles = etree.fromstring(
        f'<w:styles {_NS}><w:style w:type="numbering" w:styleId="OutlineList"><w:pPr>'
        '<w:numPr><w:numId w:val="1"/></w:numPr></w:pPr></w:style></w:styles>'
    )
    counted = Numbering(numbering, styles)
    assert [counted.label(_paragraph(n)) for n in (1, 2, 2)] == ["一、", "二、", "三、"]
