"""The extraction text layout: blocks, page breaks, line joining, and their offset maps."""

from __future__ import annotations

import time

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.ingest.chunk import chunk_document
from rag.ingest.clean import clean_paragraphs
from rag.ingest.paragraphs import number_blocks
from rag.loaders.base import Extraction
from rag.loaders.geometry import Line, paragraphs, reading_order
from rag.loaders.layout import (
    TextBuilder,
    add_pages,
    join_wrapped_lines,
    normalise_block_text,
    read_span,
)
from rag.text.offsets import MappedText
from rag.types import Document, SourceText
from tests.formats_samples import check_extraction

_piece = st.text(
    alphabet=st.sampled_from(list("长江黄河，。、abc Def-\n\u00ad12\t\r\f")),
    min_size=0,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_piece, st.booleans(), st.booleans()), max_size=12))
def test_every_block_maps_into_the_text(pieces: list[tuple[str, bool, bool]]) -> None:
    builder = TextBuilder()
    for text, page_break, join in pieces:
        if page_break:
            builder.new_page()
        builder.add(text, page=1, transform=join_wrapped_lines if join else None)
    extraction = builder.build("test", "test")
    check_extraction(extraction)
    # Blocks are separated by a blank line; pages by a form-feed line; nothing else is written.
    written = [normalise_block_text(text) for text, _, _ in pieces]
    written = [w for w in written if w]
    assert all("\n\n" not in w and "\f" not in w for w in written)
    rebuilt = extraction.text.replace("\n\f\n", "\n\n").split("\n\n")
    assert [r for r in rebuilt if r] == written
    assert len(extraction.blocks) == len(written)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("长江abc ，.-\n\u00ad")), max_size=60))
def test_joining_lines_only_removes_or_replaces_line_breaks(text: str) -> None:
    joined = join_wrapped_lines(MappedText.from_source(text))
    assert "\n" not in joined.text
    # Every deleted character is a line break, white space around one, or a soft hyphen.
    covered = np.zeros(len(text), dtype=bool)
    for s, e in zip(joined.starts, joined.ends, strict=True):
        covered[int(s) : int(e)] = True
    assert all(text[i] in " \t\n\u00ad" for i in np.flatnonzero(~covered))


def test_chinese_lines_join_without_spaces_and_english_with_one() -> None:
    text = "长江是亚洲第一\n长河。\nIt flows\ninto the sea, self-\nmade, de\u00ad\nfined."
    joined = join_wrapped_lines(MappedText.from_source(text))
    assert joined.text == "长江是亚洲第一长河。It flows into the sea, self-made, defined."
    start, end = joined.source_span(0, 9)
    assert text[start:end] == "长江是亚洲第一\n长河"


def test_a_block_with_a_long_run_of_blanks_is_written_and_joined_in_linear_time() -> None:
    # `[ \t]*\n` was tried from every position of a run of spaces and rescanned the rest of
    # it each time: a Word paragraph laid out with 40,000 spaces took seconds per pattern.
    blanks = " " * 40_000
    start = time.perf_counter()
    builder = TextBuilder()
    builder.add(f"申请人{blanks}签字\n日期{blanks}\n\n盖章", transform=join_wrapped_lines)
    extraction = builder.build("docx", "docx")
    assert time.perf_counter() - start < 2
    check_extraction(extraction)
    assert extraction.blocks[0].text.text == f"申请人{blanks}签字日期盖章"
    # A break may start right after the blanks the previous one took.
    assert join_wrapped_lines(MappedText.from_source("长江\n \n黄河")).text == "长江黄河"


def test_layout_pages_split_on_form_feed_and_lines_count() -> None:
    builder = TextBuilder()
    builder.add("第一页第一段", page=1)
    builder.add("第一页\n第二段", page=1)
    builder.new_page()
    builder.add("第二页", page=2)
    builder.add("   ")  # blank: not written
    extraction: Extraction = builder.build("pdf", "pdf")
    assert extraction.text == "第一页第一段\n\n第一页\n第二段\n\f\n第二页"
    assert extraction.text.split("\f")[1].strip() == "第二页"
    assert [(b.line_start, b.line_end, b.page) for b in extraction.blocks] == [
        (1, 1, 1),
        (3, 4, 1),
        (6, 6, 2),
    ]
    check_extraction(extraction)


def _line(text: str, x0: float, top: float, x1: float, size: float = 10) -> Line:
    return Line(text, x0, top, x1, top + size, size)


def test_two_columns_read_left_then_right_and_headings_span() -> None:
    lines = [_line("标题横跨两栏的一行文字标题横跨两栏的一行文字", 50, 20, 500, 16)]
    for i in range(8):
        lines.append(_line(f"左栏第{i}行文字", 50, 60 + 14 * i, 250))
        lines.append(_line(f"右栏第{i}行文字", 300, 60 + 14 * i, 500))
    order = [line.text for column in reading_order(lines) for line in column]
    assert order[0].startswith("标题")
    assert order[1:9] == [f"左栏第{i}行文字" for i in range(8)]
    assert order[9:] == [f"右栏第{i}行文字" for i in range(8)]


def test_paragraph_breaks_on_short_line_indent_and_gap() -> None:
    column = [
        _line("　　第一段第一行很长很长很长很长", 70, 0, 300),
        _line("第一段最后一行", 50, 14, 150),  # short: the paragraph ends
        _line("第二段首行缩进很长很长很长很长", 70, 28, 300),  # indented
        _line("第二段第二行很长很长很长很长很长", 50, 42, 300),
        _line("第三段在空白之后很长很长很长很长", 50, 80, 300),  # a vertical gap
    ]
    groups = [[line.text[:3] for line in group] for group in paragraphs(column)]
    assert groups == [["　　第", "第一段"], ["第二段", "第二段"], ["第三段"]]


def _page(texts: list[tuple[str, float, float]], top: float = 0) -> list[Line]:
    """One column of lines `(text, x0, x1)`, 14 apart, the column from x=50 to x=300."""
    return [_line(text, x0, top + 14 * i, x1) for i, (text, x0, x1) in enumerate(texts)]


def test_a_paragraph_cut_by_the_page_end_is_continued_on_the_next_page() -> None:
    first = _page(
        [
            ("　　长江是亚洲第一长河和世界第三长", 70, 300),
            ("河，全长六千三百多千米。", 50, 200),  # short: this paragraph ends
            ("　　黄河是中国第二长河，发源于青藏", 70, 300),
            ("高原巴颜喀拉山脉北麓的约古宗列盆", 50, 300),  # runs to the edge: cut by the page
        ]
    )
    second = _page(
        [
            ("地，最后流入渤海。故宫又称紫禁城", 50, 300),  # not indented: the same paragraph
            ("，是明清两代的皇家宫殿。", 50, 190),
            ("　　北京大学创办于一八九八年，初名", 70, 300),
            ("京师大学堂。", 50, 120),
        ]
    )
    builder = TextBuilder()
    add_pages(builder, [(1, first), (2, second)])
    extraction = builder.build("pdf", "pdf")
    check_extraction(extraction)
    blocks = extraction.blocks
    assert [b.text.text.lstrip("\u3000") for b in blocks] == [
        "长江是亚洲第一长河和世界第三长河，全长六千三百多千米。",
        "黄河是中国第二长河，发源于青藏高原巴颜喀拉山脉北麓的约古宗列盆地，最后流入渤海。"
        "故宫又称紫禁城，是明清两代的皇家宫殿。",
        "北京大学创办于一八九八年，初名京师大学堂。",
    ]
    # The page break stays in the text where it was; the paragraph keeps the page it starts
    # on and where it crosses to the next.
    assert extraction.text.split("\f")[1].lstrip().startswith("地，最后流入渤海")
    assert [b.page for b in blocks] == [1, 1, 2]
    (offset, page), *_ = blocks[1].page_breaks
    assert page == 2 and extraction.text[offset] == "地"
    # Its chunks: the first sentence starting on page 2 starts a chunk cited on page 2.
    raw = number_blocks(blocks)
    paragraphs_ = clean_paragraphs(raw, "a.pdf")
    document = Document(SourceText("a.pdf", extraction.text, "pdf", "pdf"), tuple(paragraphs_), "")
    chunks = [c for c in chunk_document(document, 400) if c.source.paragraph == 2]
    assert [(c.text, c.source.page) for c in chunks] == [
        ("黄河是中国第二长河，发源于青藏高原巴颜喀拉山脉北麓的约古宗列盆地，最后流入渤海。", 1),
        ("故宫又称紫禁城，是明清两代的皇家宫殿。", 2),
    ]
    quoted = chunks[1].source
    assert read_span(extraction.text[quoted.char_start : quoted.char_end]).text == quoted.text


def test_a_new_paragraph_at_the_top_of_a_page_is_not_joined() -> None:
    # The last line fills the line by chance; the next page starts with an indent.
    first = _page([("　　长江是亚洲第一长河和世界第三", 70, 300), ("长河，全长六千米。", 50, 300)])
    second = _page([("　　黄河是中国第二长河，发源于青藏", 70, 300), ("高原。", 50, 100)])
    builder = TextBuilder()
    add_pages(builder, [(1, first), (2, second)])
    blocks = builder.build("pdf", "pdf").blocks
    assert [(b.page, b.page_breaks) for b in blocks] == [(1, ()), (2, ())]
