"""Ruled tables in a PDF's text layer, found from the rules drawn around their cells (PDFium).

A table's cells are bounded by thin lines or filled bars (what Chromium, Word and LaTeX draw)
or by stroked boxes. The rules that touch one another form a table; their distinct x and y
positions are the column and row edges. A character belongs to the cell its middle falls in;
a column edge missing from a row (no rule there) merges the cell with the one on its left
(a header cell over two columns). The rows are written as the XLSX loader writes them
(`列名: 值；列名: 值`, table.py) so that a passage cut from a row keeps its meaning; the
text layer's own reading would run the cells of a row together (`螺丝M3 12元`).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Any

from rag.loaders.pdf_frame import PageFrame

_THIN = 3.0  # points: a rule is at most this thick
_MIN_LENGTH = 5.0  # and at least this long
_SNAP = 2.0  # edges closer than this are one edge


@dataclass(frozen=True)
class _Rule:
    x0: float
    top: float
    x1: float
    bottom: float

    @property
    def horizontal(self) -> bool:
        return self.bottom - self.top <= _THIN

    def touches(self, other: _Rule) -> bool:
        return (
            self.x0 - _SNAP <= other.x1
            and other.x0 - _SNAP <= self.x1
            and self.top - _SNAP <= other.bottom
            and other.top - _SNAP <= self.bottom
        )


@dataclass
class Grid:
    """One ruled table: column edges `xs` and row edges `ys` (top-down), left to right."""

    xs: list[float]
    ys: list[float]
    verticals: list[_Rule]
    cells: dict[tuple[int, int], list[Any]] = field(default_factory=dict)  # (row, col) -> chars

    def contains(self, x: float, y: float) -> bool:
        return self.xs[0] < x < self.xs[-1] and self.ys[0] < y < self.ys[-1]

    def cell_of(self, x: float, y: float) -> tuple[int, int]:
        row = max(i for i, edge in enumerate(self.ys[:-1]) if edge <= y)
        col = max(i for i, edge in enumerate(self.xs[:-1]) if edge <= x)
        return row, col

    def merged(self, row: int, col: int) -> bool:
        """Whether cell (row, col) is covered by the cell on its left: no rule between."""
        if col == 0:
            return False
        middle = (self.ys[row] + self.ys[row + 1]) / 2
        edge = self.xs[col]
        return not any(
            abs((rule.x0 + rule.x1) / 2 - edge) <= _SNAP and rule.top <= middle <= rule.bottom
            for rule in self.verticals
        )


def find_tables(page: Any, frame: PageFrame) -> list[Grid]:
    """The ruled tables of a page (at least two rows and two columns each), as shown."""
    import pypdfium2.raw as raw

    rules: list[_Rule] = []
    fill = ctypes.c_int()
    stroke = ctypes.c_int()
    for obj in page.get_objects(filter=(raw.FPDF_PAGEOBJ_PATH,), max_depth=2):
        box = _Rule(*frame.box(*obj.get_bounds()))
        w, h = box.x1 - box.x0, box.bottom - box.top
        if (w <= _THIN and h >= _MIN_LENGTH) or (h <= _THIN and w >= _MIN_LENGTH):
            rules.append(box)
            continue
        if w < _MIN_LENGTH or h < _MIN_LENGTH:
            continue
        raw.FPDFPath_GetDrawMode(obj.raw, ctypes.byref(fill), ctypes.byref(stroke))
        if stroke.value and fill.value == raw.FPDF_FILLMODE_NONE:
            # A stroked box (a cell drawn as a rectangle): its four sides are rules.
            x0, t, x1, b = box.x0, box.top, box.x1, box.bottom
            rules += [_Rule(x0, t, x1, t), _Rule(x0, b, x1, b)]
            rules += [_Rule(x0, t, x0, b), _Rule(x1, t, x1, b)]
        if len(rules) > 1500:
            return []  # a drawing, not a table: not worth the quadratic grouping below
    grids = []
    for group in _touching(rules):
        ys = _edges([(r.top + r.bottom) / 2 for r in group if r.horizontal])
        verticals = [r for r in group if not r.horizontal]
        xs = _edges([(r.x0 + r.x1) / 2 for r in verticals])
        if len(xs) >= 3 and len(ys) >= 3:
            grids.append(Grid(xs, ys, verticals))
    return grids


def _touching(rules: list[_Rule]) -> list[list[_Rule]]:
    """Group rules into sets that touch one another (union-find)."""
    parent = list(range(len(rules)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(rules):
        for j in range(i + 1, len(rules)):
            if a.touches(rules[j]):
                parent[root(i)] = root(j)
    groups: dict[int, list[_Rule]] = {}
    for i, rule in enumerate(rules):
        groups.setdefault(root(i), []).append(rule)
    return list(groups.values())


def _edges(positions: list[float]) -> list[float]:
    edges: list[float] = []
    for x in sorted(positions):
        if not edges or x - edges[-1] > _SNAP:
            edges.append(x)
    return edges
