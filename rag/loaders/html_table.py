"""An HTML table's rows written as the other loaders write table rows: `列名: 值；列名: 值`.

A value alone ("5") cannot be cited with what it means; Word, PDF and Excel rows name each
value by its column (table.py), and so do HTML rows here. The text is the file itself, so
the words added (column names, `: `, `；`) map to the point where the value they introduce
starts: a row's block still spans its own row, on its own lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rag.loaders.table import assemble_row, column_letter, mapped_row
from rag.text.offsets import MappedText

_MAX_SPAN = 100  # a colspan/rowspan past this is a broken or hostile page, not a table


@dataclass
class Cell:
    """One `<td>`/`<th>`: its paragraphs (blocks) as the parser cut them."""

    header: bool
    blocks: list[MappedText] = field(default_factory=list)
    covered: bool = False  # a column or row of a cell spanning from the left or above

    def value(self) -> MappedText | None:
        texts = [b.strip() for b in self.blocks]
        texts = [t for t in texts if t.text]
        return texts[0] if len(texts) == 1 else None


@dataclass
class Table:
    """A table being parsed: its rows, and every block in it in order, should it be layout."""

    rows: list[list[Cell]] = field(default_factory=list)
    loose: list[MappedText] = field(default_factory=list)  # caption, text outside cells
    flat: list[MappedText] = field(default_factory=list)
    layout: bool = False  # it holds another table
    cell: Cell | None = None
    _below: dict[int, int] = field(default_factory=dict)  # column -> rows a rowspan covers

    def start_row(self) -> None:
        self._cover_rest()
        self.rows.append([])
        self.cell = None

    def start_cell(self, header: bool, colspan: str | None, rowspan: str | None) -> None:
        if not self.rows:
            self.rows.append([])
        row = self.rows[-1]
        self._cover_from_above(row)
        self.cell = Cell(header)
        first = len(row)
        row.append(self.cell)
        for _ in range(_span(colspan) - 1):
            row.append(Cell(header, covered=True))
        for column in range(first, len(row)):
            if _span(rowspan) > 1:
                self._below[column] = _span(rowspan) - 1

    def add(self, block: MappedText) -> None:
        self.flat.append(block)
        if self.cell is not None:
            self.cell.blocks.append(block)
        else:
            self.loose.append(block)

    def blocks(self) -> list[MappedText]:
        """The table's blocks: its rows written with their column names, or, for a layout
        table (a cell of several paragraphs, a table in a cell), its paragraphs as they were."""
        cells = [cell for row in self.rows for cell in row if not cell.covered]
        if self.layout or any(sum(1 for b in c.blocks if b.strip().text) > 1 for c in cells):
            return self.flat
        return self.loose + _row_blocks(self.rows)

    def _cover_from_above(self, row: list[Cell]) -> None:
        while self._below.get(len(row), 0) > 0:
            self._below[len(row)] -= 1
            row.append(Cell(False, covered=True))

    def _cover_rest(self) -> None:
        """Count the spans of the row just ended that reached past its last cell."""
        if self.rows:
            width = len(self.rows[-1])
            for column in list(self._below):
                if column >= width and self._below[column] > 0:
                    self._below[column] -= 1


def _span(value: str | None) -> int:
    try:
        return min(max(int(value or "1"), 1), _MAX_SPAN)
    except ValueError:
        return 1


def _row_blocks(rows: list[list[Cell]]) -> list[MappedText]:
    values = [[None if c.covered else c.value() for c in row] for row in rows]
    keep = [i for i, row in enumerate(values) if any(row)]
    rows = [rows[i] for i in keep]
    values = [values[i] for i in keep]
    if not rows:
        return []
    width = max(len(row) for row in rows)
    if len(rows) == 1 or width == 1:
        return [mapped_row([v for v in row if v], None) for row in values]
    heads = 0
    while heads < len(rows) and all(c.header for c in rows[heads] if not c.covered):
        heads += 1
    if heads == 0 and all(row[0].header for row in rows):
        # Row headers down the first column (姓名 | 张三): each row is named by its own.
        out = []
        for row in values:
            name, rest = row[0], [v for v in row[1:] if v]
            if name is None or not rest:
                out.append(mapped_row([v for v in row if v], None))
            else:
                out.append(assemble_row([name, ": ", *_separated(rest)]))
        return out
    heads = heads or 1
    if heads == len(rows):
        return [mapped_row([v for v in row if v], None) for row in values]
    names = _header_names(values[:heads], width)
    return [mapped_row(row, names) for row in values[heads:] if any(row)]


def _header_names(rows: list[list[MappedText | None]], width: int) -> list[str]:
    """One name per column: `成绩-语文` under a `成绩` spanning two columns."""
    names = []
    for column in range(width):
        parts: list[str] = []
        for row in rows:
            # A covered header cell is named by the cell spanning it from the left.
            c = column
            while c > 0 and c < len(row) and row[c] is None:
                c -= 1
            cell = row[c] if c < len(row) else None
            if cell is not None and cell.text not in parts:
                parts.append(cell.text)
        names.append("-".join(parts) if parts else column_letter(column))
    return names


def _separated(values: list[MappedText]) -> list[MappedText | str]:
    parts: list[MappedText | str] = []
    for value in values:
        if parts:
            parts.append("；")
        parts.append(value)
    return parts
