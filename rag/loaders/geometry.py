"""Rebuild reading order and paragraphs from positioned lines (PDF text or OCR boxes).

Coordinates are top-down (y grows down the page), in any unit. A page's lines are split into
columns where a vertical gutter runs between them, read band by band (a heading across both
columns closes a band), each column top to bottom. Inside a column a new paragraph starts at
a vertical gap wider than the usual line pitch, a change of font size, an indented line, or
after a line that stops short of the column's right edge (Chinese text is justified, so only
a paragraph's last line ends early).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from statistics import median

_CJK_END = re.compile(r"[\u3000-\u30ff\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]\Z")
_SENTENCE_END = re.compile(r"[。！？!?.…:：][」』”’\")）)]*\Z")


@dataclass(frozen=True)
class Line:
    """One line of text on a page, with its box and the size of its characters."""

    text: str
    x0: float
    top: float
    x1: float
    bottom: float
    size: float  # character height (font size for PDF text, box height for OCR)
    confidence: float | None = None  # OCR confidence; None for a text layer
    table: bool = False  # a table row written as `列名: 值；…`: always a paragraph of its own

    @property
    def middle(self) -> float:
        return (self.top + self.bottom) / 2


def merge_rows(lines: list[Line]) -> list[Line]:
    """Join boxes standing on the same row and touching (OCR often splits a line in pieces)."""
    rows: list[list[Line]] = []
    for line in sorted(lines, key=lambda item: (item.middle, item.x0)):
        for row in rows:
            last = row[-1]
            same_row = abs(line.middle - last.middle) < 0.5 * min(line.size, last.size)
            gap = line.x0 - max(item.x1 for item in row)
            if same_row and -0.5 * line.size < gap < 1.5 * max(line.size, last.size):
                row.append(line)
                break
        else:
            rows.append([line])
    merged = []
    for row in rows:
        row.sort(key=lambda item: item.x0)
        if len(row) == 1:
            merged.append(row[0])
            continue
        text = row[0].text
        for prev, cur in itertools.pairwise(row):
            # A space between Latin words, none between Chinese characters.
            cjk = _CJK_END.search(prev.text) or _CJK_END.search(cur.text[:1])
            text += ("" if cjk else " ") + cur.text
        confidences = [item.confidence for item in row if item.confidence is not None]
        merged.append(
            Line(
                text,
                min(item.x0 for item in row),
                min(item.top for item in row),
                max(item.x1 for item in row),
                max(item.bottom for item in row),
                median(item.size for item in row),
                sum(confidences) / len(confidences) if confidences else None,
            )
        )
    return merged


def reading_order(lines: list[Line], depth: int = 0) -> list[list[Line]]:
    """Group `lines` into columns in reading order: a list of top-to-bottom line runs."""
    ordered = sorted(lines, key=lambda item: (item.top, item.x0))
    gutter = _gutter(ordered) if depth < 2 else None
    if gutter is None:
        return [ordered] if ordered else []
    columns: list[list[Line]] = []
    band_left: list[Line] = []
    band_right: list[Line] = []
    spanning: list[Line] = []  # consecutive lines across the gutter (a title, an abstract)

    def close_band() -> None:
        for side in (band_left, band_right):
            if side:
                columns.extend(reading_order(list(side), depth + 1))
        band_left.clear()
        band_right.clear()

    for line in ordered:
        if line.x0 < gutter < line.x1:
            close_band()
            spanning.append(line)
            continue
        if spanning:
            columns.append(list(spanning))
            spanning.clear()
        (band_left if line.x1 <= gutter else band_right).append(line)
    close_band()
    if spanning:
        columns.append(spanning)
    return columns


def _gutter(lines: list[Line]) -> float | None:
    """An x between two columns that (almost) no line crosses, or None for one column."""
    if len(lines) < 6:
        return None
    left = min(line.x0 for line in lines)
    right = max(line.x1 for line in lines)
    width = right - left
    if width <= 0:
        return None
    # Columns are found among the lines narrower than most of the page; titles and full-width
    # paragraphs across the gutter only separate bands of columns.
    narrow = [line for line in lines if line.x1 - line.x0 < 0.55 * width]
    if len(narrow) < 6:
        return None
    best: tuple[int, float] | None = None
    steps = 60
    for i in range(int(steps * 0.25), int(steps * 0.75) + 1):
        x = left + width * i / steps
        crossing = sum(1 for line in narrow if line.x0 < x < line.x1)
        if best is None or crossing < best[0]:
            best = (crossing, x)
    assert best is not None
    crossing, x = best
    on_left = [line for line in narrow if line.x1 <= x]
    on_right = [line for line in narrow if line.x0 >= x]
    # A real second column holds several lines that are not just table cells or labels, and
    # the lines of each column start at one left edge.
    if crossing > 0.25 * len(narrow) or not (_aligned(on_left) and _aligned(on_right)):
        return None
    if sum(len(line.text) for line in on_right) < 0.2 * sum(len(line.text) for line in narrow):
        return None
    if sum(len(line.text) for line in on_left) < 0.2 * sum(len(line.text) for line in narrow):
        return None
    # Between columns, not inside one: the nearest left edge of the right column and the
    # nearest right edge of the left column bound the gutter; stand in its middle.
    return (max(line.x1 for line in on_left) + min(line.x0 for line in on_right)) / 2


def _aligned(lines: list[Line]) -> bool:
    if len(lines) < 4:
        return False
    edge = median(line.x0 for line in lines)
    size = median(line.size for line in lines)
    return sum(1 for line in lines if abs(line.x0 - edge) < 2 * size) >= 0.6 * len(lines)


def column_edges(column: list[Line]) -> tuple[float, float]:
    """The left edge of a column and its right edge (where most full lines end)."""
    rights = sorted(line.x1 for line in column)
    return min(line.x0 for line in column), rights[int(0.9 * (len(rights) - 1))]


def paragraphs(column: list[Line], indents: bool = False) -> list[list[Line]]:
    """Split one column's lines (top to bottom) into paragraphs.

    `indents`: the document marks its paragraphs by first-line indents (`uses_indents`), so
    a line that stops short mid-sentence before a line that is not indented (pushed short by
    a long Latin word, or by a character that may not start a line) ends no paragraph.
    """
    if not column:
        return []
    col_left, col_right = column_edges(column)
    pitches = [
        cur.top - prev.top
        for prev, cur in itertools.pairwise(column)
        if 0 < cur.top - prev.top < 3 * max(prev.size, cur.size)
    ]
    pitch = median(pitches) if pitches else None
    groups: list[list[Line]] = [[column[0]]]
    for prev, cur in itertools.pairwise(column):
        if _breaks(prev, cur, col_left, col_right, pitch, indents):
            groups.append([cur])
        else:
            groups[-1].append(cur)
    return groups


def is_indented(line: Line, col_left: float) -> bool:
    """Whether `line` starts right of its column's edge (a first-line indent)."""
    return line.x0 - col_left > 1.0 * line.size


def runs_on(
    last: Line,
    last_edges: tuple[float, float],
    first: Line,
    first_edges: tuple[float, float],
    indents: bool,
) -> bool:
    """Whether a column's first line `first` continues the paragraph that ended the column
    before (on the same page or the page before) with `last`.

    It does when `last` runs to its column's right edge (a paragraph's last line stops short),
    `first` is not indented and both are set alike (size, text layer or OCR). When paragraphs
    of the document are not marked by indents (`indents` false), a sentence-final `last`
    that happens to fill the line is read as the end of its paragraph.
    """
    if (last.confidence is None) != (first.confidence is None) or last.table or first.table:
        return False
    # Stricter than inside a column: the same type size, and a last line that truly runs to
    # the edge (a column or page may end on a paragraph's last line by chance).
    if abs(last.size - first.size) > 0.1 * max(last.size, first.size):
        return False
    left, right = last_edges
    short = 2.0 * last.size if _CJK_END.search(last.text) else 0.1 * (right - left)
    if right - last.x1 > short or is_indented(first, first_edges[0]):
        return False
    return indents or not _SENTENCE_END.search(last.text)


def uses_indents(columns: list[list[Line]]) -> bool:
    """Whether most paragraphs of these columns (of more than one line) start indented."""
    starts = [
        is_indented(group[0], column_edges(column)[0])
        for column in columns
        for group in paragraphs(column)[1:]
        if len(group) > 1
    ]
    return bool(starts) and sum(starts) >= 0.5 * len(starts)


def _breaks(
    prev: Line,
    cur: Line,
    col_left: float,
    col_right: float,
    pitch: float | None,
    indents: bool = False,
) -> bool:
    size = max(prev.size, cur.size)
    if (prev.confidence is None) != (cur.confidence is None):
        return True  # OCR'd text never joins a text-layer line
    if prev.table or cur.table:
        return True
    if abs(prev.size - cur.size) > 0.2 * size:
        return True  # a heading, a caption or a footnote
    step = cur.top - prev.top
    if step <= 0.3 * size:
        return False  # the same row, split in two boxes
    if step > (1.4 * pitch if pitch else 1.8 * size) and step > 1.3 * size:
        return True
    if is_indented(cur, col_left) and cur.x0 - prev.x0 > 0.8 * cur.size:
        return True  # first-line indent
    short = 2.0 * prev.size if _CJK_END.search(prev.text) else 0.25 * (col_right - col_left)
    if col_right - prev.x1 <= short:
        return False
    return not (
        indents
        and not is_indented(cur, col_left)
        and not _SENTENCE_END.search(prev.text)
        and prev.x1 - col_left > 0.5 * (col_right - col_left)
    )
