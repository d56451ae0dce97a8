"""Word and PowerPoint loaders: body text in order, tables by header, OCR'd images, bad input."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from rag.loaders.base import LoadError, LoadOptions
from tests.formats_samples import (
    NO_OCR,
    REALDOCS,
    encrypted_office_file,
    extract,
    needs_realdocs,
    texts,
    with_zip_bomb,
)


@needs_realdocs
def test_realdocs_docx_text_table_and_ocrd_image() -> None:
    extraction = extract(REALDOCS / "ocr_test.docx")
    found = texts(extraction)
    assert found[:2] == ["我是文字", "我是表格1: 我是表格3；我是表格2: 我是表格4"]
    ocr = [b for b in extraction.blocks if b.ocr_confidence is not None]
    assert any("横向文本框" in b.text.text for b in ocr)
    assert all(b.page is None for b in extraction.blocks)
    assert texts(extract(REALDOCS / "ocr_test.docx", NO_OCR)) == found[:2]


@needs_realdocs
def test_realdocs_pptx_slide_is_a_page_without_master_placeholders() -> None:
    extraction = extract(REALDOCS / "ocr_test.pptx", NO_OCR)
    assert {b.page for b in extraction.blocks} == {1}
    found = texts(extraction)
    assert "我是文字" in found
    assert any(t.startswith("我是表格1: 我是表格3") for t in found)
    assert not any("单击此处" in t or "Click to" in t for t in found)


@needs_realdocs
def test_a_picture_in_a_document_or_on_a_slide_starts_no_page(tmp_path: Path) -> None:
    # Its OCR'd text was written after a form-feed line, so text.split("\f") no longer gave
    # the slides back (two "pages" for one slide) and a Word file got a page break.
    from pptx import Presentation
    from pptx.util import Inches

    assert "\f" not in extract(REALDOCS / "ocr_test.docx").text
    deck = Presentation()
    for n in (1, 2):
        slide = deck.slides.add_slide(deck.slide_layouts[6])  # blank
        box = slide.shapes.add_textbox(Inches(1), Inches(1), Inches(6), Inches(1))
        box.text_frame.text = f"第{n}页正文"
        if n == 1:
            slide.shapes.add_picture(str(REALDOCS / "ocr_test.jpg"), Inches(1), Inches(3))
    deck.save(str(tmp_path / "deck.pptx"))
    extraction = extract(tmp_path / "deck.pptx")
    slides = extraction.text.split("\f")
    assert len(slides) == 2 and "横向文本框" in slides[0] and "第2页正文" in slides[1]
    for block in extraction.blocks:
        first, _ = block.text.source_span()
        assert block.page == extraction.text.count("\f", 0, first) + 1, block.text.text


def _docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.sections[0].header.paragraphs[0].text = "机密文件 页眉"
    document.sections[0].footer.paragraphs[0].text = "页脚 第1页"
    document.add_heading("第一章 总则", level=1)
    document.add_paragraph("为了规范管理，制定本办法。")
    document.add_paragraph("第一项要求", style="List Bullet")
    document.add_paragraph("第二项要求", style="List Number")
    table = document.add_table(rows=3, cols=3)
    for r, row in enumerate(
        [["部门", "人数", "负责人"], ["财务部", "5", "王五"], ["人事部", "3", ""]]
    ):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    merged = document.add_table(rows=2, cols=3)
    merged.cell(0, 0).text = "项目"
    merged.cell(0, 1).merge(merged.cell(0, 2)).text = "说明"
    merged.cell(1, 0).text = "培训"
    merged.cell(1, 1).text = "每年两次"
    merged.cell(1, 2).text = "线上"
    document.add_paragraph("第一行\n第二行")
    document.save(str(path))
    return path


def test_docx_body_in_order_headers_and_footers_left_out(tmp_path: Path) -> None:
    extraction = extract(_docx(tmp_path / "rules.docx"))
    assert texts(extraction) == [
        "第一章 总则",
        "为了规范管理，制定本办法。",
        "第一项要求",
        "1. 第二项要求",  # the template's List Number style is numbered; its bullets write none
        "部门: 财务部；人数: 5；负责人: 王五",
        "部门: 人事部；人数: 3",
        "项目: 培训；说明: 每年两次；说明: 线上",
        "第一行\n第二行",
    ]
    assert "页眉" not in extraction.text and "页脚" not in extraction.text
    assert [b.line_start for b in extraction.blocks[:2]] == [1, 3]


_W_NS = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def _level(ilvl: int, fmt: str, text: str, *extra: str, start: int = 1) -> str:
    return (
        f'<w:lvl w:ilvl="{ilvl}"><w:start w:val="{start}"/><w:numFmt w:val="{fmt}"/>'
        f'<w:lvlText w:val="{text}"/>{"".join(extra)}</w:lvl>'
    )


# Auto-numbered regulation outlines, as Word and WPS write them.
_NUMBERING = [
    # 第一条 / （一） / 1. : a clause, its items, their points.
    _level(0, "chineseCounting", "第%1条", '<w:suff w:val="space"/>')
    + _level(1, "chineseCounting", "（%2）", '<w:suff w:val="nothing"/>')
    + _level(2, "decimal", "%3."),
    # 1. / 1.1 / a) that never restarts / a bullet level.
    _level(0, "decimal", "%1.")
    + _level(1, "decimal", "%1.%2")
    + _level(2, "lowerLetter", "%3)", '<w:lvlRestart w:val="0"/>')
    + _level(3, "bullet", "\uf0b7"),
    # 一、 through a paragraph style, counted in thousands; starts at 十.
    _level(0, "chineseCountingThousand", "%1、", '<w:suff w:val="nothing"/>', start=10),
    # 第一章 / 1.1 (w:isLgl writes the chapter in decimal) / ① / 甲 / I / 01.
    _level(0, "chineseCounting", "第%1章")
    + _level(1, "upperRoman", "%1.%2", "<w:isLgl/>")
    + _level(2, "decimalEnclosedCircleChinese", "%3")
    + _level(3, "ideographTraditional", "%4", '<w:suff w:val="space"/>')
    + _level(4, "decimalZero", "%5"),
]


def _numbered_docx(path: Path) -> Path:
    """Paragraphs Word numbers from word/numbering.xml; their text holds no number."""
    import docx
    from docx.oxml import parse_xml

    document = docx.Document()
    numbering = document.part.numbering_part.element
    for child in list(numbering):
        numbering.remove(child)
    for i, levels in enumerate(_NUMBERING):
        numbering.append(
            parse_xml(f'<w:abstractNum {_W_NS} w:abstractNumId="{i}">{levels}</w:abstractNum>')
        )
    # The second list of the same outline (5) is told to start again at 1.
    restart = '<w:lvlOverride w:ilvl="0"><w:startOverride w:val="1"/></w:lvlOverride>'
    for num_id, abstract, override in [
        (1, 0, ""),
        (2, 1, ""),
        (3, 2, ""),
        (4, 3, ""),
        (5, 1, restart),
    ]:
        num = f'<w:num {_W_NS} w:numId="{num_id}"><w:abstractNumId w:val="{abstract}"/>'
        numbering.append(parse_xml(f"{num}{override}</w:num>"))
    item_style = '<w:pPr><w:numPr><w:numId w:val="3"/></w:numPr></w:pPr>'
    document.styles.element.append(
        parse_xml(f'<w:style {_W_NS} w:type="paragraph" w:styleId="Item">{item_style}</w:style>')
    )

    def add(text: str, num_id: int | None = None, ilvl: int = 0, style: str = "") -> None:
        props = f'<w:pStyle w:val="{style}"/>' if style else ""
        if num_id is not None:
            props += f'<w:numPr><w:ilvl w:val="{ilvl}"/><w:numId w:val="{num_id}"/></w:numPr>'
        body = document.element.body
        xml = f"<w:p {_W_NS}><w:pPr>{props}</w:pPr><w:r><w:t>{text}</w:t></w:r></w:p>"
        body.insert(len(body) - 1, parse_xml(xml))

    add("为了规范管理，制定本办法。", 1)
    add("本办法适用于：", 1)
    add("总部；", 1, 1)
    add("分公司：", 1, 1)
    add("华东；", 1, 2)
    add("华南。", 1, 2)
    add("未尽事宜另行规定。", 1)
    add("", 1)  # an empty numbered paragraph: counted, its number not written alone
    add("附则。", 1, 1)
    add("目标", 2)
    add("年度目标", 2, 1)
    add("说明甲", 2, 2)
    add("说明乙", 2, 2)
    add("季度目标", 2, 1)
    add("说明丙", 2, 2)  # lvlRestart 0: goes on from b)
    add("要点", 2, 3)
    add("第二份清单", 5)
    add("总体要求", style="Item")
    add("工作任务", style="Item")
    add("总则", 4)
    add("适用范围", 4, 1)
    add("分项", 4, 2)
    add("甲项", 4, 3)
    add("编号", 4, 4)
    table = document.add_table(rows=2, cols=1)
    table.cell(0, 0).text = "条款"
    cell = table.cell(1, 0)._tc
    cell.remove(cell.p_lst[0])
    clause = '<w:pPr><w:numPr><w:ilvl w:val="0"/><w:numId w:val="1"/></w:numPr></w:pPr>'
    cell.append(parse_xml(f"<w:p {_W_NS}>{clause}<w:r><w:t>表中条款。</w:t></w:r></w:p>"))
    document.save(str(path))
    return path


def test_docx_automatic_numbers_are_written_as_word_shows_them(tmp_path: Path) -> None:
    # Clause numbers of auto-numbered regulations live in numbering.xml, not in the text:
    # without them "第三条规定了什么？" matched nothing.
    extraction = extract(_numbered_docx(tmp_path / "rules.docx"))
    assert texts(extraction) == [
        "第一条 为了规范管理，制定本办法。",
        "第二条 本办法适用于：",
        "（一）总部；",
        "（二）分公司：",
        "1. 华东；",
        "2. 华南。",
        "第三条 未尽事宜另行规定。",
        "（一）附则。",  # the empty 第四条 restarted its items
        "1. 目标",
        "1.1 年度目标",
        "a) 说明甲",
        "b) 说明乙",
        "1.2 季度目标",
        "c) 说明丙",
        "要点",
        "1. 第二份清单",
        "十、总体要求",
        "十一、工作任务",
        "第一章 总则",
        "1.1 适用范围",
        "① 分项",
        "甲 甲项",
        "01 编号",
        "条款",  # a one-column table: its cells, one a row
        "第五条 表中条款。",
    ]
    first = extraction.blocks[0]
    assert extraction.text[first.text.source_span()[0] :].startswith("第一条 为了")


def test_docx_hidden_text_is_left_out(tmp_path: Path) -> None:
    # Hidden text (w:vanish) is neither shown nor printed by Word: an exam paper's hidden
    # answers, a template's hidden guidance were read as the document's text and cited.
    import docx
    from docx.oxml import parse_xml

    document = docx.Document()
    for xml in (
        f'<w:style {_W_NS} w:type="character" w:styleId="Answer"><w:rPr><w:vanish/></w:rPr>'
        "</w:style>",
        f'<w:style {_W_NS} w:type="character" w:styleId="ShownAnswer"><w:basedOn w:val="Answer"/>'
        '<w:rPr><w:vanish w:val="0"/></w:rPr></w:style>',
        f'<w:style {_W_NS} w:type="paragraph" w:styleId="Guide"><w:rPr><w:vanish/></w:rPr>'
        "</w:style>",
    ):
        document.styles.element.append(parse_xml(xml))
    body = document.element.body
    hidden = "<w:rPr><w:vanish/></w:rPr>"
    for xml in (
        f"<w:p {_W_NS}><w:r><w:t>1. 长江全长约多少千米？</w:t></w:r>"
        f"<w:r>{hidden}<w:t>答案：6300千米</w:t></w:r></w:p>",
        f"<w:p {_W_NS}><w:r><w:t>2. 黄河流入哪里？</w:t></w:r>"
        '<w:r><w:rPr><w:rStyle w:val="Answer"/></w:rPr><w:t>渤海</w:t></w:r></w:p>',
        f'<w:p {_W_NS}><w:pPr><w:pStyle w:val="Guide"/></w:pPr><w:r><w:t>填写说明：删除本段</w:t>'
        '</w:r><w:r><w:rPr><w:vanish w:val="false"/></w:rPr><w:t>（必填）</w:t></w:r></w:p>',
        f'<w:p {_W_NS}><w:r><w:rPr><w:rStyle w:val="ShownAnswer"/></w:rPr><w:t>参考答案见附录。'
        "</w:t></w:r></w:p>",
    ):
        body.insert(len(body) - 1, parse_xml(xml))
    path = tmp_path / "exam.docx"
    document.save(str(path))
    assert texts(extract(path)) == [
        "1. 长江全长约多少千米？",
        "2. 黄河流入哪里？",
        "（必填）",  # shown: its own w:vanish is off, whatever the paragraph style says
        "参考答案见附录。",  # a style based on a hidden one, turning it off
    ]


def test_docx_table_of_contents_is_left_out(tmp_path: Path) -> None:
    # A table of contents repeats every heading with a page number ("第一章 总则 ...... 1"):
    # indexed as text, its lines were cited for a question about 总则 instead of the chapter.
    # Word marks it three ways: TOC styles (a Chinese Word names style "10" `toc 1`), a
    # `Table of Contents` content control, and the TOC field around the entries.
    import docx
    from docx.oxml import parse_xml

    document = docx.Document()
    document.styles.element.append(
        parse_xml(
            f'<w:style {_W_NS} w:type="paragraph" w:styleId="10"><w:name w:val="toc 1"/></w:style>'
        )
    )
    body = document.element.body

    def run(text: str) -> str:
        return f"<w:r><w:t>{text}</w:t></w:r>"

    def field(kind: str, instr: str = "") -> str:
        code = (
            f'<w:r><w:instrText xml:space="preserve">{instr}</w:instrText></w:r>' if instr else ""
        )
        return f'<w:r><w:fldChar w:fldCharType="{kind}"/></w:r>{code}'

    gallery = (
        '<w:sdtPr><w:docPartObj><w:docPartGallery w:val="Table of Contents"/><w:docPartUnique/>'
        "</w:docPartObj></w:sdtPr>"
    )
    toc = field("begin", ' TOC \\o "1-3" \\h \\z \\u ')
    pageref = field("begin", " PAGEREF _Toc1 \\h ")
    for xml in (
        f"<w:p {_W_NS}>{run('员工手册')}</w:p>",
        # 1. paragraphs in a TOC style, no field around them (typed by hand)
        f'<w:p {_W_NS}><w:pPr><w:pStyle w:val="10"/></w:pPr>{run("第一章 总则 1")}</w:p>',
        f'<w:p {_W_NS}><w:pPr><w:pStyle w:val="TOC2"/></w:pPr>{run("第一条 目的 1")}</w:p>',
        # 2. a Table of Contents content control
        f"<w:sdt {_W_NS}>{gallery}<w:sdtContent>"
        f"<w:p>{run('目录')}</w:p><w:p>{run('第二章 休假 ......... 3')}</w:p>"
        "</w:sdtContent></w:sdt>",
        # 3. a TOC field over plain paragraphs, a PAGEREF field nested in an entry
        f"<w:p {_W_NS}>{toc}{field('separate')}{run('第三章 考勤 ')}{pageref}"
        f"{field('separate')}{run('5')}{field('end')}</w:p>",
        f"<w:p {_W_NS}>{run('第四章 附则 7')}</w:p>",
        f"<w:p {_W_NS}>{field('end')}</w:p>",
        f"<w:p {_W_NS}>{run('第一章 总则')}</w:p>",
        f"<w:p {_W_NS}>{run('为了规范管理，制定本手册。')}</w:p>",
        # a field of another kind holds body text
        f"<w:p {_W_NS}>{field('begin', ' DATE ')}{field('separate')}{run('2024年1月1日')}"
        f"{field('end')}</w:p>",
    ):
        body.insert(len(body) - 1, parse_xml(xml))
    path = tmp_path / "handbook.docx"
    document.save(str(path))
    extraction = extract(path)
    assert texts(extraction) == [
        "员工手册",
        "第一章 总则",
        "为了规范管理，制定本手册。",
        "2024年1月1日",
    ]
    assert extraction.notes == ("table of contents left out (7 paragraphs)",)


def test_docx_table_of_contents_inside_a_table_cell_is_left_out(tmp_path: Path) -> None:
    # Report templates frame the contents page in a table. Inside a cell, TOC-styled entries
    # and a Table of Contents control were read as text (cited in place of the chapters),
    # while a TOC field in one cell dropped the whole table, the body text of its other
    # cells with it. A cell's paragraphs are now judged one by one, as the body's are.
    import docx
    from docx.oxml import parse_xml

    document = docx.Document()
    document.styles.element.append(
        parse_xml(
            f'<w:style {_W_NS} w:type="paragraph" w:styleId="10"><w:name w:val="toc 1"/></w:style>'
        )
    )
    document.add_paragraph("员工手册")

    def paragraph(xml: str, style: str = "") -> Any:
        props = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
        return parse_xml(f"<w:p {_W_NS}>{props}{xml}</w:p>")

    def run(text: str) -> str:
        return f"<w:r><w:t>{text}</w:t></w:r>"

    def field(kind: str, instr: str = "") -> str:
        code = f"<w:r><w:instrText>{instr}</w:instrText></w:r>" if instr else ""
        return f'<w:r><w:fldChar w:fldCharType="{kind}"/></w:r>{code}'

    def fill(cell: Any, *items: Any) -> None:
        tc = cell._tc
        tc.remove(tc.p_lst[0])
        for item in items:
            tc.append(item)

    gallery = (
        '<w:sdtPr><w:docPartObj><w:docPartGallery w:val="Table of Contents"/></w:docPartObj>'
        "</w:sdtPr>"
    )
    styled = document.add_table(rows=3, cols=1)
    fill(
        styled.cell(0, 0),
        paragraph(run("第一章 总则 1"), "10"),
        paragraph(run("第二章 休假 3"), "TOC2"),
    )
    fill(
        styled.cell(1, 0),
        parse_xml(
            f"<w:sdt {_W_NS}>{gallery}<w:sdtContent><w:p>{run('目录')}</w:p>"
            f"<w:p>{run('第三章 考勤 ...... 5')}</w:p></w:sdtContent></w:sdt>"
        ),
    )
    styled.cell(2, 0).text = "第一章 总则"
    # The contents merged down the left column: the cell comes back once per row.
    fielded = document.add_table(rows=2, cols=2)
    fill(
        fielded.cell(0, 0).merge(fielded.cell(1, 0)),
        paragraph(field("begin", ' TOC \\o "1-3" ') + field("separate") + run("第四章 附则 7")),
        paragraph(field("end")),
    )
    fielded.cell(0, 1).text = "正文"
    fielded.cell(1, 1).text = "为了规范管理，制定本手册。"
    path = tmp_path / "framed-contents.docx"
    document.save(str(path))
    extraction = extract(path)
    assert texts(extraction) == ["员工手册", "第一章 总则", "正文: 为了规范管理，制定本手册。"]
    assert extraction.notes == ("table of contents left out (6 paragraphs)",)


def test_docx_a_toc_field_never_ended_does_not_swallow_the_body(tmp_path: Path) -> None:
    # A damaged file: the TOC field begins and never ends. Following it would leave out
    # every paragraph after it; the TOC style still marks the entry.
    import docx
    from docx.oxml import parse_xml

    document = docx.Document()
    body = document.element.body
    for xml in (
        f'<w:p {_W_NS}><w:pPr><w:pStyle w:val="TOC1"/></w:pPr><w:r><w:fldChar w:fldCharType='
        '"begin"/></w:r><w:r><w:instrText> TOC \\o </w:instrText></w:r><w:r><w:fldChar '
        'w:fldCharType="separate"/></w:r><w:r><w:t>第一章 总则 1</w:t></w:r></w:p>',
        f"<w:p {_W_NS}><w:r><w:t>第一章 总则</w:t></w:r></w:p>",
    ):
        body.insert(len(body) - 1, parse_xml(xml))
    path = tmp_path / "damaged.docx"
    document.save(str(path))
    assert texts(extract(path)) == ["第一章 总则"]


def test_docx_hidden_text_in_a_text_box_is_left_out(tmp_path: Path) -> None:
    # Hidden text was left out of the body but still read inside text boxes: a hidden answer
    # in a boxed question was indexed and cited as if Word showed it.
    import docx
    from docx.oxml import parse_xml

    document = docx.Document()
    document.styles.element.append(
        parse_xml(
            f'<w:style {_W_NS} w:type="character" w:styleId="Answer"><w:rPr><w:vanish/></w:rPr>'
            "</w:style>"
        )
    )
    body = document.element.body
    vml = 'xmlns:v="urn:schemas-microsoft-com:vml"'
    body.insert(
        len(body) - 1,
        parse_xml(
            f"<w:p {_W_NS} {vml}><w:r><w:t>思考题：</w:t></w:r><w:r><w:pict><v:shape><v:textbox>"
            "<w:txbxContent><w:p><w:r><w:t>长江全长约多少千米？</w:t></w:r>"
            "<w:r><w:rPr><w:vanish/></w:rPr><w:t>答案：6300千米</w:t></w:r></w:p>"
            '<w:p><w:r><w:rPr><w:rStyle w:val="Answer"/></w:rPr><w:t>渤海</w:t></w:r></w:p>'
            "</w:txbxContent></v:textbox></v:shape></w:pict></w:r></w:p>"
        ),
    )
    path = tmp_path / "boxed.docx"
    document.save(str(path))
    extraction = extract(path)
    assert texts(extraction) == ["思考题：", "长江全长约多少千米？"]
    assert "6300" not in extraction.text and "渤海" not in extraction.text


def test_docx_a_text_box_inside_a_text_box_is_read_once(tmp_path: Path) -> None:
    # A text box in a text box (a callout in a sidebar) was read twice: with the paragraphs
    # of the box around it and again as a box of its own, a duplicate passage in the index.
    import docx
    from docx.oxml import parse_xml

    def box(xml: str) -> str:
        return f"<w:r><w:pict><v:shape><v:textbox><w:txbxContent>{xml}</w:txbxContent>" + (
            "</v:textbox></v:shape></w:pict></w:r>"
        )

    document = docx.Document()
    body = document.element.body
    inner = box("<w:p><w:r><w:t>内框</w:t></w:r></w:p>")
    body.insert(
        len(body) - 1,
        parse_xml(
            f'<w:p {_W_NS} xmlns:v="urn:schemas-microsoft-com:vml"><w:r><w:t>锚</w:t></w:r>'
            + box(f"<w:p><w:r><w:t>外框</w:t></w:r>{inner}</w:p>")
            + "</w:p>"
        ),
    )
    path = tmp_path / "nested-boxes.docx"
    document.save(str(path))
    assert texts(extract(path)) == ["锚", "外框", "内框"]


def test_docx_automatic_numbers_in_a_text_box_are_written(tmp_path: Path) -> None:
    # A boxed procedure ("办理流程" in a side box) numbered by Word lost its numbers: body
    # paragraphs were numbered, a text box's were read bare ("提交申请" for "第一步 提交申请").
    import docx
    from docx.oxml import parse_xml

    document = docx.Document()
    numbering = document.part.numbering_part.element
    for child in list(numbering):
        numbering.remove(child)
    for key, level in enumerate(
        [
            _level(0, "chineseCounting", "第%1步", '<w:suff w:val="space"/>'),
            _level(0, "decimal", "%1."),
        ]
    ):
        numbering.append(
            parse_xml(f'<w:abstractNum {_W_NS} w:abstractNumId="{key}">{level}</w:abstractNum>')
        )
        numbering.append(
            parse_xml(
                f'<w:num {_W_NS} w:numId="{key + 1}"><w:abstractNumId w:val="{key}"/></w:num>'
            )
        )

    def numbered(text: str, num_id: int) -> str:
        return (
            f'<w:p><w:pPr><w:numPr><w:ilvl w:val="0"/><w:numId w:val="{num_id}"/></w:numPr>'
            f"</w:pPr><w:r><w:t>{text}</w:t></w:r></w:p>"
        )

    body = document.element.body
    body.insert(
        len(body) - 1,
        parse_xml(
            f'<w:p {_W_NS} xmlns:v="urn:schemas-microsoft-com:vml"><w:pPr><w:numPr><w:ilvl '
            'w:val="0"/><w:numId w:val="2"/></w:numPr></w:pPr><w:r><w:t>办理流程</w:t></w:r>'
            "<w:r><w:pict><v:shape><v:textbox><w:txbxContent>"
            f"{numbered('提交申请', 1)}{numbered('窗口受理', 1)}{numbered('备注', 2)}"
            "</w:txbxContent></v:textbox></v:shape></w:pict></w:r></w:p>"
        ),
    )
    body.insert(
        len(body) - 1, parse_xml(numbered("办理时限", 2).replace("<w:p>", f"<w:p {_W_NS}>"))
    )
    path = tmp_path / "boxed-steps.docx"
    document.save(str(path))
    assert texts(extract(path)) == [
        "1. 办理流程",
        "第一步 提交申请",
        "第二步 窗口受理",
        "2. 备注",  # the body's list counted on in the box, in reading order
        "3. 办理时限",
    ]


def _macro_enabled(data: bytes) -> bytes:
    """The same document as a .docm: macro content type plus a vbaProject part."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for member in source.infolist():
            body = source.read(member)
            if member.filename == "[Content_Types].xml":
                body = body.replace(
                    b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
                    b"application/vnd.ms-word.document.macroEnabled.main+xml",
                )
            target.writestr(member, body)
        target.writestr("word/vbaProject.bin", b'Attribute VB_Name = "Evil"\nShell "rm -rf /"')
    return out.getvalue()


def test_macro_enabled_docx_is_read_as_text_only(tmp_path: Path) -> None:
    path = tmp_path / "macro.docm"
    path.write_bytes(_macro_enabled(_docx(tmp_path / "plain.docx").read_bytes()))
    found = texts(extract(path))
    assert found[0] == "第一章 总则"
    assert not any("Shell" in t for t in found)


def _pptx(path: Path, slides: int = 2) -> Path:
    from pptx import Presentation
    from pptx.util import Inches

    presentation = Presentation()
    for n in range(1, slides + 1):
        slide = presentation.slides.add_slide(presentation.slide_layouts[1])
        slide.shapes.title.text = f"第{n}页 标题"
        body = slide.placeholders[1].text_frame
        body.text = f"要点一：第{n}页"
        body.add_paragraph().text = "要点二：成本下降"
        # A text box placed above the body placeholder but added last: read by position.
        box = slide.shapes.add_textbox(Inches(6), Inches(6.5), Inches(3), Inches(0.5))
        box.text_frame.text = "右下角说明"
        slide.notes_slide.notes_text_frame.text = f"讲稿：第{n}页请强调成本"
    presentation.save(str(path))
    return path


def test_pptx_slides_titles_text_and_notes(tmp_path: Path) -> None:
    extraction = extract(_pptx(tmp_path / "deck.pptx"))
    assert texts(extraction) == [
        "第1页 标题",
        "要点一：第1页",
        "要点二：成本下降",
        "右下角说明",
        "讲稿：第1页请强调成本",
        "第2页 标题",
        "要点一：第2页",
        "要点二：成本下降",
        "右下角说明",
        "讲稿：第2页请强调成本",
    ]
    assert [b.page for b in extraction.blocks] == [1] * 5 + [2] * 5
    assert extraction.text.count("\f") == 1


def test_pptx_slide_limit(tmp_path: Path) -> None:
    extraction = extract(_pptx(tmp_path / "deck.pptx", 3), LoadOptions(1 << 30, max_pages=2))
    assert {b.page for b in extraction.blocks} == {1, 2}
    assert any("read the first 2 of 3 slides" in note for note in extraction.notes)


@pytest.mark.parametrize("suffix", [".docx", ".pptx", ".xlsx"])
def test_encrypted_office_files_are_refused(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"locked{suffix}"
    path.write_bytes(encrypted_office_file())
    with pytest.raises(LoadError, match="password-protected"):
        extract(path)


@pytest.mark.parametrize("suffix", [".docx", ".pptx"])
def test_zip_bombs_are_refused_before_inflating(tmp_path: Path, suffix: str) -> None:
    source = _docx(tmp_path / "a.docx") if suffix == ".docx" else _pptx(tmp_path / "a.pptx")
    path = tmp_path / f"bomb{suffix}"
    path.write_bytes(with_zip_bomb(source.read_bytes()))
    with pytest.raises(LoadError, match="zip bomb"):
        extract(path)


@pytest.mark.parametrize("suffix", [".docx", ".pptx"])
def test_truncated_and_malformed_office_files_are_refused(tmp_path: Path, suffix: str) -> None:
    source = _docx(tmp_path / "a.docx") if suffix == ".docx" else _pptx(tmp_path / "a.pptx")
    data = source.read_bytes()
    not_office = io.BytesIO()
    with zipfile.ZipFile(not_office, "w") as package:
        package.writestr("hello.txt", "不是文档")
    for bad in (data[: len(data) // 2], b"garbage", not_office.getvalue()):
        path = tmp_path / f"bad{suffix}"
        path.write_bytes(bad)
        with pytest.raises(LoadError) as error:
            extract(path)
        assert error.value.reason


@needs_realdocs
@pytest.mark.parametrize(
    ("sample", "named", "reason"),
    [
        ("langchain-ChatGLM_closed.xlsx", ".docx", "a .docx name on an Excel workbook"),
        ("ocr_test.docx", ".pptx", "a .pptx name on a Word document"),
        ("ocr_test.pptx", ".xlsx", "a .xlsx name on a PowerPoint deck"),
    ],
)
def test_an_office_file_of_another_kind_is_refused_with_its_real_extension(
    tmp_path: Path, sample: str, named: str, reason: str
) -> None:
    path = tmp_path / f"renamed{named}"
    path.write_bytes((REALDOCS / sample).read_bytes())
    with pytest.raises(LoadError) as error:
        extract(path)
    # Not a parser's message holding `<_io.BytesIO object at 0x…>`: what it is, and the fix.
    assert error.value.reason.startswith(reason)
    assert "rename it to" in error.value.reason


def _docx_with_wrapped_content(path: Path) -> Path:
    """Text Word shows that sits inside wrapper elements: content controls, tracked changes."""
    import docx
    from docx.oxml import parse_xml

    w = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    document = docx.Document()
    document.add_paragraph("正文第一段。")
    body = document.element.body
    for xml in (
        # A block-level content control (cover pages, template fields) holding a paragraph.
        f"<w:sdt {w}><w:sdtContent><w:p><w:r><w:t>封面：二〇二四年度报告</w:t></w:r></w:p>"
        "</w:sdtContent></w:sdt>",
        # An inline content control: the filled-in field of a contract template.
        f"<w:p {w}><w:r><w:t>甲方：</w:t></w:r><w:sdt><w:sdtContent><w:r><w:t>长江建设公司</w:t>"
        "</w:r></w:sdtContent></w:sdt></w:p>",
        # A tracked insertion Word shows, and a tracked deletion it does not.
        f"<w:p {w}><w:r><w:t>违约金为</w:t></w:r><w:del><w:r><w:delText>百分之十</w:delText></w:r>"
        "</w:del><w:ins><w:r><w:t>百分之五</w:t></w:r></w:ins><w:r><w:t>。</w:t></w:r></w:p>",
        # A field shown by its result (a simple field, e.g. a document property).
        f'<w:p {w}><w:r><w:t>编号：</w:t></w:r><w:fldSimple w:instr=" DOCPROPERTY 编号 ">'
        "<w:r><w:t>HT-2024-007</w:t></w:r></w:fldSimple></w:p>",
    ):
        body.insert(len(body) - 1, parse_xml(xml))  # before the final sectPr
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "项目"
    table.cell(0, 1).text = "金额"
    table.cell(1, 0).text = "设备"
    cell = table.cell(1, 1)._tc
    cell.remove(cell.p_lst[0])
    cell.append(
        parse_xml(
            f"<w:sdt {w}><w:sdtContent><w:p><w:r><w:t>3万元</w:t></w:r></w:p></w:sdtContent>"
            "</w:sdt>"
        )
    )
    cell.append(parse_xml(f"<w:p {w}/>"))
    document.save(str(path))
    return path


def test_docx_unfilled_content_controls_give_no_text(tmp_path: Path) -> None:
    # An unfilled control shows its prompt, greyed; read as text, every blank form put
    # "单击或点击此处输入文字。" into the index.
    import docx
    from docx.oxml import parse_xml

    w = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    prompt = "<w:r><w:t>单击或点击此处输入文字。</w:t></w:r>"
    document = docx.Document()
    body = document.element.body
    for xml in (
        f"<w:p {w}><w:r><w:t>乙方：</w:t></w:r><w:sdt><w:sdtPr><w:showingPlcHdr/></w:sdtPr>"
        f"<w:sdtContent>{prompt}</w:sdtContent></w:sdt></w:p>",
        f"<w:sdt {w}><w:sdtPr><w:showingPlcHdr/></w:sdtPr><w:sdtContent><w:p>{prompt}</w:p>"
        "</w:sdtContent></w:sdt>",
    ):
        body.insert(len(body) - 1, parse_xml(xml))
    path = tmp_path / "form.docx"
    document.save(str(path))
    assert texts(extract(path)) == ["乙方："]


def test_docx_text_inside_content_controls_and_tracked_changes_is_read(tmp_path: Path) -> None:
    # Word shows all of this text; python-docx's paragraphs and body items see only the
    # runs and paragraphs that are direct children, so it was silently lost.
    extraction = extract(_docx_with_wrapped_content(tmp_path / "contract.docx"))
    assert texts(extraction) == [
        "正文第一段。",
        "封面：二〇二四年度报告",
        "甲方：长江建设公司",
        "违约金为百分之五。",
        "编号：HT-2024-007",
        "项目: 设备；金额: 3万元",
    ]


_DGM = "http://schemas.openxmlformats.org/drawingml/2006/diagram"


def _pptx_with_smartart(path: Path) -> Path:
    """A slide holding a SmartArt process diagram: its text lives in the diagram's data part."""
    from pptx import Presentation
    from pptx.opc.package import Part
    from pptx.opc.packuri import PackURI
    from pptx.oxml import parse_xml

    presentation = Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[5])
    slide.shapes.title.text = "审批流程"
    a = "http://schemas.openxmlformats.org/drawingml/2006/main"
    points = "".join(
        f'<dgm:pt modelId="{{{n}}}" type="{kind}"><dgm:t><a:bodyPr/><a:p><a:r><a:t>{text}</a:t>'
        "</a:r></a:p></dgm:t></dgm:pt>"
        for n, (kind, text) in enumerate(
            [
                ("doc", ""),
                ("node", "提交申请"),
                ("parTrans", ""),
                ("sibTrans", ""),
                ("node", "部门审核"),
                ("pres", ""),
                ("node", "财务复核"),
            ]
        )
    )
    data = Part(
        PackURI("/ppt/diagrams/data1.xml"),
        "application/vnd.openxmlformats-officedocument.drawingml.diagramData+xml",
        presentation.part.package,
        f'<dgm:dataModel xmlns:dgm="{_DGM}" xmlns:a="{a}"><dgm:ptLst>{points}</dgm:ptLst>'
        "<dgm:cxnLst/></dgm:dataModel>".encode(),
    )
    rel = slide.part.relate_to(
        data, "http://schemas.openxmlformats.org/officeDocument/2006/relationships/diagramData"
    )
    frame = parse_xml(
        f'<p:graphicFrame xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"'
        f' xmlns:a="{a}" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships"><p:nvGraphicFramePr><p:cNvPr id="9" name="SmartArt"/>'
        "<p:cNvGraphicFramePr/><p:nvPr/></p:nvGraphicFramePr>"
        '<p:xfrm><a:off x="914400" y="1828800"/><a:ext cx="7315200" cy="3657600"/></p:xfrm>'
        f'<a:graphic><a:graphicData uri="{_DGM}"><dgm:relIds xmlns:dgm="{_DGM}" r:dm="{rel}"'
        ' r:lo="" r:qs="" r:cs=""/></a:graphicData></a:graphic></p:graphicFrame>'
    )
    slide.shapes._spTree.append(frame)
    presentation.save(str(path))
    return path


def test_pptx_smartart_text_is_read(tmp_path: Path) -> None:
    # SmartArt (process charts, org charts, lists) keeps its text in the diagram's data part,
    # which python-pptx does not read: every word of it was missing from the index.
    extraction = extract(_pptx_with_smartart(tmp_path / "flow.pptx"))
    assert texts(extraction) == ["审批流程", "提交申请", "部门审核", "财务复核"]
    assert {b.page for b in extraction.blocks} == {1}


def test_pptx_table_merged_cells_name_and_fill_their_columns(tmp_path: Path) -> None:
    # A header merged over two columns named only the first: the second was called `D`. A
    # cell merged down two rows gave its value to the first row only.
    from pptx import Presentation
    from pptx.util import Inches

    presentation = Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[6])
    table = slide.shapes.add_table(4, 4, Inches(1), Inches(1), Inches(8), Inches(2)).table
    for r, row in enumerate(
        [
            ["类别", "产品", "价格", ""],
            ["五金", "螺丝", "12元", "批发10元"],
            ["", "螺母", "8元", "批发6元"],
            ["工具", "扳手", "30元", "批发25元"],
        ]
    ):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    table.cell(0, 2).merge(table.cell(0, 3))
    table.cell(1, 0).merge(table.cell(2, 0))
    path = tmp_path / "prices.pptx"
    presentation.save(str(path))
    assert texts(extract(path)) == [
        "类别: 五金；产品: 螺丝；价格: 12元；价格: 批发10元",
        "类别: 五金；产品: 螺母；价格: 8元；价格: 批发6元",
        "类别: 工具；产品: 扳手；价格: 30元；价格: 批发25元",
    ]


def test_docx_table_nested_in_a_cell_keeps_its_text(tmp_path: Path) -> None:
    # Forms lay tables out inside tables; a cell's text was its own paragraphs only, so the
    # inner table's text was lost.
    import docx

    document = docx.Document()
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "项目"
    table.cell(0, 1).text = "明细"
    table.cell(1, 0).text = "差旅"
    inner = table.cell(1, 1).add_table(rows=2, cols=2)
    for r, row in enumerate([["机票", "1200元"], ["住宿", "800元"]]):
        for c, value in enumerate(row):
            inner.cell(r, c).text = value
    path = tmp_path / "form.docx"
    document.save(str(path))
    assert texts(extract(path)) == ["项目: 差旅；明细: 机票；1200元\n住宿；800元"]


def test_pptx_shapes_of_a_moved_group_are_read_where_the_group_stands(tmp_path: Path) -> None:
    # A group's shapes keep the coordinates they had when it was made; moving the group
    # moves only its own offset. Read by their stored tops, the notes of a group moved to
    # the foot of the slide came before the text above them.
    from pptx import Presentation
    from pptx.util import Inches

    presentation = Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[6])
    group = slide.shapes.add_group_shape()
    for n, top in ((1, 1.0), (2, 1.6)):
        box = group.shapes.add_textbox(Inches(1), Inches(top), Inches(3), Inches(0.5))
        box.text_frame.text = f"脚注{n}"
    body = slide.shapes.add_textbox(Inches(1), Inches(3), Inches(6), Inches(0.5))
    body.text_frame.text = "正文"
    group.top = Inches(6)  # moved to the foot of the slide
    path = tmp_path / "group.pptx"
    presentation.save(str(path))
    assert texts(extract(path)) == ["正文", "脚注1", "脚注2"]


def test_docx_a_numbered_cell_merged_down_rows_is_counted_once(tmp_path: Path) -> None:
    # A merged cell comes back once per row it covers: its numbered paragraph was counted
    # for each, so the body's next clause read 第三条 where Word shows 第二条.
    import docx
    from docx.oxml import parse_xml

    document = docx.Document()
    numbering = document.part.numbering_part.element
    numbering.append(
        parse_xml(
            f'<w:abstractNum {_W_NS} w:abstractNumId="90"><w:lvl w:ilvl="0"><w:start w:val="1"/>'
            '<w:numFmt w:val="chineseCounting"/><w:lvlText w:val="第%1条"/></w:lvl>'
            "</w:abstractNum>"
        )
    )
    numbering.append(
        parse_xml(f'<w:num {_W_NS} w:numId="90"><w:abstractNumId w:val="90"/></w:num>')
    )
    clause = '<w:pPr><w:numPr><w:ilvl w:val="0"/><w:numId w:val="90"/></w:numPr></w:pPr>'

    def numbered(text: str) -> Any:
        return parse_xml(f"<w:p {_W_NS}>{clause}<w:r><w:t>{text}</w:t></w:r></w:p>")

    table = document.add_table(rows=3, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "条款", "说明"
    merged = table.cell(1, 0).merge(table.cell(2, 0))._tc
    merged.remove(merged.p_lst[0])
    merged.append(numbered("适用范围。"))
    table.cell(1, 1).text, table.cell(2, 1).text = "总部", "分公司"
    body = document.element.body
    body.insert(len(body) - 1, numbered("附则。"))
    path = tmp_path / "merged-clause.docx"
    document.save(str(path))
    assert texts(extract(path)) == [
        "条款: 第一条 适用范围。；说明: 总部",
        "条款: 第一条 适用范围。；说明: 分公司",
        "第二条 附则。",
    ]


def test_docx_a_text_box_in_a_table_cell_is_read_with_the_cell(tmp_path: Path) -> None:
    # Cells never looked for text boxes: a note boxed inside a form's cell was not indexed.
    import docx
    from docx.oxml import parse_xml

    document = docx.Document()
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "事项", "要求"
    table.cell(1, 0).text = "报名"
    cell = table.cell(1, 1)._tc
    cell.remove(cell.p_lst[0])
    cell.append(
        parse_xml(
            f'<w:p {_W_NS} xmlns:v="urn:schemas-microsoft-com:vml"><w:r><w:t>携带身份证</w:t>'
            "</w:r><w:r><w:pict><v:shape><v:textbox><w:txbxContent><w:p><w:r>"
            "<w:t>逾期不予受理</w:t></w:r></w:p></w:txbxContent></v:textbox></v:shape></w:pict>"
            "</w:r></w:p>"
        )
    )
    path = tmp_path / "boxed-cell.docx"
    document.save(str(path))
    assert texts(extract(path)) == ["事项: 报名；要求: 携带身份证\n逾期不予受理"]


def test_pptx_chart_title_and_data_are_read(tmp_path: Path) -> None:
    # A chart's title and figures live in its chart part, which was not read: "二月销量多少？"
    # found nothing on a slide that shows it. The title is a block, then each category a
    # row naming its values by series, as a table's rows are (a category axis title names
    # the first column).
    import pptx.chart.data
    from pptx import Presentation
    from pptx.enum.chart import XL_CHART_TYPE
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    slide.shapes.title.text = "销售情况"
    chart_data: Any = pptx.chart.data.CategoryChartData  # untyped in python-pptx
    data = chart_data()
    data.categories = ["一月", "二月"]
    data.add_series("销量", (10, 20.5))
    data.add_series("退货", (1, None))
    frame = slide.shapes.add_chart(
        XL_CHART_TYPE.COLUMN_CLUSTERED, Inches(1), Inches(2), Inches(6), Inches(4), data
    )
    frame.chart.has_title = True
    frame.chart.chart_title.text_frame.text = "月度销量"
    second = deck.slides.add_slide(deck.slide_layouts[6])
    chart = second.shapes.add_chart(
        XL_CHART_TYPE.PIE, Inches(1), Inches(1), Inches(4), Inches(4), data
    ).chart
    chart.has_title = False
    path = tmp_path / "sales.pptx"
    deck.save(str(path))
    extraction = extract(path)
    assert texts(extraction) == [
        "销售情况",
        "月度销量",
        "类别: 一月；销量: 10；退货: 1",
        "类别: 二月；销量: 20.5",  # a missing value is left out, as an empty cell is
        "类别: 一月；销量: 10",  # an untitled pie (of one series): its data alone
        "类别: 二月；销量: 20.5",
    ]
    assert [b.page for b in extraction.blocks] == [1] * 4 + [2] * 2


def test_pptx_footer_date_and_slide_number_placeholders_are_left_out(tmp_path: Path) -> None:
    # With "页脚" switched on, every slide carries the footer, date and slide number as
    # placeholders of its own: read, each slide ended in "公司内部资料", "2024/3/1", "2",
    # page furniture cited as text (Word's footers and PDFs' running lines are left out).
    from pptx import Presentation
    from pptx.oxml import parse_xml

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "季度总结"
    slide.placeholders[1].text_frame.text = "收入增长"
    ns = (
        'xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" '
        'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"'
    )
    for n, (kind, text) in enumerate(
        [("ftr", "公司内部资料"), ("dt", "2024/3/1"), ("sldNum", "2")], start=10
    ):
        slide.shapes._spTree.append(
            parse_xml(
                f'<p:sp {ns}><p:nvSpPr><p:cNvPr id="{n}" name="{kind}"/><p:cNvSpPr/>'
                f'<p:nvPr><p:ph type="{kind}" idx="{n}"/></p:nvPr></p:nvSpPr><p:spPr/>'
                f"<p:txBody><a:bodyPr/><a:p><a:r><a:t>{text}</a:t></a:r></a:p></p:txBody></p:sp>"
            )
        )
    path = tmp_path / "summary.pptx"
    deck.save(str(path))
    assert texts(extract(path)) == ["季度总结", "收入增长"]


def test_pptx_chart_date_categories_are_written_as_dates(tmp_path: Path) -> None:
    # A time axis stores its categories as Excel day numbers: read bare, 2024-01-01 became
    # "45292.0". They are written as the axis's date format shows them.
    import datetime as dt

    import pptx.chart.data
    from pptx import Presentation
    from pptx.enum.chart import XL_CHART_TYPE
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[6])
    chart_data: Any = pptx.chart.data.CategoryChartData  # untyped in python-pptx
    data = chart_data(number_format="yyyy-mm-dd")
    data.categories = [dt.date(2024, 1, 1), dt.date(2024, 2, 1)]
    data.add_series("销量", (1, 2))
    slide.shapes.add_chart(XL_CHART_TYPE.LINE, Inches(1), Inches(1), Inches(4), Inches(3), data)
    path = tmp_path / "trend.pptx"
    deck.save(str(path))
    assert texts(extract(path)) == ["类别: 2024-01-01；销量: 1", "类别: 2024-02-01；销量: 2"]
