"""paragraph_spans: numbering, line numbers and exact offsets for text, Markdown and HTML."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rag.ingest.paragraphs import RawParagraph
from rag.types import Format, SourceText
from tests.texts import paragraph_spans

DEMO = Path(__file__).resolve().parent.parent / "data" / "demo"


def split(text: str, fmt: Format) -> list[RawParagraph]:
    return paragraph_spans(SourceText(f"sample.{fmt}", text, "utf-8", fmt))


def summary(paragraphs: list[RawParagraph]) -> list[tuple[int, int, int, str]]:
    return [(p.number, p.line_start, p.line_end, p.text.text) for p in paragraphs]


def test_plain_text_every_non_blank_line_is_a_paragraph() -> None:
    text = "标题\n\n第一段。\n\u3000\u3000\n\u00a0 \n第二段。\n最后一行"
    assert summary(split(text, "text")) == [
        (1, 1, 1, "标题"),
        (2, 3, 3, "第一段。"),
        (3, 6, 6, "第二段。"),
        (4, 7, 7, "最后一行"),
    ]


def test_plain_text_spans_slice_back_to_the_line() -> None:
    text = "\u3000\u3000缩进的段落 \n\n  另一段\t\n"
    for paragraph in split(text, "text"):
        a, b = paragraph.text.source_span()
        assert text[a:b] == paragraph.text.text
        assert text.splitlines()[paragraph.line_start - 1] == paragraph.text.text


@pytest.mark.parametrize("path", sorted(DEMO.glob("*.txt")), ids=lambda p: p.name[:3])
def test_every_seed_paragraph_slices_back_exactly(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    paragraphs = split(text, "text")
    assert [p.number for p in paragraphs] == list(range(1, len(paragraphs) + 1))
    for paragraph in paragraphs:
        a, b = paragraph.text.source_span()
        assert text[a:b] == paragraph.text.text


MARKDOWN = """\
# 标题一 #

第一段
第二行

> 引用段落
继续

- 列表一
- 列表二
  续行

1. 编号

标题二
=====

```python
code line
```

| 名称 | 数量 |
|------|------|
| 甲 | 1 |

> - 引用里的列表
"""


def test_markdown_blocks_lose_their_leading_markup() -> None:
    assert summary(split(MARKDOWN, "markdown")) == [
        (1, 1, 1, "标题一"),
        (2, 3, 4, "第一段\n第二行"),
        (3, 6, 7, "引用段落\n继续"),
        (4, 9, 9, "列表一"),
        (5, 10, 11, "列表二\n续行"),
        (6, 13, 13, "编号"),
        (7, 15, 16, "标题二"),
        (8, 18, 20, "code line"),
        (9, 24, 24, "名称: 甲；数量: 1"),  # a row named by its header, as Word's rows are
        (10, 26, 26, "引用里的列表"),
    ]


def test_markdown_characters_map_to_the_same_source_characters() -> None:
    for paragraph in split(MARKDOWN, "markdown"):
        mapped = paragraph.text
        for i, ch in enumerate(mapped.text):
            a, b = mapped.source_span(i, i + 1)
            if b - a == 1:
                assert MARKDOWN[a] == ch
        a, b = mapped.source_span()
        lines = MARKDOWN.splitlines()[paragraph.line_start - 1 : paragraph.line_end]
        assert MARKDOWN[a:b] in "\n".join(lines)


def test_markdown_heading_and_table_row_with_long_blank_runs_are_read_in_linear_time() -> None:
    # The heading-close and table-cell patterns began with `[ \t]*`, tried from every
    # position of a run of blanks: a row holding 30,000 spaces took about 20 s, a larger
    # one hung the ingest.
    blanks = " " * 30_000
    text = f"# 标题{blanks}x ##\n\n| 名称 | 数量 |\n|---|---|\n| 甲{blanks}乙 |{blanks}1 |\n"
    start = time.perf_counter()
    found = [p.text.text for p in split(text, "markdown")]
    assert time.perf_counter() - start < 2
    assert found == [f"标题{blanks}x", f"名称: 甲{blanks}乙；数量: 1"]
    # A separator may start right after the blanks the previous one took: an empty cell.
    empty_cell = "| 名称 | 数量 | 备注 |\n|---|---|---|\n| 甲 | | 注 |\n"
    assert [p.text.text for p in split(empty_cell, "markdown")] == ["名称: 甲；备注: 注"]


def test_markdown_line_break_in_a_cell_is_a_space_in_the_value() -> None:
    # Exported documents write a line break in a table cell as `<br>`: it was read as the
    # characters "<br>" in the value ("市政务中心<br>二楼A区").
    text = "| 事项 | 办理地点 |\n|---|---|\n| 户籍迁入 | 市政务中心<br>二楼A区<BR/> |\n"
    paragraphs = split(text, "markdown")
    assert summary(paragraphs) == [(1, 3, 3, "事项: 户籍迁入；办理地点: 市政务中心 二楼A区")]
    row = paragraphs[0].text
    space = row.text.index("中心 ") + 2
    assert text[slice(*row.source_span(space, space + 1))] == "<br>"


def test_markdown_line_break_tag_in_a_paragraph_is_a_line_break() -> None:
    # Renderers show `<br>` (and `</br>`, the common typo browsers read as `<br>`) in a
    # paragraph as a line break; it was read as the characters "<br>". It is now a line
    # break mapped to the tag, one for a run of tags (a block holds no blank line), none
    # where a line break already stands; in a code span it is the characters it is.
    text = (
        "地址：市政务中心<br>二楼A区<br/><BR>\n"
        "电话：12345</br>  \n"
        "<br>传真：`<br>` 不换行 \\<br>\n"
        "\n"
        "# 标题<br />副标题\n"
    )
    paragraphs = split(text, "markdown")
    assert [p.text.text for p in paragraphs] == [
        "地址：市政务中心\n二楼A区\n电话：12345\n传真：`<br>` 不换行 \\<br>",
        "标题\n副标题",
    ]
    block = paragraphs[0].text
    broken = block.text.index("\n")
    assert text[slice(*block.source_span(broken, broken + 1))] == "<br>"
    assert text[slice(*block.source_span())] == text[: text.index("\n\n")]


def test_markdown_closing_br_typo_in_a_cell_is_a_space_as_br_is() -> None:
    # `</br>` was left in the value as characters; renderers show it as `<br>`.
    text = "| 事项 | 办理地点 |\n|---|---|\n| 户籍迁入 | 市政务中心</br>二楼A区 |\n"
    assert [p.text.text for p in split(text, "markdown")] == [
        "事项: 户籍迁入；办理地点: 市政务中心 二楼A区"
    ]


def test_markdown_table_rows_name_each_value_by_its_column() -> None:
    # Each row was its cells joined by tabs, the header row a block of its own: "1" stood
    # apart from 数量, so it could not be cited with what it means.
    text = (
        "| 部门 | 人数 | 负责人 |\n|---|---:|---|\n| 财务部 | 5 | 王五 |\n| 人事部 | 3 | |\n"
        "\n| 只有表头 | 一行 |\n|---|---|\n"
    )
    paragraphs = split(text, "markdown")
    assert summary(paragraphs) == [
        (1, 3, 3, "部门: 财务部；人数: 5；负责人: 王五"),
        (2, 4, 4, "部门: 人事部；人数: 3"),
        (3, 6, 6, "只有表头；一行"),  # a table of its header alone: its cells joined
    ]
    row = paragraphs[0].text
    a, b = row.source_span()
    assert text[a:b] == "财务部 | 5 | 王五"
    five = row.text.index("5")
    assert text[slice(*row.source_span(five, five + 1))] == "5"
    name = row.text.index("人数")
    assert row.source_span(name, name + 2) == row.source_span(five, five)


HTML = """\
<!DOCTYPE html><html><head><title>标题 &amp; 副题</title><style>p{color:red}</style>
<script>var x = "<p>脚本</p>";</script></head>
<body><nav>最新|活动</nav><header>站名</header>
<p>第一段&nbsp;文字<b>加粗</b>&#x4e2d;&#20013;</p><div>第二段<br>换行后
继续</div>
<ul><li>项一</li><li>项二</li></ul>
<table><tr><td>甲</td><td>1</td></tr></table>
<footer>版权所有</footer><aside>侧栏</aside><form>表单<button>提交</button></form>
尾巴 &unknown; &amp
</body></html>"""


def test_html_blocks_end_paragraphs_and_chrome_is_skipped() -> None:
    assert summary(split(HTML, "html")) == [
        (1, 1, 1, "标题 & 副题"),
        (2, 4, 4, "第一段\u00a0文字加粗中中"),
        (3, 4, 4, "第二段"),
        (4, 4, 5, "换行后\n继续"),
        (5, 6, 6, "项一"),
        (6, 6, 6, "项二"),
        (7, 7, 7, "甲；1"),  # a one-row table: its cells joined, as Word's are
        (8, 9, 9, "尾巴 &unknown; &"),
    ]


TABLE_HTML = """\
<p>人员情况如下：</p>
<table>
<caption>各部门人数</caption>
<thead><tr><th>部门</th><th>人数</th><th colspan="2">负责人</th></tr></thead>
<tbody>
<tr><td>财务部</td><td>5</td><td>王五</td><td>赵六</td></tr>
<tr><td rowspan="2">人事部</td><td>3</td><td></td><td>李四</td></tr>
<tr><td>4&amp;1</td><td>钱七</td><td></td></tr>
</tbody></table>
<table><tr><th>姓名</th><td>张三</td></tr><tr><th>性别</th><td>男</td></tr></table>
<table><tr><td>项目</td><td>金额</td></tr><tr><td>设备</td><td>3万元</td></tr></table>
<table><tr><td><p>布局的第一段。</p><p>布局的第二段。</p></td><td>侧栏</td></tr></table>
"""


def test_html_table_rows_name_each_value_by_its_column() -> None:
    # Each <td> was a block of its own: "5" stood alone and could not be cited with what it
    # means. Rows are written as Word, PDF and Excel rows are: 列名: 值；列名: 值.
    paragraphs = split(TABLE_HTML, "html")
    assert summary(paragraphs) == [
        (1, 1, 1, "人员情况如下："),
        (2, 3, 3, "各部门人数"),
        (3, 6, 6, "部门: 财务部；人数: 5；负责人: 王五；负责人: 赵六"),
        (4, 7, 7, "部门: 人事部；人数: 3；负责人: 李四"),
        (5, 8, 8, "人数: 4&1；负责人: 钱七"),  # 部门 is the 人事部 spanning from above
        (6, 10, 10, "姓名: 张三"),  # <th> down the first column names each row
        (7, 10, 10, "性别: 男"),
        (8, 11, 11, "项目: 设备；金额: 3万元"),  # no <th>: the first row names the columns
        # A layout table (a cell of several paragraphs): its paragraphs, as before.
        (9, 12, 12, "布局的第一段。"),
        (10, 12, 12, "布局的第二段。"),
        (11, 12, 12, "侧栏"),
    ]
    # Every character maps into the file: values to themselves, the added names and
    # separators to the point where the value they introduce starts.
    row = paragraphs[2].text
    a, b = row.source_span()
    assert TABLE_HTML[a:b] == "财务部</td><td>5</td><td>王五</td><td>赵六"
    five = row.text.index("5")
    assert TABLE_HTML[slice(*row.source_span(five, five + 1))] == "5"
    name = row.text.index("人数")
    assert row.source_span(name, name + 2) == row.source_span(five, five)
    amp = paragraphs[4].text
    i = amp.text.index("&")
    assert TABLE_HTML[slice(*amp.source_span(i, i + 1))] == "&amp;"


DL_HTML = """\
<dl>
<dt>年假</dt><dd>工作满一年的员工每年享有5天带薪休假。</dd>
<dt>病假</dt>
<dd>凭医院证明请假。</dd><dd>每年累计不超过30天。</dd>
<dt>调休<dt>补休<dd>加班后&amp;一个月内安排。
<dt>无定义的术语
</dl>
<dl><dd>没有术语的定义。</dd></dl>
"""


def test_html_definition_list_writes_each_definition_with_its_term() -> None:
    # A <dd> was a block of its own: "每年累计不超过30天" stood without the 病假 it defines.
    # Each definition is written with its term, as a table value is with its column.
    paragraphs = split(DL_HTML, "html")
    assert summary(paragraphs) == [
        (1, 2, 2, "年假: 工作满一年的员工每年享有5天带薪休假。"),
        (2, 4, 4, "病假: 凭医院证明请假。"),
        (3, 4, 4, "病假: 每年累计不超过30天。"),
        (4, 5, 5, "调休；补休: 加班后&一个月内安排。"),  # end tags left out, as HTML allows
        (5, 6, 6, "无定义的术语"),  # a term with nothing after it stays as it is
        (6, 8, 8, "没有术语的定义。"),
    ]
    # The definition maps to itself; the term and `: ` added before it, to where it starts.
    second = paragraphs[1].text
    a, b = second.source_span()
    assert DL_HTML[a:b] == "凭医院证明请假。"
    assert second.source_span(0, 4) == (a, a)
    amp = paragraphs[3].text
    i = amp.text.index("&")
    assert DL_HTML[slice(*amp.source_span(i, i + 1))] == "&amp;"


BR_TABLE_HTML = """\
<table>
<tr><th>事项</th><th>办理地点</th><th>材料</th></tr>
<tr><td>户籍迁入</td><td>市政务中心<br>二楼A区</td><td>身份证<br/>户口本<BR /></td></tr>
<tr><td>护照</td><td>出入境大厅</td><td>身份证</td></tr>
</table>
<p>表外<br>换行</p>
"""


def test_html_line_break_in_a_cell_stays_inside_the_cells_value() -> None:
    # A <br> in a cell (an address on two lines, a list of documents) cut the cell in two:
    # the table was taken for layout and every cell became a block of its own, "二楼A区"
    # without the 办理地点 it is. Inside a cell it is now a space in the value.
    paragraphs = split(BR_TABLE_HTML, "html")
    assert summary(paragraphs) == [
        (1, 3, 3, "事项: 户籍迁入；办理地点: 市政务中心 二楼A区；材料: 身份证 户口本"),
        (2, 4, 4, "事项: 护照；办理地点: 出入境大厅；材料: 身份证"),
        (3, 6, 6, "表外"),  # outside a table a <br> still ends a paragraph
        (4, 6, 6, "换行"),
    ]
    row = paragraphs[0].text
    space = row.text.index("中心 ") + 2
    assert BR_TABLE_HTML[slice(*row.source_span(space, space + 1))] == "<br>"
    a, b = row.source_span()
    assert BR_TABLE_HTML[a:b] == "户籍迁入</td><td>市政务中心<br>二楼A区</td><td>身份证<br/>户口本"


def test_html_closing_br_typo_in_a_cell_is_a_space_as_br_is() -> None:
    # Browsers read `</br>` as `<br>`; in a cell it ended the paragraph, cutting the cell in
    # two (the table then taken for layout). It is now a space in the value, mapped to it.
    html = BR_TABLE_HTML.replace("中心<br>", "中心</br>")
    paragraphs = split(html, "html")
    assert summary(paragraphs) == summary(split(BR_TABLE_HTML, "html"))
    row = paragraphs[0].text
    space = row.text.index("中心 ") + 2
    assert html[slice(*row.source_span(space, space + 1))] == "</br>"


@pytest.mark.parametrize(
    "html", [TABLE_HTML, DL_HTML, BR_TABLE_HTML], ids=["table", "definition-list", "br-in-cell"]
)
def test_html_extraction_of_rows_and_definitions_keeps_its_offsets(
    tmp_path: Path, html: str
) -> None:
    from tests.formats_samples import extract

    path = tmp_path / "page.html"
    path.write_text(html, encoding="utf-8")
    extract(path)  # checks that every block maps into the text


def test_html_entities_map_to_their_whole_reference() -> None:
    second = split(HTML, "html")[1].text
    assert second.text == "第一段\u00a0文字加粗中中"
    for i, entity in ((3, "&nbsp;"), (8, "&#x4e2d;"), (9, "&#20013;")):
        a, b = second.source_span(i, i + 1)
        assert HTML[a:b] == entity
    a, b = second.source_span()
    assert HTML[a:b] == "第一段&nbsp;文字<b>加粗</b>&#x4e2d;&#20013;"


def test_html_plain_runs_map_character_by_character() -> None:
    for paragraph in split(HTML, "html"):
        mapped = paragraph.text
        for i, ch in enumerate(mapped.text):
            a, b = mapped.source_span(i, i + 1)
            if b - a == 1:
                assert HTML[a] == ch


def test_empty_and_blank_sources_have_no_paragraphs() -> None:
    formats: tuple[Format, ...] = ("text", "markdown", "html")
    for fmt in formats:
        assert split("", fmt) == []
        assert split(" \n\u3000\n", fmt) == []
