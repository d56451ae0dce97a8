"""Write a table row as one paragraph that names each value by its column header."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rag.text.offsets import MappedText


def column_letter(index: int) -> str:
    """`0` -> `A`, `27` -> `AB` (a column with no header is named by its letter)."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def row_text(header: Sequence[str], cells: Sequence[str]) -> str:
    """`列名: 值；列名: 值` over the row's non-empty cells."""
    parts = []
    for i, value in enumerate(cells):
        if not value:
            continue
        name = header[i] if i < len(header) and header[i] else column_letter(i)
        # A header that is the value itself (a label column merged into the header) says
        # nothing more: write the value alone.
        parts.append(value if name == value else f"{name}: {value}")
    return "；".join(parts)


def header_names(rows: Sequence[Sequence[str]], width: int) -> list[str]:
    """One name per column from one or more header rows: `成绩-语文` under a merged `成绩`."""
    names = []
    for c in range(width):
        parts: list[str] = []
        for row in rows:
            value = row[c] if c < len(row) else ""
            if value and value not in parts:
                parts.append(value)
        names.append("-".join(parts) if parts else column_letter(c))
    return names


def table_rows(rows: Sequence[Sequence[str | None]]) -> list[str]:
    """The paragraphs of a small table (Word, PowerPoint): the first row names the columns.

    `None` marks a cell covered by the merged cell to its left: in the header it takes that
    cell's name (both columns stand under it), in the body it is empty. A table of one row,
    or of one column, has no header to speak of: each row is written with its cells
    separated by `；`.
    """
    rows = [list(row) for row in rows if any(row)]
    if not rows:
        return []
    width = max(len(row) for row in rows)
    if len(rows) == 1 or width == 1:
        return ["；".join(cell for cell in row if cell) for row in rows]
    header_row: list[str] = []
    for cell in rows[0]:
        header_row.append(header_row[-1] if cell is None and header_row else cell or "")
    header = header_names([header_row], width)
    return [row_text(header, [cell or "" for cell in row]) for row in rows[1:]]


def mapped_row(row: Sequence[MappedText | None], names: Sequence[str] | None) -> MappedText:
    """`row_text` for text that maps into a source (HTML, markdown): with no names, the
    values joined by `；`; the words added map as `assemble_row` says."""
    parts: list[MappedText | str] = []
    for i, value in enumerate(row):
        if value is None:
            continue
        if parts:
            parts.append("；")
        # A header that is the value itself says nothing more: the value alone (as row_text).
        name = (names[i] if i < len(names) and names[i] else column_letter(i)) if names else None
        if name is not None and name != value.text:
            parts.extend([name, ": "])
        parts.append(value)
    return assemble_row(parts)


def assemble_row(parts: Sequence[MappedText | str]) -> MappedText:
    """The parts joined; added words map to the point where the next value starts (after
    the last value: where it ends), so a row's block covers that row's source only."""
    points = [0] * len(parts)
    point: int | None = None
    for i in range(len(parts) - 1, -1, -1):  # backwards: each word's next value
        part = parts[i]
        if isinstance(part, MappedText):
            point = int(part.starts[0]) if len(part) else point
        elif point is None:  # words after the last value: where that value ends
            point = next(
                (
                    int(p.ends[-1])
                    for p in reversed(parts[:i])
                    if isinstance(p, MappedText) and len(p)
                ),
                0,
            )
        points[i] = point or 0
    pieces: list[MappedText] = []
    for part, at in zip(parts, points, strict=True):
        if isinstance(part, MappedText):
            pieces.append(part)
        else:
            spot = np.full(len(part), at, dtype=np.int64)
            pieces.append(MappedText(part, spot, spot.copy()))
    return MappedText.concat(pieces)
