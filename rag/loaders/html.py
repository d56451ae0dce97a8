"""HTML files: the text between block-level tags, outside scripts, styles and page chrome.

A data table's rows are written with their column names (html_table.py), a definition list's
definitions with their terms.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from rag.loaders.base import Block, Extraction, LoadOptions
from rag.loaders.html_table import Table
from rag.loaders.lines import LineIndex
from rag.loaders.table import assemble_row
from rag.loaders.text import decode_text
from rag.text.offsets import MappedText


class HtmlLoader:
    format: str = "html"
    extensions: tuple[str, ...] = (".html", ".htm")

    def extract(self, path: Path, data: bytes, options: LoadOptions) -> Extraction:
        text, encoding = decode_text(path, data)
        return Extraction(text, encoding, self.format, tuple(html_blocks(text)))


def html_blocks(text: str) -> list[Block]:
    """The text between block tags, stripped, nav/footer/scripts left out."""
    return [Block(m, a, b) for m, a, b in _html_blocks(text, LineIndex(text))]


# Tags that start or end a paragraph.
_BLOCK_TAGS = frozenset(
    {
        *("address", "article", "blockquote", "body", "br", "caption", "dd", "div", "dl", "dt"),
        *("figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "head", "hr", "html"),
        *("li", "main", "ol", "p", "pre", "section", "table", "tbody", "td", "tfoot", "th"),
        *("thead", "title", "tr", "ul"),
    }
)
# Page chrome and non-text content: nothing inside is body text.
_SKIP_TAGS = frozenset(
    {
        *("script", "style", "noscript", "template", "nav", "header", "footer", "aside"),
        *("form", "svg", "iframe", "object", "canvas", "select", "button"),
    }
)
_MAX_TERMS = 8  # terms written before one definition
_CHARREF = re.compile(r"&(?:#[xX][0-9a-fA-F]+|#[0-9]+|[A-Za-z][-.A-Za-z0-9]*);?")


@dataclass
class _DefinitionList:
    """A `<dl>` being parsed: each `<dd>` is written with the `<dt>` terms before it.

    A definition alone ("每年累计不超过30天。") cannot be cited with what it defines; it is
    written `病假: 每年累计不超过30天。`, as a table value is with its column (table.py): the
    term and `: ` map to the point where the definition starts. End tags may be left out.
    """

    tables: int  # tables open when it began: the blocks emitted at that depth are its own
    part: str | None = None  # "dt" or "dd" while inside one
    terms: list[MappedText] = field(default_factory=list)
    defined: bool = False  # the terms have had a definition: a `<dt>` now starts a new group

    def start(self, tag: str) -> None:
        if tag == "dt" and self.defined:
            self.terms, self.defined = [], False
        self.part = tag
        self.defined = self.defined or tag == "dd"

    def take(self, block: MappedText) -> MappedText | None:
        """The block to write for one cut inside the list (None: a term, kept for later)."""
        text = block.strip()
        if self.part == "dt":
            if text.text:
                self.terms.append(text)
            # A group is a term or a few (synonyms); past that, a page of bare terms: the
            # first are written alone rather than repeated before every definition.
            return self.terms.pop(0) if len(self.terms) > _MAX_TERMS else None
        if self.part == "dd" and self.terms and text.text:
            return assemble_row(["；".join(term.text for term in self.terms), ": ", text])
        return block

    def undefined(self) -> list[MappedText]:
        """Terms given no definition: written as they are when the list ends."""
        return [] if self.defined else self.terms


class _BlockParser(HTMLParser):
    """Collects text runs with their source offsets and cuts them at block tags."""

    def __init__(self, text: str, lines: LineIndex) -> None:
        super().__init__(convert_charrefs=False)
        self.source = text
        self.lines = lines
        self.skip_depth: dict[str, int] = {}
        self.pieces: list[tuple[str, int, int]] = []
        self.blocks: list[MappedText] = []
        self.tables: list[Table] = []  # open tables, innermost last
        self.lists: list[_DefinitionList] = []  # open <dl>s, innermost last

    def _offset(self) -> int:
        line, column = self.getpos()
        return self.lines.offset(line - 1) + column

    def _flush(self) -> None:
        if self.pieces:
            self._emit(MappedText.from_pieces(self.pieces))
            self.pieces = []

    def _emit(self, block: MappedText) -> None:
        if self._list_here():
            # Only the innermost list names its definitions: chaining the terms of every
            # list around it would make a page of nested lists quadratic.
            taken = self.lists[-1].take(block)
            if taken is None:
                return
            block = taken
        if self.tables:
            self.tables[-1].add(block)
        else:
            self.blocks.append(block)

    def _end_table(self) -> None:
        table = self.tables.pop()
        if self.tables:
            self.tables[-1].layout = True  # a table in a table: the outer one is layout
        for block in table.blocks():
            self._emit(block)

    def _end_list(self) -> None:
        for term in self.lists.pop().undefined():
            self._emit(term)

    def close(self) -> None:
        super().close()
        self._flush()
        while self.lists:  # a page cut short inside a definition list
            self._end_list()
        while self.tables:  # a page cut short inside a table
            self._end_table()

    def _skipping(self) -> bool:
        return any(self.skip_depth.values())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br" and self._in_cell():
            self._break_in_cell()
            return
        if tag in _SKIP_TAGS:
            self.skip_depth[tag] = self.skip_depth.get(tag, 0) + 1
        if tag in _BLOCK_TAGS or tag in _SKIP_TAGS:
            self._flush()
        if self._skipping():
            return
        if tag == "table":
            self.tables.append(Table())
        elif self.tables and tag == "tr":
            self.tables[-1].start_row()
        elif self.tables and tag in ("td", "th"):
            named = dict(attrs)
            self.tables[-1].start_cell(tag == "th", named.get("colspan"), named.get("rowspan"))
        if tag == "dl":
            self.lists.append(_DefinitionList(len(self.tables)))
        elif tag in ("dt", "dd") and self._list_here():
            self.lists[-1].start(tag)

    def _in_cell(self) -> bool:
        return bool(self.tables) and self.tables[-1].cell is not None and not self._skipping()

    def _break_in_cell(self, end_tag: bool = False) -> None:
        """A `<br>` inside a table cell: a space in the cell's value, mapped to the tag.

        Cut there, the cell would be two paragraphs and its table taken for layout: every
        cell a block of its own, a value apart from the column that names it. `</br>`, a
        common typo, is read by browsers as `<br>`, and so here.
        """
        start = self._offset()
        if end_tag:  # the parser keeps no text of an end tag: it runs to its `>`
            end = self.source.find(">", start) + 1 or len(self.source)
        else:
            end = start + len(self.get_starttag_text() or "")
        self.pieces.append((" ", start, end))

    def _list_here(self) -> bool:
        """Whether the innermost open `<dl>` is the innermost container (not a table in it)."""
        return bool(self.lists) and self.lists[-1].tables == len(self.tables)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # `<svg/>` or `<br/>`: no content to skip, but still a boundary.
        if tag == "br" and self._in_cell():
            self._break_in_cell()
        elif tag in _BLOCK_TAGS or tag in _SKIP_TAGS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag == "br" and self._in_cell():
            self._break_in_cell(end_tag=True)
            return
        if self.skip_depth.get(tag):
            self.skip_depth[tag] -= 1
        if tag in _BLOCK_TAGS or tag in _SKIP_TAGS:
            self._flush()
        if self.tables and not self._skipping():
            if tag == "table":
                self._end_table()
            elif tag in ("td", "th", "tr"):
                self.tables[-1].cell = None
        if self._list_here() and not self._skipping():
            if tag == "dl":
                self._end_list()
            elif tag in ("dt", "dd"):
                self.lists[-1].part = None

    def handle_data(self, data: str) -> None:
        if self._skipping():
            return
        start = self._offset()
        self.pieces.append((data, start, start + len(data)))

    def _handle_reference(self) -> None:
        if self._skipping():
            return
        start = self._offset()
        match = _CHARREF.match(self.source, start)
        if match is None:
            return
        raw = match.group()
        try:
            text = html.unescape(raw)
        except ValueError:
            # A numeric reference of thousands of digits: Python will not make an int of it.
            # Out of Unicode's range either way, so what a browser shows: U+FFFD.
            text = "\ufffd"
        self.pieces.append((text, start, match.end()))

    def handle_entityref(self, name: str) -> None:
        self._handle_reference()

    def handle_charref(self, name: str) -> None:
        self._handle_reference()


def _html_blocks(text: str, lines: LineIndex) -> Iterator[tuple[MappedText, int, int]]:
    parser = _BlockParser(text, lines)
    parser.feed(text)
    parser.close()
    for block in parser.blocks:
        stripped = block.strip()
        if not stripped.text:
            continue
        first, last = stripped.source_span()
        yield stripped, lines.line_of(first), lines.line_of(max(first, last - 1))
