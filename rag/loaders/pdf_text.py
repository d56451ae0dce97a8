"""Read a PDF page's characters and group them into positioned lines (PDFium, pdfminer.six).

PDFium is the main reader (fast, and it renders pages for OCR). pdfminer.six is kept for one
case: a CID font without a ToUnicode map, whose glyphs PDFium (and pypdf) return as glyph
ids; pdfminer maps them through the embedded font's own cmap.
"""

from __future__ import annotations

import ctypes
import io
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Any

from rag.loaders.geometry import Line
from rag.loaders.pdf_frame import PageFrame
from rag.loaders.pdf_table import Grid
from rag.loaders.table import table_rows

_CJK = re.compile(r"[\u3000-\u30ff\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]")

Char = tuple[str, float, float, float, float, bool]  # text, left, top, right, bottom, generated


def text_lines(textpage: Any, frame: PageFrame, tables: list[Grid] | None = None) -> list[Line]:
    """The page's characters as PDFium reads them, grouped into lines by position; those in
    a ruled table (`pdf_table.find_tables`) are read cell by cell, a line per table row.
    Positions are those of the page as shown (`frame`: its rotation applied)."""
    chars = _pdfium_chars(textpage, frame)
    if not tables:
        return _group_chars(chars)
    lines = _group_chars(_outside_tables(chars, tables))
    for grid in tables:
        lines += _table_lines(grid)
    return lines


def _outside_tables(chars: Iterable[Char], tables: list[Grid]) -> Iterator[Char]:
    """The characters outside `tables`; those inside go to their table's cells."""
    for char in chars:
        x, y = (char[1] + char[3]) / 2, (char[2] + char[4]) / 2
        for grid in tables:
            if char[0] != "\n" and grid.contains(x, y):
                grid.cells.setdefault(grid.cell_of(x, y), []).append(char)
                break
        else:
            yield char


def _table_lines(grid: Grid) -> list[Line]:
    """A table's rows as lines: the first non-empty row names the columns (table.py)."""
    from rag.loaders.layout import join_wrapped_lines
    from rag.text.offsets import MappedText

    rows: list[tuple[int, list[str | None]]] = []
    sizes: list[float] = []
    for r in range(len(grid.ys) - 1):
        # A cell merged over several columns holds the characters of all of them; the
        # columns it covers after its first are None (table.py names them after it).
        spans: list[list[Char]] = []
        row: list[str | None] = []
        for c in range(len(grid.xs) - 1):
            cell = grid.cells.get((r, c), [])
            sizes += [char[4] - char[2] for char in cell]
            if spans and grid.merged(r, c):
                spans[-1] += cell
                row.append(None)
            else:
                spans.append(list(cell))
                row.append("")
        pieces = iter(spans)
        for c, value in enumerate(row):
            if value is not None:
                text = "\n".join(line.text for line in _group_chars(next(pieces)))
                row[c] = join_wrapped_lines(MappedText.from_source(text)).text
        if any(row):
            rows.append((r, row))
    texts = table_rows([row for _, row in rows])
    placed = rows[1:] if len(texts) == len(rows) - 1 else rows
    size = sorted(sizes)[len(sizes) // 2] if sizes else 10.0
    return [
        Line(text, grid.xs[0], grid.ys[r], grid.xs[-1], grid.ys[r + 1], size, table=True)
        for text, (r, _) in zip(texts, placed, strict=True)
        if text
    ]


def _pdfium_chars(textpage: Any, frame: PageFrame) -> Iterator[Char]:
    import pypdfium2.raw as raw

    # Bound once: this loop runs for every character of every page (the hot path).
    get_unicode = raw.FPDFText_GetUnicode
    get_box = raw.FPDFText_GetLooseCharBox
    is_generated = raw.FPDFText_IsGenerated
    shown = frame.box
    handle = textpage.raw
    rect = raw.FS_RECTF()
    rect_ref = ctypes.byref(rect)
    pending = 0  # a high surrogate waiting for its low half
    for i in range(textpage.count_chars()):
        code = get_unicode(handle, i)
        if 0xD800 <= code < 0xE000:
            if code < 0xDC00:
                pending = code
                continue
            if pending:
                code = 0x10000 + ((pending - 0xD800) << 10) + (code - 0xDC00)
        pending = 0
        if code == 0x0D or code == 0x0A:
            yield ("\n", 0.0, 0.0, 0.0, 0.0, True)
            continue
        if not get_box(handle, i, rect_ref):
            continue
        # PDFium reports a hyphen it found at a line end as 0x02: a soft hyphen, which
        # join_wrapped_lines removes with the line break.
        char = "\u00ad" if code == 2 else chr(code) if code else "\ufffd"
        # Only a space's origin matters (a made-up space between hanzi is dropped).
        generated = char.isspace() and bool(is_generated(handle, i))
        left, top, right, bottom = shown(rect.left, rect.bottom, rect.right, rect.top)
        yield (char, left, top, right, bottom, generated)


def _group_chars(chars: Iterable[Char]) -> list[Line]:
    """Group characters (in drawing order) into lines: a new line where the baseline moves
    or a wide gap opens (the next column, the next table cell)."""
    lines: list[Line] = []
    text: list[str] = []
    x0 = x1 = top = bottom = size = 0.0

    def close() -> None:
        joined = "".join(text).strip()
        if joined:
            lines.append(Line(joined, x0, top, x1, bottom, size))
        text.clear()

    for char, left, c_top, right, c_bottom, generated in chars:
        # Kangxi radicals, CJK radical supplements and compatibility ideographs (U+2E80-2FDF,
        # U+F900-FAFF) look like common hanzi, and ToUnicode maps (and cmap reverse lookups)
        # often give them instead (`⽇` U+2F47 for `日`): search would never match them, so
        # NFKC folds them to the hanzi below.
        if char == "\n":
            close()
            continue
        if char.isspace():
            # PDFium makes up spaces where it sees a gap; between hanzi they are not words.
            if text and text[-1] != " " and not (generated and _CJK.match(text[-1])):
                text.append(" ")
            continue
        c_size = c_bottom - c_top
        if c_size <= 0:
            continue
        if "\u2e80" <= char <= "\u2fdf" or "\uf900" <= char <= "\ufaff":
            char = unicodedata.normalize("NFKC", char)
        if text:
            big = size if size > c_size else c_size
            small = c_size if size > c_size else size
            gap = left - x1
            if (
                abs(c_top + c_bottom - top - bottom) > small  # middles over half a line apart
                or gap > 2.0 * big
                or gap < -0.5 * big
            ):
                close()
        if not text:
            x0, top, bottom, size = left, c_top, c_bottom, c_size
        else:
            if c_top < top:
                top = c_top
            if c_bottom > bottom:
                bottom = c_bottom
            if c_size > size:
                size = c_size
        text.append(char)
        x1 = right
    close()
    return lines


class PdfminerReader:
    """pdfminer.six over the same file, opened on first need: it maps the glyphs of an
    embedded TrueType font to Unicode through the font's own cmap, so it reads CID fonts
    whose ToUnicode map is missing, where PDFium (and pypdf) return glyph ids."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pages: list[Any] | None = None
        self.interpreter: Any = None
        self.device: Any = None

    def lines(self, index: int, height: float) -> list[Line]:
        try:
            return self._lines(index, height)
        except Exception:
            return []  # pdfminer cannot read this page either: OCR is next

    def _lines(self, index: int, height: float) -> list[Line]:
        from pdfminer.converter import PDFPageAggregator
        from pdfminer.layout import LTChar, LTContainer
        from pdfminer.pdfdocument import PDFDocument
        from pdfminer.pdfinterp import PDFPageInterpreter, PDFResourceManager
        from pdfminer.pdfpage import PDFPage
        from pdfminer.pdfparser import PDFParser

        if self.pages is None:
            # pdfminer logs a warning for every font subset without a bounding box
            # (Chromium's): noise to anyone reading the service's log.
            logging.getLogger("pdfminer").setLevel(logging.ERROR)
            document = PDFDocument(PDFParser(io.BytesIO(self.data)))
            self.pages = list(PDFPage.create_pages(document))
            manager = PDFResourceManager()
            self.device = PDFPageAggregator(manager, laparams=None)
            self.interpreter = PDFPageInterpreter(manager, self.device)
        if index >= len(self.pages):
            return []
        self.interpreter.process_page(self.pages[index])
        bottom_edge = float(self.pages[index].mediabox[1])

        def chars(item: Any) -> Iterator[Char]:
            for child in item:
                if isinstance(child, LTChar):
                    text = child.get_text()
                    text = "\ufffd" if text.startswith("(cid:") else text
                    y0, y1 = child.y0 - bottom_edge, child.y1 - bottom_edge
                    yield (text, child.x0, height - y1, child.x1, height - y0, False)
                elif isinstance(child, LTContainer):
                    yield from chars(child)

        return _group_chars(chars(self.device.get_result()))
