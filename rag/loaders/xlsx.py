"""Excel workbooks and CSV files: each row one block, written with its column headers.

A row reads `列名: 值；列名: 值` (only its non-empty cells), so that a passage cut from it keeps
its meaning: "价格: 12" alone says nothing, "产品: 螺丝；价格: 12" does. The header is the first
non-empty row of a sheet (a title of one value above a row of several is written as a block and
the header is the row under it); header cells merged across columns name every column they
cover, and a second header row under a merged cell is joined to it (`成绩-语文`). Cells merged
down the rows of the body repeat their value in every row. Each sheet starts a page of the
extraction text (see layout.py) and its name is the blocks' `sheet`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.loaders.archive import open_package
from rag.loaders.base import Extraction, LoadError, LoadOptions, NoTextError
from rag.loaders.decode import decode
from rag.loaders.layout import TextBuilder
from rag.loaders.table import header_names, row_text

_MERGE = re.compile(rb'<(?:\w+:)?mergeCell\s+ref="([A-Z]+)(\d+):([A-Z]+)(\d+)"')
_MAX_MERGES = 20_000
# A formula cell with no cached value: the formula's end, an empty or no `<v>`, the cell's end.
# Excel always saves the value; files written by programs (openpyxl, pandas) do not.
_UNVALUED_FORMULA = re.compile(
    rb"(?:</(?:\w+:)?f>|<(?:\w+:)?f(?:\s[^>]*)?/>)\s*"
    rb"(?:<(?:\w+:)?v\s*/>|<(?:\w+:)?v>\s*</(?:\w+:)?v>)?\s*</(?:\w+:)?c>"
)
_CHUNK = 1 << 20
# Excel's first line naming a CSV file's delimiter: `sep=;`.
_SEP_LINE = re.compile(r"\Asep=([^\r\n])[ \t]*\r?(?:\n|\Z)", re.IGNORECASE)


@dataclass
class _Sheet:
    """The state of one sheet while its rows stream by."""

    name: str | None
    merges: list[tuple[int, int, int, int]] = field(default_factory=list)  # r1, c1, r2, c2
    unvalued: int = 0  # formula cells with no cached value: read as empty
    header: list[str] | None = None
    header_rows: list[list[str]] = field(default_factory=list)
    header_depth: int = 1
    anchors: dict[tuple[int, int], str] = field(default_factory=dict)  # merged body values
    pending: list[tuple[int, int, int, int]] = field(default_factory=list)  # not yet reached
    active: list[tuple[int, int, int, int]] = field(default_factory=list)  # covering this row

    def __post_init__(self) -> None:
        # Popped from the end: last row first.
        self.pending = sorted(self.merges, reverse=True)


def _column_index(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ch - 64
    return n - 1


def cell_text(value: Any) -> str:
    """A cell's value as a reader would write it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="minutes" if value.second == 0 else "seconds")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        # A duration ([h]:mm) in hours as Excel shows it, 26:30; not Python's "1 day, 2:30:00".
        seconds = round(abs(value.total_seconds()))
        minutes, second = divmod(seconds, 60)
        hours, minute = divmod(minutes, 60)
        sign = "-" if value < dt.timedelta(0) else ""
        return f"{sign}{hours}:{minute:02d}" + (f":{second:02d}" if second else "")
    return str(value).strip()


_FORMAT_LITERALS = re.compile(r'"[^"]*"|\\.|\[[^\]]*\]')
_DECIMALS = re.compile(r"\.([0#?]+)")
# Hours and seconds: a date format holding neither shows no time ("m" is month or minute).
_TIME_CODES = re.compile(r"[hHsS]")
_DATE_CODES = re.compile(r"[yYdD]")


def shows_date(number_format: str) -> bool:
    """Whether a number format writes its number as a date (it holds a year or day code)."""
    return bool(_DATE_CODES.search(_FORMAT_LITERALS.sub("", number_format).split(";")[0]))


def shown_value(value: Any, number_format: str | None) -> Any:
    """A cell's value as its number format shows it, where the format changes its meaning.

    A percentage is stored as a fraction: 15.3% is 0.153, and written as the bare number a
    row would say `增长率: 0.153`. A date is a day number, read as a datetime: a format with
    no hours or seconds shows the date alone (not `2024-03-01 00:00`). Other formats
    (decimals, thousands separators, currency) only dress the number and are left to
    `cell_text`.
    """
    if not number_format or isinstance(value, bool):
        return value
    # The first section (positive numbers), without quoted text, escapes and [colour] codes.
    section = _FORMAT_LITERALS.sub("", number_format).split(";")[0]
    if isinstance(value, dt.datetime):
        return value if _TIME_CODES.search(section) else value.date()
    if not isinstance(value, (int, float)):
        return value
    if "%" not in section:
        return value
    decimals = _DECIMALS.search(section)
    return f"{value * 100:.{len(decimals.group(1)) if decimals else 0}f}%"


class _RowWriter:
    """Turns the rows of each sheet into blocks, stopping at `max_rows` in all."""

    def __init__(self, options: LoadOptions) -> None:
        self.builder = TextBuilder()
        self.max_rows = options.max_rows
        self.rows_read = 0
        self.notes: list[str] = []

    @property
    def full(self) -> bool:
        return self.rows_read >= self.max_rows

    def sheet(self, sheet: _Sheet, rows: Iterable[Sequence[Any]], total: int | None) -> None:
        """Write the rows of one sheet; `rows` yields each row's values from column A."""
        self.builder.new_page()
        if sheet.unvalued:
            # data_only reads cached values and nothing computes formulas: say why cells
            # that show a value in Excel (totals, say) are missing.
            self.notes.append(
                f"sheet {sheet.name}: {sheet.unvalued} formula cells have no saved value "
                "(written by a program, never saved in Excel) and were read as empty"
            )
        pending: list[tuple[int, list[str]]] = []  # header candidates, with their row index
        # A row of one value (a title, "2024年销售统计表", often merged across the table) held
        # until the next row says whether it is the sheet's title or a one-column header.
        title: tuple[int, list[str]] | None = None

        def take_header(r: int, cells: list[str]) -> None:
            """Take a row into the header, complete once it holds `header_depth` rows."""
            pending.append((r, cells))
            if len(pending) == 1:
                sheet.header_depth = self._header_depth(sheet, r, cells)
            if len(pending) >= sheet.header_depth:
                width = max(len(row) for _, row in pending)
                sheet.header = header_names([row for _, row in pending], width)

        for r, values in enumerate(rows):
            if self.full:
                self._truncated(sheet, r, total)
                return
            cells = [cell_text(v) for v in values]
            cells = self._fill_merged(sheet, r, cells)
            while cells and not cells[-1]:
                cells.pop()
            if sheet.header is None:
                if not cells:
                    continue
                if not pending and title is None and len({c for c in cells if c}) == 1:
                    title = (r, cells)
                    continue
                if title is not None:
                    if sum(1 for c in cells if c) > 1:  # a title above the column names
                        self.builder.add(next(c for c in title[1] if c), sheet=sheet.name)
                    else:
                        take_header(*title)
                    title = None
                if sheet.header is None:  # else the title row was the whole header
                    take_header(r, cells)
                    continue
            if not cells:
                continue
            self.rows_read += 1
            self.builder.add(row_text(sheet.header, cells), sheet=sheet.name)
        if title is not None:  # a sheet of that one value
            self.builder.add(next(c for c in title[1] if c), sheet=sheet.name)
        elif sheet.header is None and pending:
            # A sheet of header rows only (or a single row): write them as they are.
            for _, cells in pending:
                self.builder.add("；".join(c for c in cells if c), sheet=sheet.name)

    def _truncated(self, sheet: _Sheet, row: int, total: int | None) -> None:
        where = f"sheet {sheet.name}" if sheet.name else "the file"
        of = f" of {total}" if total else ""
        self.notes.append(
            f"row limit: read {self.max_rows} rows (RAG_MAX_ROWS); {where} stopped at row "
            f"{row + 1}{of}, the rest not read"
        )

    @staticmethod
    def _fill_merged(sheet: _Sheet, r: int, cells: list[str]) -> list[str]:
        # A merged range keeps its value in the top-left cell only: give it to every cell.
        # Ranges are sorted by first row; those still open stay in `active`.
        while sheet.pending and sheet.pending[-1][0] <= r:
            sheet.active.append(sheet.pending.pop())
        if not sheet.active:
            return cells
        sheet.active = [m for m in sheet.active if m[2] >= r]
        for r1, c1, _, c2 in sheet.active:
            if r == r1:
                sheet.anchors[(r1, c1)] = cells[c1] if c1 < len(cells) else ""
            value = sheet.anchors.get((r1, c1), "")
            if value:
                if len(cells) <= c2:
                    cells.extend([""] * (c2 + 1 - len(cells)))
                for c in range(c1, c2 + 1):
                    cells[c] = value
        return cells

    @staticmethod
    def _header_depth(sheet: _Sheet, r: int, cells: list[str]) -> int:
        # Header cells merged down over two rows mean a two-level header; so does a cell merged
        # across columns (its sub-headers are on the next row).
        depth = 1
        for r1, c1, r2, c2 in sheet.merges:
            if r1 == r:
                depth = max(depth, min(r2 - r1 + 1, 3))
                if c2 > c1:
                    depth = max(depth, 2)
        return depth


def _scan_sheet(package: zipfile.ZipFile, part: str) -> tuple[list[tuple[int, int, int, int]], int]:
    """The merged ranges of one sheet part (0-based) and how many of its formula cells have
    no cached value, found by scanning its XML as it inflates."""
    merges: list[tuple[int, int, int, int]] = []
    unvalued = 0
    try:
        stream = package.open(part)
    except KeyError:
        return merges, unvalued
    tail = b""
    with stream:
        while len(merges) < _MAX_MERGES:
            chunk = stream.read(_CHUNK)
            if not chunk:
                break
            buffer = tail + chunk
            last = 0
            for m in _MERGE.finditer(buffer):
                c1, r1, c2, r2 = m.groups()
                merges.append((int(r1) - 1, _column_index(c1), int(r2) - 1, _column_index(c2)))
                last = m.end()
            for m in _UNVALUED_FORMULA.finditer(buffer):
                unvalued += 1
                last = max(last, m.end())
            # Keep the end of the buffer: a tag may straddle two chunks (what was matched is
            # left out, so nothing is counted twice).
            tail = buffer[max(last, len(buffer) - 200) :]
    return merges, unvalued


# One sheet to write: its name and merged cells, its rows, and its row count if known.
SheetRows = tuple[_Sheet, Iterable[Sequence[Any]], int | None]


def write_workbook(
    path: Path,
    fmt: str,
    options: LoadOptions,
    names: Sequence[str],
    read: Callable[[int], SheetRows],
) -> Extraction:
    """Every sheet's rows as blocks (`read(i)` opens sheet i), `options.max_rows` in all.

    Shared by the `.xlsx` and `.xls` loaders: the row limit noted with the sheets it left
    unread, any failure of the parser inside a sheet reported as a damaged file.
    """
    writer = _RowWriter(options)
    try:
        for i in range(len(names)):
            if writer.full:
                writer.notes.append(f"row limit reached: sheets not read: {', '.join(names[i:])}")
                break
            writer.sheet(*read(i))
    except LoadError:
        raise
    except Exception as e:  # the parsers raise anything from KeyError to XML errors
        raise LoadError(path, f"damaged Excel file ({type(e).__name__}: {e})") from None
    if not writer.builder.block_count:
        raise NoTextError(path, "no text in the workbook (all sheets empty)")
    return writer.builder.build(fmt, fmt, writer.notes)


class XlsxLoader:
    """Excel `.xlsx` and macro-enabled `.xlsm` (read with openpyxl in read-only mode)."""

    format: str = "xlsx"
    extensions: tuple[str, ...] = (".xlsx", ".xlsm")

    def extract(self, path: Path, data: bytes, options: LoadOptions) -> Extraction:
        package = open_package(path, data, "Excel")
        try:
            import openpyxl
        except ImportError as e:  # pragma: no cover - a core dependency
            raise LoadError(path, "openpyxl is not installed") from e
        try:
            # read_only streams each sheet's XML; data_only reads the cached values of
            # formulas (never computes them); VBA is not even loaded (keep_vba=False).
            workbook = openpyxl.load_workbook(
                io.BytesIO(data), read_only=True, data_only=True, keep_links=False
            )
        except Exception as e:  # openpyxl raises anything from KeyError to XML errors
            raise LoadError(path, f"not a readable Excel file ({type(e).__name__}: {e})") from None
        try:
            sheets = list(workbook.worksheets)

            def read(i: int) -> SheetRows:
                worksheet = sheets[i]
                part = _sheet_part(workbook, worksheet)
                merges, unvalued = _scan_sheet(package, part) if part else ([], 0)
                sheet = _Sheet(worksheet.title, merges, unvalued)
                total = worksheet.max_row if worksheet.max_row and worksheet.max_row > 1 else None
                # The stored dimension can be wrong (some writers say A1); read every cell.
                worksheet.reset_dimensions()
                return sheet, _shown_rows(worksheet.iter_rows()), total

            return write_workbook(path, self.format, options, [ws.title for ws in sheets], read)
        finally:
            workbook.close()


def _shown_rows(rows: Iterable[Sequence[Any]]) -> Iterator[list[Any]]:
    """Each row's values, percentages as their number format shows them (`shown_value`)."""
    for row in rows:
        yield [shown_value(cell.value, getattr(cell, "number_format", None)) for cell in row]


def _sheet_part(workbook: Any, worksheet: Any) -> str | None:
    # openpyxl's read-only sheets keep the zip member they stream from.
    name = getattr(worksheet, "_worksheet_path", None) or getattr(worksheet, "_path", None)
    return str(name).lstrip("/") if name else None


class CsvLoader:
    """Comma- or tab-separated values: the first non-empty row is the header."""

    format: str = "csv"
    extensions: tuple[str, ...] = (".csv", ".tsv")

    def extract(self, path: Path, data: bytes, options: LoadOptions) -> Extraction:
        text, encoding = decode_csv(path, data)
        named = _SEP_LINE.match(text)
        if named:  # Excel's `sep=;` line names the delimiter; it is no row of the table
            delimiter = named.group(1)
        else:
            delimiter = "\t" if path.suffix.lower() == ".tsv" else _sniff_delimiter(text)
        writer = _RowWriter(options)
        try:
            writer.sheet(_Sheet(None), _csv_rows(text, delimiter, bool(named)), None)
        except csv.Error as e:
            raise LoadError(path, f"malformed CSV ({e})") from None
        if not writer.builder.block_count:
            raise NoTextError(path, "no rows in the CSV file")
        return writer.builder.build(encoding, self.format, writer.notes)


def _csv_rows(text: str, delimiter: str, sep_line: bool = False) -> Iterator[list[str]]:
    csv.field_size_limit(10 * 1024 * 1024)
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    if sep_line:
        next(rows, None)
        yield []  # an empty row in its place: the rows keep their numbers in the notes
    yield from rows


def _sniff_delimiter(text: str) -> str:
    sample = text[:20_000]
    try:
        return csv.Sniffer().sniff(sample, delimiters=",\t;|，").delimiter
    except csv.Error:
        return ","


def decode_csv(path: Path, data: bytes) -> tuple[str, str]:
    """Decode a CSV file with the text files' detector (`rag.loaders.decode`).

    Excel saves "CSV" in the system code page: GBK on simplified Chinese Windows, Big5 on
    traditional. Nearly every Big5 byte pair is also valid GB18030, so trying the codecs in
    turn read a Big5 file as mojibake; the detector picks the reading made of common hanzi,
    and also reads UTF-16 without a byte-order mark.
    """
    if not data:
        raise NoTextError(path, "empty file")
    try:
        return decode(data)
    except ValueError as e:
        raise LoadError(path, f"{e}, not CSV") from None
