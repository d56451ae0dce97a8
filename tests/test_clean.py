"""clean_paragraphs on the demo seeds: each quirk is removed and no body text is lost."""

from __future__ import annotations

import json
import re
import time
from functools import cache
from pathlib import Path

import pytest
from opencc import OpenCC

from rag.ingest.clean import clean_paragraphs, clean_text, trailing_boilerplate
from rag.ingest.document import read_source
from rag.ingest.paragraphs import RawParagraph
from rag.text.offsets import MappedText
from rag.types import Paragraph, SourceText
from tests.texts import paragraph_spans

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "data" / "demo"
SEEDS_DEV = ROOT.parent / "shared" / "qa" / "seeds-dev.jsonl"
SEEDS = sorted(DEMO.glob("*.txt"))
HANZI = re.compile(r"[\u3400-\u9fff]")

# Paragraphs that are page chrome, not body text, in each seed (1-based raw numbers).
BOILERPLATE = {
    "000": [],
    "001": [10],  # 最新|活動|出訪|會議|論述|圖片
    "002": [13, 14, 15, 16],  # copyright, address, phone, ICP number and visit counter
    "003": [14, 15, 16, 17, 18],  # links to other articles
    "004": [38, 39, 40, 41, 42],  # links to other news
}


@cache
def seed(prefix: str) -> tuple[SourceText, tuple[RawParagraph, ...], tuple[Paragraph, ...]]:
    path = next(p for p in SEEDS if p.name.startswith(prefix))
    source = read_source(path, 1 << 20)
    raw = paragraph_spans(source)
    return source, tuple(raw), tuple(clean_paragraphs(raw, path.name))


def cleaned(prefix: str) -> dict[int, str]:
    return {p.number: p.text for p in seed(prefix)[2]}


def containing(prefix: str, needle: str) -> str:
    """The one cleaned paragraph of a seed that contains `needle`."""
    (text,) = [p for p in cleaned(prefix).values() if needle in p]
    return text


def clean(text: str) -> str:
    return clean_text(MappedText.from_source(text)).text


def hanzi(text: str) -> int:
    return len(HANZI.findall(text))


def fold(text: str) -> str:
    return str(OpenCC("t2s").convert(text))


# --- Seed 001: conversion damage and navigation ---------------------------------------------


def test_001_pinyin_readings_are_removed() -> None:
    text = "\n".join(cleaned("001").values())
    assert not re.search(r"\([a-zāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜü]+\)", text)
    for word in ("科學發展觀", "系統性", "企業代表", "城鎮化", "創新能力", "監管責任", "產品質量"):
        assert word in text
    raw = seed("001")[0].text
    assert raw.count("發(fā)") == 16 and "發(fā)" not in text


def test_real_parentheses_are_kept() -> None:
    for prefix, needle in (
        ("001", "《大質量工作機制建設工作方案》(以下簡稱《方案》)"),
        ("000", "本报讯 (记者何 可)8月21日"),
        ("000", "7个省(市)质监局(市场监督管理部门)"),
        ("002", "《质量发展纲要(2011-2020年)》(以下简称《纲要》)"),
    ):
        assert containing(prefix, needle)
    assert clean("中国加入世界贸易组织(WTO)以来") == "中国加入世界贸易组织(WTO)以来"
    assert clean("单位为毫克(mg)") == "单位为毫克(mg)"


def test_001_mojibake_question_marks_are_removed_between_hanzi() -> None:
    assert "??" in seed("001")[0].text
    assert not any("??" in p for p in cleaned("001").values())
    # `梢哉f` is the rest of the same damage (`。可以說` read one byte off); it is left alone.
    assert containing("001", "關乎國家形象梢哉f,質量無處不在")
    assert clean("你说什么??") == "你说什么??"
    assert clean("Really?? 是的") == "Really?? 是的"


def test_001_navigation_bar_paragraph_is_dropped_and_numbers_do_not_shift() -> None:
    numbers = list(cleaned("001"))
    assert 10 not in numbers
    assert numbers[numbers.index(9) + 1] == 11
    assert cleaned("001")[11] == "質檢總局發布《大質量工作機制建設工作方案》"


def test_navigation_run_inside_a_paragraph_is_removed() -> None:
    assert clean("首页 | 新闻 | 图片 | 视频 正文第一句。") == "正文第一句。"
    assert clean("正文。 最新|活動|出訪 后文。") == "正文。 后文。"
    # Two items are not a menu, and long items are sentences.
    assert clean("甲方 | 乙方") == "甲方 | 乙方"
    long = "加强质量支撑 共建质量强国 | 瑞普生物入选2024年全国质量月质量诚信倡议企业 | 其他消息"
    assert clean(long) == long


def test_001_read_more_links_are_removed_and_the_sentence_kept() -> None:
    paragraphs = cleaned("001")
    assert paragraphs[14].endswith("第四,要動員全社會積極參與質量工作。")
    assert paragraphs[18].endswith("要不斷加強學習,努力建設學習型機關、創新型機關。")
    assert not any("詳細閱讀" in p or ">>" in p for p in paragraphs.values())
    assert clean("详见通知。>>更多") == "详见通知。"
    assert clean("详见通知。更多>>") == "详见通知。"


@pytest.mark.parametrize(
    ("run", "kept"), [(" " * 30_000, " "), ("\u3000" * 30_000, " "), (">" * 30_000, ">" * 30_000)]
)
def test_a_long_run_of_spaces_or_arrows_is_cleaned_in_linear_time(run: str, kept: str) -> None:
    # The read-more rule tried `\s*` / `>{2,}` from every position of a run and rescanned
    # the rest of it each time: 30,000 spaces (padding in a scraped page or a text export)
    # took about 40 s, 200,000 hours, and the ingest hung on the file. Now milliseconds.
    start = time.perf_counter()
    assert clean(f"长江{run}黄河。>>更多") == f"长江{kept}黄河。"
    assert time.perf_counter() - start < 2


def test_encyclopedia_reference_marks_are_removed_and_reference_lists_kept() -> None:
    marked = "该厂成立于1949年[1]，隶属于国务院[2-3][注 1]。"
    assert clean(marked) == "该厂成立于1949年，隶属于国务院。"
    assert clean("歷史[編輯] 該校創建於1902年[12]。") == "歷史 該校創建於1902年。"
    assert clean("地球是圆的[来源请求]。") == "地球是圆的。"
    # A reference list's entries, a link's text, and what is not a mark stay.
    assert clean("[1] 张三：《质量论》，2010年。") == "[1] 张三：《质量论》，2010年。"
    assert clean("见 [2] 第三章。") == "见 [2] 第三章。"
    assert clean("详见[1](http://example.com)。") == "详见[1](http://example.com)。"
    assert clean("数组a[1234]与标签[北京]。") == "数组a[1234]与标签[北京]。"


def test_a_quote_cut_where_a_reference_mark_was_maps_over_it() -> None:
    mapped = clean_text(MappedText.from_source("成立于1949年[1]，隶属于国务院。"))
    assert mapped.text == "成立于1949年，隶属于国务院。"
    start = mapped.text.index("1949")
    assert mapped.source_span(start, start + 5) == (3, 8)  # 1949年: the mark is not quoted
    assert mapped.source_span(start, start + 6) == (3, 12)  # 1949年，: the span holds it


# --- Seeds 002, 003, 004: trailing footers and link lists -----------------------------------


def test_002_site_footer_is_dropped() -> None:
    text = "\n".join(cleaned("002").values())
    for footer in ("Copyright", "版权所有", "ICP备", "联系电话", "地址", "E-mail", "总访问"):
        assert footer not in text
    assert max(cleaned("002")) == 12
    assert cleaned("002")[12].startswith("宣传贯彻《纲要》是一个长期的工作")


def test_002_header_with_date_and_views_is_kept() -> None:
    assert cleaned("002")[2] == "发布:2012/07/02 10:29:18,浏览:1404"


def test_003_trailing_article_links_are_dropped() -> None:
    paragraphs = cleaned("003")
    assert max(paragraphs) == 13
    assert not any("(2011-02-" in p for p in paragraphs.values())


def test_004_trailing_news_links_are_dropped() -> None:
    paragraphs = cleaned("004")
    assert max(paragraphs) == 37
    assert not any("(2024-10-" in p for p in paragraphs.values())


def test_footer_like_lines_are_kept_unless_they_end_the_document() -> None:
    body = "正文第一段。"
    top = ["联系电话:12345 地址:北京", body, "- 另一篇文章(2011-02-18)", body]
    assert trailing_boilerplate(top) == len(top)
    assert trailing_boilerplate([body, "如有疑问请拨打举报电话:12365。"]) == 2
    assert trailing_boilerplate([body, "版权所有", "", "- 链接(2011-02-18)"]) == 1


# --- Seed 000: white space --------------------------------------------------------------------


def test_000_unicode_spaces_become_single_spaces() -> None:
    raw = seed("000")[0].text
    assert "\u00a0" in raw and "\u00a0 \u00a0" in raw
    for text in cleaned("000").values():
        assert text == text.strip()
        assert not re.search(r"\s{2,}|[^\S ]", text)
    assert cleaned("000")[2] == "24.08.2015 15:01"
    assert cleaned("000")[5].startswith("支树平讲话 梅克保主持")
    assert clean("\u3000\u3000第一句\t\u2003第二句\u200b。 ") == "第一句 第二句。"


def test_soft_line_breaks_between_hanzi_add_no_space() -> None:
    assert clean("第一行\n  第二行") == "第一行第二行"
    assert clean("first line\nsecond") == "first line second"


def test_a_paragraph_empty_after_cleaning_is_dropped() -> None:
    raw = [
        RawParagraph(1, MappedText.from_source("正文。"), 1, 1),
        RawParagraph(2, MappedText.from_source("\u3000首页|新闻|图片\u3000", 4), 2, 2),
        RawParagraph(3, MappedText.from_source("后文。", 14), 3, 3),
    ]
    assert [(p.number, p.text, p.line_start) for p in clean_paragraphs(raw, "f.txt")] == [
        (1, "正文。", 1),
        (3, "后文。", 3),
    ]


# --- Every seed: nothing of the body is lost, offsets still point at the source --------------


@pytest.mark.parametrize("prefix", sorted(BOILERPLATE))
def test_only_boilerplate_paragraphs_are_dropped(prefix: str) -> None:
    _, raw, paragraphs = seed(prefix)
    kept = {p.number for p in paragraphs}
    assert sorted({r.number for r in raw} - kept) == BOILERPLATE[prefix]


@pytest.mark.parametrize("prefix", sorted(BOILERPLATE))
def test_kept_paragraphs_lose_no_hanzi_but_link_text(prefix: str) -> None:
    _, raw, paragraphs = seed(prefix)
    by_number = {r.number: r.text.text for r in raw}
    for paragraph in paragraphs:
        before = by_number[paragraph.number]
        # Pinyin, `??` and spaces carry no hanzi: only `>>>詳細閱讀` may take some away.
        link_hanzi = 4 * before.count(">>>詳細閱讀")
        assert hanzi(before) - hanzi(paragraph.text) == link_hanzi, paragraph.number


@pytest.mark.parametrize("prefix", sorted(BOILERPLATE))
def test_body_hanzi_totals_are_explained_by_the_boilerplate(prefix: str) -> None:
    source, raw, paragraphs = seed(prefix)
    dropped = sum(hanzi(r.text.text) for r in raw if r.number in BOILERPLATE[prefix])
    links = 4 * source.text.count(">>>詳細閱讀")
    assert hanzi(source.text) - sum(hanzi(p.text) for p in paragraphs) == dropped + links


@pytest.mark.parametrize("prefix", sorted(BOILERPLATE))
def test_cleaned_characters_point_back_at_their_source(prefix: str) -> None:
    source, raw, paragraphs = seed(prefix)
    lines = {r.number: (r.line_start, r.line_end) for r in raw}
    for paragraph in paragraphs:
        assert (paragraph.line_start, paragraph.line_end) == lines[paragraph.number]
        a, _ = paragraph.source_span()
        first_line = source.text.count("\n", 0, a) + 1
        assert paragraph.line_start <= first_line <= paragraph.line_end
        for i, ch in enumerate(paragraph.text):
            x, y = paragraph.source_span(i, i + 1)
            if y - x == 1:
                assert source.text[x] == ch or (ch == " " and source.text[x].isspace())


def evidence_cases() -> list[tuple[str, str, str]]:
    cases = []
    for line in SEEDS_DEV.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row.get("file") and row.get("evidence"):
            cases.append((row["id"], row["file"], row["evidence"]))
    return cases


@pytest.mark.skipif(not SEEDS_DEV.exists(), reason="shared/qa/seeds-dev.jsonl not present")
@pytest.mark.parametrize(
    ("qid", "file", "evidence"), evidence_cases() if SEEDS_DEV.exists() else []
)
def test_seed_evidence_survives_cleaning(qid: str, file: str, evidence: str) -> None:
    source, _, paragraphs = seed(file[:3])
    # Evidence may be written in simplified while the file is traditional (seed 001).
    wanted = fold(evidence)
    assert wanted in fold(source.text), f"{qid}: evidence not in the raw file"
    assert any(wanted in fold(p.text) for p in paragraphs), qid
