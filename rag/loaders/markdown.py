"""Split a decoded source into numbered raw paragraphs whose characters map back to the source."""

from __future__ import annotations

import html
import re
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser

from markdown_it import MarkdownIt
from markdown_it.token import Token

from rag.offsets import MappedText
from rag.types import SourceText


@dataclass(frozen=True)
class RawParagraph:
    """One block of the source before cleaning; `line_start`/`line_end` are 1-based, inclusive."""

    number: int
    text: MappedText
    line_start: int
    line_end: int


# `str.isspace` already covers nbsp and the ideographic space; zero-width characters are not
# white space to Python but are just as invisible on a page.
_BLANK = re.compile(r"[\s\u200b\u200c\u200d\u2060\ufeff]*")


def paragraph_spans(source: SourceText) -> list[RawParagraph]:
    """Split `source` into paragraphs, numbered 1-based in source order.

    Plain text: every non-blank line. Markdown: every block (heading, paragraph, list item,
    quote, code block, table row) with its leading markup removed. HTML: the text between
    block-level tags, outside scripts, styles and page chrome such as nav and footer.

    Args:
        source: The decoded file.

    Returns:
        The non-blank paragraphs; each `text` maps every character back to `source.text`.
    """
    lines = _LineIndex(source.text)
    if source.format == "markdown":
        blocks = _markdown_blocks(source.text, lines)
    elif source.format == "html":
        blocks = _html_blocks(source.text, lines)
    else:
        blocks = _text_blocks(source.text, lines)
    paragraphs: list[RawParagraph] = []
    for text, line_start, line_end in blocks:
        if not _BLANK.fullmatch(text.text):
            paragraphs.append(RawParagraph(len(paragraphs) + 1, text, line_start, line_end))
    return paragraphs


Block = tuple[MappedText, int, int]


class _LineIndex:
    """Offsets of line starts, to turn a line number into an offset and back."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def offset(self, line: int) -> int:
        """Offset of the start of 0-based `line` (the text length past the last line)."""
        return self.starts[line] if line < len(self.starts) else len(self.text)

    def line_end(self, line: int) -> int:
        """Offset of the end of 0-based `line`, before its newline."""
        end = self.offset(line + 1)
        return end - 1 if end > 0 and self.text[end - 1] == "\n" else end

    def line_of(self, offset: int) -> int:
        """1-based line number holding `offset`."""
        return bisect_right(self.starts, offset)

    def span(self, first: int, last: int) -> MappedText:
        """Lines `first` to `last` (0-based, inclusive) without the final newline."""
        a, b = self.offset(first), self.line_end(last)
        return MappedText.from_source(self.text[a:b], a)


def _text_blocks(text: str, lines: _LineIndex) -> Iterator[Block]:
    for number, start in enumerate(lines.starts):
        end = lines.line_end(number)
        yield MappedText.from_source(text[start:end], start), number + 1, number + 1


# --- Markdown -------------------------------------------------------------------------------

_MARKDOWN = MarkdownIt("commonmark").enable("table")
_INDENT = re.compile(r"^[ \t]+", re.MULTILINE)
_LIST_MARKER = re.compile(r"\A[ \t]*(?:(?:[-+*]|\d{1,9}[.)])(?:[ \t]+|$))+")
_ATX_OPEN = re.compile(r"\A[ \t]*#{1,6}(?:[ \t]+|$)")
_ATX_CLOSE = re.compile(r"(?:[ \t]+|^)#+[ \t]*$")
_FENCE_LINE = re.compile(r"[ \t]*(?:`{3,}|~{3,})[^\n]*")
_ROW_EDGES = re.compile(r"\A[ \t]*\|[ \t]*|[ \t]*(?<!\\)\|[ \t]*\Z")
_CELL_SEPARATOR = re.compile(r"[ \t]*(?<!\\)\|[ \t]*")
_HTML_TAG = re.compile(r"<[^>]*>")


def _quote_prefix(depth: int) -> re.Pattern[str]:
    # A lazy continuation line may carry fewer `>` than the quote depth, hence {0,depth}.
    return re.compile(rf"^(?:[ \t]{{0,3}}>[ \t]?){{0,{depth}}}", re.MULTILINE)


def _markdown_blocks(text: str, lines: _LineIndex) -> Iterator[Block]:
    tokens = _MARKDOWN.parse(text)
    quote_depth = 0
    item_start = False  # the next block is the first one of a list item: strip its marker
    for i, token in enumerate(tokens):
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
    token: Token, tokens: list[Token], i: int, lines: _LineIndex, quote_depth: int, item: bool
) -> Block | None:
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
    elif token.type in ("fence", "code_block", "html_block"):
        mapped = _strip_containers(lines.span(first, stop - 1), quote_depth, item)
        if token.type == "fence":
            mapped = _drop_fence_lines(mapped)
        elif token.type == "html_block":
            mapped = mapped.sub(_HTML_TAG, " ")
    elif token.type == "tr_open":
        mapped = _strip_containers(lines.span(first, stop - 1), quote_depth, item)
        # A tab, not the pipe, between cells: cleaning would take `a | b | c` for a nav bar.
        mapped = mapped.sub(_ROW_EDGES, "").sub(_CELL_SEPARATOR, "\t")
    else:
        return None
    return mapped, first + 1, stop


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


# --- HTML -----------------------------------------------------------------------------------

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
_CHARREF = re.compile(r"&(?:#[xX][0-9a-fA-F]+|#[0-9]+|[A-Za-z][-.A-Za-z0-9]*);?")


class _BlockParser(HTMLParser):
    """Collects text runs with their source offsets and cuts them at block tags."""

    def __init__(self, text: str, lines: _LineIndex) -> None:
        super().__init__(convert_charrefs=False)
        self.source = text
        self.lines = lines
        self.skip_depth: dict[str, int] = {}
        self.pieces: list[tuple[str, int, int]] = []
        self.blocks: list[MappedText] = []

    def _offset(self) -> int:
        line, column = self.getpos()
        return self.lines.offset(line - 1) + column

    def _flush(self) -> None:
        if self.pieces:
            self.blocks.append(MappedText.from_pieces(self.pieces))
            self.pieces = []

    def close(self) -> None:
        super().close()
        self._flush()

    def _skipping(self) -> bool:
        return any(self.skip_depth.values())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skip_depth[tag] = self.skip_depth.get(tag, 0) + 1
        if tag in _BLOCK_TAGS or tag in _SKIP_TAGS:
            self._flush()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # `<svg/>` or `<br/>`: no content to skip, but still a boundary.
        if tag in _BLOCK_TAGS or tag in _SKIP_TAGS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if self.skip_depth.get(tag):
            self.skip_depth[tag] -= 1
        if tag in _BLOCK_TAGS or tag in _SKIP_TAGS:
            self._flush()

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
        self.pieces.append((html.unescape(raw), start, match.end()))

    def handle_entityref(self, name: str) -> None:
        self._handle_reference()

    def handle_charref(self, name: str) -> None:
        self._handle_reference()


def _html_blocks(text: str, lines: _LineIndex) -> Iterator[Block]:
    parser = _BlockParser(text, lines)
    parser.feed(text)
    parser.close()
    for block in parser.blocks:
        stripped = block.strip()
        if not stripped.text:
            continue
        first, last = stripped.source_span()
        yield stripped, lines.line_of(first), lines.line_of(max(first, last - 1))
