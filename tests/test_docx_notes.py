"""Word footnotes and endnotes: read after the body, each with the number Word shows for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.formats_samples import extract, texts

_W_NS = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
_PART = "application/vnd.openxmlformats-officedocument.wordprocessingml.{kind}s+xml"
# Word writes these in every notes part: the rule above the notes and its continued form.
_SEPARATORS = (
    '<w:{kind} w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:{kind}>'
    '<w:{kind} w:type="continuationSeparator" w:id="0"><w:p><w:r><w:continuationSeparator/>'
    "</w:r></w:p></w:{kind}>"
)


_NOTE_TABLE = (
    "<w:tbl><w:tblGrid><w:gridCol/><w:gridCol/></w:tblGrid>"
    + "".join(
        f"<w:tr><w:tc><w:p><w:r><w:t>{a}</w:t></w:r></w:p></w:tc>"
        f"<w:tc><w:p><w:r><w:t>{b}</w:t></w:r></w:p></w:tc></w:tr>"
        for a, b in (("行业", "标准"), ("工业", "1000人以下"))
    )
    + "</w:tbl>"
)


def _run(text: str) -> str:
    return f'<w:r><w:t xml:space="preserve">{text}</w:t></w:r>'


def _reference(kind: str, key: int, custom: str = "") -> str:
    """A reference mark in the body, superscript as Word writes it."""
    follows = ' w:customMarkFollows="1"' if custom else ""
    mark = f"<w:t>{custom}</w:t>" if custom else ""
    return (
        f'<w:r><w:rPr><w:vertAlign w:val="superscript"/></w:rPr><w:{kind}Reference{follows}'
        f' w:id="{key}"/>{mark}</w:r>'
    )


def _note(kind: str, key: int, *paragraphs: str, mark: bool = True) -> str:
    """A note as Word stores it: its number (`w:footnoteRef`) opens its first paragraph."""
    ref = f"<w:r><w:{kind}Ref/></w:r>" if mark else ""
    body = "".join(
        f"<w:p>{ref if i == 0 else ''}{_run(text)}</w:p>" for i, text in enumerate(paragraphs)
    )
    return f'<w:{kind} w:id="{key}">{body}</w:{kind}>'


def _add_notes(document: Any, kind: str, notes: str) -> None:
    """The word/footnotes.xml (or endnotes.xml) part, which python-docx cannot create."""
    from docx.opc.constants import RELATIONSHIP_TYPE as RT
    from docx.opc.packuri import PackURI
    from docx.opc.part import Part

    xml = f"<w:{kind}s {_W_NS}>{_SEPARATORS.format(kind=kind)}{notes}</w:{kind}s>"
    part = Part(
        PackURI(f"/word/{kind}s.xml"),
        _PART.format(kind=kind),
        xml.encode(),
        document.part.package,
    )
    document.part.relate_to(part, RT.FOOTNOTES if kind == "footnote" else RT.ENDNOTES)


def _add_paragraph(document: Any, xml: str) -> None:
    from docx.oxml import parse_xml

    body = document.element.body
    body.insert(len(body) - 1, parse_xml(f"<w:p {_W_NS}>{xml}</w:p>"))  # before the sectPr


def test_docx_footnotes_and_endnotes_follow_the_body_numbered_as_word_shows_them(
    tmp_path: Path,
) -> None:
    # Legal and government documents give their sources and definitions in footnotes: left
    # out, "本办法所称中小企业指什么？" found nothing. Word numbers the notes in the order the
    # body refers to them, whatever their ids; the separator notes are not text.
    import docx

    document = docx.Document()
    _add_paragraph(
        document,
        _run("第一条 为促进中小企业发展")
        + _reference("footnote", 2)
        + _run("，制定本办法。")
        + _reference("endnote", 1),
    )
    _add_paragraph(
        document, _run("第二条 本办法所称中小企业") + _reference("footnote", 1) + _run("。")
    )
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "类型"
    table.cell(0, 1).text = "人数"
    table.cell(1, 0).text = "小型企业"
    cell = table.cell(1, 1).paragraphs[0]._p
    from docx.oxml import parse_xml

    cell.append(parse_xml(f"<w:r {_W_NS}><w:t>100人以下</w:t></w:r>"))
    cell.append(parse_xml(_reference("footnote", 3).replace("<w:r>", f"<w:r {_W_NS}>", 1)))
    # A reference deleted with tracked changes: Word shows neither it nor its note.
    _add_paragraph(
        document,
        _run("第三条 附则。") + f'<w:del w:id="9" w:author="a">{_reference("footnote", 4)}</w:del>',
    )
    _add_notes(
        document,
        "footnote",
        _note("footnote", 1, " 指依法设立的企业。", "具体标准另行规定。")
        + _note("footnote", 2, " 《中华人民共和国中小企业促进法》。")
        + _note("footnote", 3, " 从业人员。").replace(
            "</w:footnote>", f"{_NOTE_TABLE}</w:footnote>"
        )
        + _note("footnote", 4, " 已删除的注释。")
        + _note("footnote", 5, " 未被引用的注释。"),
    )
    _add_notes(document, "endnote", _note("endnote", 1, " 2017年修订。"))
    path = tmp_path / "rules.docx"
    document.save(str(path))
    extraction = extract(path)
    assert texts(extraction) == [
        "第一条 为促进中小企业发展，制定本办法。",  # the marks stay unwritten in the body
        "第二条 本办法所称中小企业。",
        "类型: 小型企业；人数: 100人以下",
        "第三条 附则。",
        "注1：《中华人民共和国中小企业促进法》。",  # referred to first: Word's 1
        "注2：指依法设立的企业。",
        "具体标准另行规定。",  # a note's second paragraph
        "注3：从业人员。",
        "行业: 工业；标准: 1000人以下",  # a table in a note: its rows, as in the body
        "注i：2017年修订。",  # Word numbers endnotes i, ii, iii unless told
    ]
    assert "删除" not in extraction.text and "未被引用" not in extraction.text


def test_docx_note_numbers_follow_the_document_note_settings(tmp_path: Path) -> None:
    # Chinese documents number footnotes ①②③ (settings.xml) and endnotes 一二三 (the
    # section's own w:endnotePr wins over the settings); a custom mark "*" is typed in the
    # body and in the note, and takes no number.
    import docx
    from docx.oxml import parse_xml

    document = docx.Document()
    document.settings.element.append(
        parse_xml(
            f'<w:footnotePr {_W_NS}><w:numFmt w:val="decimalEnclosedCircleChinese"/></w:footnotePr>'
        )
    )
    document.settings.element.append(
        parse_xml(f'<w:endnotePr {_W_NS}><w:numFmt w:val="upperRoman"/></w:endnotePr>')
    )
    document.element.body.sectPr.append(
        parse_xml(
            f'<w:endnotePr {_W_NS}><w:numFmt w:val="chineseCounting"/>'
            '<w:numStart w:val="2"/></w:endnotePr>'
        )
    )
    _add_paragraph(
        document,
        _run("数据")
        + _reference("footnote", 1, custom="*")
        + _run("表明")
        + _reference("footnote", 2)
        + _reference("endnote", 1),
    )
    _add_notes(
        document,
        "footnote",
        _note("footnote", 1, "* 数据来源：国家统计局。", mark=False)
        + _note("footnote", 2, " 2023年数据。"),
    )
    _add_notes(document, "endnote", _note("endnote", 1, " 见附件。"))
    path = tmp_path / "report.docx"
    document.save(str(path))
    assert texts(extract(path)) == [
        "数据*表明",
        "* 数据来源：国家统计局。",
        "注①：2023年数据。",
        "注二：见附件。",
    ]


_NUMBERING = (
    '<w:numbering {ns}><w:abstractNum w:abstractNumId="0"><w:lvl w:ilvl="0">'
    '<w:start w:val="1"/><w:numFmt w:val="chineseCounting"/><w:lvlText w:val="（%1）"/>'
    '<w:suff w:val="nothing"/></w:lvl></w:abstractNum>'
    '<w:num w:numId="1"><w:abstractNumId w:val="0"/></w:num></w:numbering>'
)


def _numbered(text: str) -> str:
    props = '<w:pPr><w:numPr><w:ilvl w:val="0"/><w:numId w:val="1"/></w:numPr></w:pPr>'
    return f"<w:p>{props}{_run(text)}</w:p>"


def test_docx_notes_write_their_list_numbers_and_text_boxes_as_the_body_does(
    tmp_path: Path,
) -> None:
    # A note listing its sources "（一）…（二）…" lost its numbers, and a text box in a note
    # was not read. Word's numbering instances are the document's, shared by every story:
    # a list continued in a note counts on from the body's (here, written after it).
    import docx
    from docx.oxml import parse_xml

    document = docx.Document()
    numbering = document.part.numbering_part.element
    for child in list(numbering):
        numbering.remove(child)

    for child in parse_xml(_NUMBERING.format(ns=_W_NS)):
        numbering.append(child)
    body = document.element.body
    body.insert(len(body) - 1, parse_xml(_numbered("总部；").replace("<w:p>", f"<w:p {_W_NS}>", 1)))
    _add_paragraph(document, _run("依据如下") + _reference("footnote", 1) + _run("。"))
    box = (
        '<w:r><w:pict><v:shape xmlns:v="urn:schemas-microsoft-com:vml"><v:textbox>'
        f"<w:txbxContent><w:p>{_run('框内说明')}</w:p></w:txbxContent>"
        "</v:textbox></v:shape></w:pict></w:r>"
    )
    _add_notes(
        document,
        "footnote",
        '<w:footnote w:id="1">'
        f"<w:p><w:r><w:footnoteRef/></w:r>{_run(' 依据：')}{box}</w:p>"
        f"{_numbered('《公司法》；')}{_numbered('《证券法》。')}</w:footnote>",
    )
    path = tmp_path / "sources.docx"
    document.save(str(path))
    assert texts(extract(path)) == [
        "（一）总部；",
        "依据如下。",
        "注1：依据：",
        "框内说明",  # the text box follows the note paragraph anchoring it
        "（二）《公司法》；",
        "（三）《证券法》。",
    ]


def test_docx_footnotes_restart_and_change_format_per_section(tmp_path: Path) -> None:
    # A report whose chapters are sections numbering their footnotes afresh (w:numRestart
    # eachSect), the appendix in ①②: they were counted on through the document, all in the
    # last section's format. A section ends at the paragraph holding its w:sectPr; the body's
    # last w:sectPr is the last section's. Restarts per page are counted on: where pages fall
    # is not known without laying the document out.
    import docx
    from docx.oxml import parse_xml

    def section(fmt: str, restart: str) -> str:
        return (
            f'<w:pPr><w:sectPr><w:footnotePr><w:numFmt w:val="{fmt}"/>'
            f'<w:numRestart w:val="{restart}"/></w:footnotePr></w:sectPr></w:pPr>'
        )

    document = docx.Document()
    _add_paragraph(document, _run("第一章") + _reference("footnote", 1))
    _add_paragraph(
        document, section("decimal", "eachSect") + _run("小结") + _reference("footnote", 2)
    )
    _add_paragraph(document, _run("第二章") + _reference("footnote", 3))
    _add_paragraph(document, section("decimal", "eachPage") + _run("小结"))
    _add_paragraph(document, _run("附录") + _reference("footnote", 4) + _reference("footnote", 5))
    document.element.body.sectPr.append(
        parse_xml(
            f'<w:footnotePr {_W_NS}><w:numFmt w:val="decimalEnclosedCircleChinese"/>'
            '<w:numRestart w:val="eachSect"/></w:footnotePr>'
        )
    )
    _add_notes(
        document,
        "footnote",
        "".join(_note("footnote", k, f" 第{k}条注释。") for k in range(1, 6)),
    )
    path = tmp_path / "report.docx"
    document.save(str(path))
    assert texts(extract(path))[5:] == [
        "注1：第1条注释。",
        "注2：第2条注释。",  # the paragraph holding the w:sectPr is its section's last
        "注3：第3条注释。",  # restarted per page: counted on
        "注①：第4条注释。",
        "注②：第5条注释。",
    ]
