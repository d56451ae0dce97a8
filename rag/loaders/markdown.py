"""Markdown files: every block (heading, paragraph, list item, quote, code, table row).

A table row is written with its column names, `列名: 值；列名: 值`, as other formats' rows are;
a `<br>` in a cell is a space in its value, in a paragraph or heading a line break.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token

from rag.loaders.base import Block, Extraction, LoadOptions
from rag.loaders.lines import LineIndex
from rag.loaders.table import mapped_row
from rag.loaders.text import decode_text
from rag.text.offsets import MappedText

# A block's text and its 1-based first and last lines.
Span = tuple[MappedText, int, int]


class MarkdownLoader:
    format: str = "markdown"
    extensions: tuple[str, ...] = (".md", ".markdown")

    def extract(self, path: Path, data: bytes, options: LoadOptions) -> Extraction:
        text, encoding = decode_text(path, data)
        return Extraction(text, encoding, self.format, tuple(markdown_blocks(text)))


def markdown_blocks(text: str) -> list[Block]:
    """Every block with its leading markup removed, in source order."""
    return [Block(m, a, b) for m, a, b in _markdown_blocks(text, LineIndex(text))]


_MARKDOWN = MarkdownIt("commonmark").enable("table")
_INDENT = re.compile(r"^[ \t]+", re.MULTILINE)
_LIST_MARKER = re.compile(r"\A[ \t]*(?:(?:[-+*]|\d{1,9}[.)])(?:[ \t]+|$))+")
_ATX_OPEN = re.compile(r"\A[ \t]*#{1,6}(?:[ \t]+|$)")
# Leading blanks are taken only from where their run starts (`(?<![ \t])`), else none: tried
# from every position inside a run, `[ \t]*` rescanned the rest of it each time, and a heading
# or table row holding 20,000 spaces took 4-10 s, 100,000 minutes. A match may still start at
# the `|` itself, right after the blanks an earlier match took (`| |`, an empty cell).
_ATX_CLOSE = re.compile(r"(?:(?<![ \t])[ \t]+|^)#+[ \t]*$")
_FENCE_LINE = re.compile(r"[ \t]*(?:`{3,}|~{3,})[^\n]*")
_ROW_EDGES = re.compile(r"\A[ \t]*\|[ \t]*|(?:(?<![ \t])[ \t]+)?(?<!\\)\|[ \t]*\Z")
_CELL_SEPARATOR = re.compile(r"(?:(?<![ \t])[ \t]+)?(?<!\\)\|[ \t]*")
_HTML_TAG = re.compile(r"<[^>]*>")
# A line break inside a table cell: a row is one line, so exported documents write `<br>`.
# `</br>`, a common typo, is read by browsers (and so shown by renderers) as `<br>`.
_CELL_BREAK = re.compile(r"</?br[ \t]*/?>", re.IGNORECASE)
# Line break tags in a paragraph, a run of them taken as one; `\<br>` is escaped text.
_BREAKS = re.compile(r"(?<!\\)(?:</?br[ \t]*/?>[ \t]*)+", re.IGNORECASE)
_BACKTICKS = re.compile(r"`+")
_ANY = re.compile(r".+", re.DOTALL)


def _quote_prefix(depth: int) -> re.Pattern[str]:
    # A lazy continuation line may carry fewer `>` than the quote depth, hence {0,depth}.
    return re.compile(rf"^(?:[ \t]{{0,3}}>[ \t]?){{0,{depth}}}", re.MULTILINE)


def _markdown_blocks(text: str, lines: LineIndex) -> Iterator[Span]:
    tokens = _MARKDOWN.parse(text)
    quote_depth = 0
    item_start = False  # the next block is the first one of a list item: strip its marker
    header: list[str] | None = None  # the column names of the table being read
    for i, token in enumerate(tokens):
        if token.type == "tr_open" and token.map is not None:
            cells = _row_cells(lines.span(token.map[0], token.map[1] - 1), quote_depth, item_start)
            item_start = False
            if header is None or tokens[i - 1].type == "thead_open":
                # The header row names the columns; written itself only when no row follows.
                header = [cell.text if cell is not None else "" for cell in cells]
                if not _has_body(tokens, i):
                    yield mapped_row(cells, None), token.map[0] + 1, token.map[1]
            else:
                yield mapped_row(cells, header), token.map[0] + 1, token.map[1]
            continue
        if token.type == "table_close":
            header = None
        if token.type == "blockquote_open":
            quote_depth += 1
        elif token.type == "blockquote_close":
            quote_depth -= 1
        elif token.type in ("list_item_open", "list_item_close"):
            # An empty item has no block to take its marker: forget it when the item closes.
            item_start = token.type == "list_item_open"
        block = _markdown_block(token, tokens, i, lines, quote_depth, item_start)
        if block is not None:
            item_start = False
            yield block


def _markdown_block(
    token: Token, tokens: list[Token], i: int, lines: LineIndex, quote_depth: int, item: bool
) -> Span | None:
    if token.map is None:
        return None
    first, stop = token.map
    if token.type in ("paragraph_open", "heading_open"):
        # The inline child's map leaves out a setext heading's underline.
        inline_map = tokens[i + 1].map or token.map
        mapped = _strip_containers(lines.span(inline_map[0], inline_map[1] - 1), quote_depth, item)
        mapped = mapped.sub(_INDENT, "")
        if token.type == "heading_open":
            mapped = mapped.sub(_ATX_OPEN, "").sub(_ATX_CLOSE, "")
        mapped = _line_breaks(mapped)
    elif token.type in ("fence", "code_block", "html_block"):
        mapped = _strip_containers(lines.span(first, stop - 1), quote_depth, item)
        if token.type == "fence":
            mapped = _drop_fence_lines(mapped)
        elif token.type == "html_block":
            mapped = mapped.sub(_HTML_TAG, " ")
    else:
        return None
    return mapped, first + 1, stop


def _line_breaks(mapped: MappedText) -> MappedText:
    """`<br>` tags outside code spans as renderers show them: a line break mapped to the tags.

    A run of tags is one break and a tag next to a line break is dropped: a block holds
    no blank line.
    """
    text = mapped.text
    if "<" not in text:
        return mapped
    code = _code_spans(text)
    k = 0  # the first code span not ending before the current tag: both come in order
    parts = []
    pos = 0
    for match in _BREAKS.finditer(text):
        a, b = match.span()
        while k < len(code) and code[k][1] <= a:
            k += 1
        if k < len(code) and code[k][0] <= a:
            continue
        parts.append(mapped[pos:a])
        if a > 0 and text[a - 1] != "\n" and b < len(text) and text[b] != "\n":
            parts.append(mapped[a:b].sub(_ANY, "\n"))
        pos = b
    parts.append(mapped[pos:])
    return MappedText.concat(parts)


def _code_spans(text: str) -> list[tuple[int, int]]:
    """Where code spans stand: a run of backticks up to the next run of the same length.

    Found in linear time (a pattern with a lazy body rescans the text from every run).
    """
    runs = [m.span() for m in _BACKTICKS.finditer(text)]
    later: dict[int, list[int]] = {}  # run length -> indexes of runs of it, last first
    for k in range(len(runs) - 1, -1, -1):
        later.setdefault(runs[k][1] - runs[k][0], []).append(k)
    spans = []
    k = 0
    while k < len(runs):
        same = later[runs[k][1] - runs[k][0]]
        while same and same[-1] <= k:
            same.pop()
        if same:
            spans.append((runs[k][0], runs[same[-1]][1]))
            k = same[-1] + 1
        else:
            k += 1
    return spans


def _row_cells(row: MappedText, quote_depth: int, item: bool) -> list[MappedText | None]:
    """A table row's cells, stripped; an empty one is None."""
    # NUL cannot be in a text we read (binary files are refused): it marks where cells part.
    row = _strip_containers(row, quote_depth, item).sub(_ROW_EDGES, "").sub(_CELL_SEPARATOR, "\0")
    row = row.sub(_CELL_BREAK, " ")  # a space in the value, mapped to the tag
    cells: list[MappedText | None] = []
    start = 0
    while True:
        end = row.text.find("\0", start)
        cell = row[start : len(row) if end < 0 else end].strip()
        cells.append(cell if cell.text else None)
        if end < 0:
            return cells
        start = end + 1


def _has_body(tokens: list[Token], i: int) -> bool:
    """Whether the table whose header row opens at `i` has a row after it."""
    for token in tokens[i + 1 :]:
        if token.type == "tbody_open":
            return True
        if token.type == "table_close":
            return False
    return False


def _strip_containers(mapped: MappedText, quote_depth: int, item: bool) -> MappedText:
    if quote_depth:
        mapped = mapped.sub(_quote_prefix(quote_depth), "")
    if item:
        mapped = mapped.sub(_LIST_MARKER, "")
    return mapped


def _drop_fence_lines(mapped: MappedText) -> MappedText:
    # The opening fence is the first line; the closing one, if the fence was closed, the last.
    text = mapped.text
    start = text.find("\n") + 1 if "\n" in text else len(text)
    end = len(text)
    last = text.rfind("\n")
    if last >= start and _FENCE_LINE.fullmatch(text[last + 1 :]):
        end = last
    return mapped[start:end]
