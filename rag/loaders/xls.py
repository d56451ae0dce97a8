"""Legacy Excel `.xls` (BIFF, Excel 97-2003) read with xlrd: rows written as the XLSX loader's.

xlrd (BSD, pure Python, maintained for exactly this format since 2.0) parses the file in
memory; a BIFF sheet holds at most 65,536 rows, so memory stays bounded by the byte limit
already applied to every file. Nothing in the file runs: macros are an opaque stream to it.
Cells merged across a header name every column they cover, as in `.xlsx` (xlsx.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag.loaders.base import Extraction, LoadError, LoadOptions
from rag.loaders.xlsx import SheetRows, _Sheet, shown_value, write_workbook

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


class XlsLoader:
    """Excel 97-2003 workbooks."""

    format: str = "xls"
    extensions: tuple[str, ...] = (".xls",)

    def extract(self, path: Path, data: bytes, options: LoadOptions) -> Extraction:
        import xlrd

        if not data.startswith(_OLE_MAGIC):
            if data.startswith(b"PK"):
                raise LoadError(path, "an .xlsx workbook named .xls; rename it to .xlsx")
            raise LoadError(path, "not an Excel 97-2003 file (truncated or damaged)")
        try:
            # formatting_info: needed for the merged ranges; on_demand: sheets parsed one by one.
            book = xlrd.open_workbook(
                file_contents=data, formatting_info=True, on_demand=True, logfile=_Quiet()
            )
        except Exception as e:  # xlrd raises XLRDError, struct errors, IndexError, ...
            message = str(e)
            if "encrypted" in message.lower():
                raise LoadError(path, "password-protected Excel file (encrypted)") from None
            raise LoadError(
                path, f"not a readable Excel file ({message or type(e).__name__})"
            ) from None
        try:

            def read(i: int) -> SheetRows:
                if i:  # sheets are parsed one by one: let the last one go first
                    book.unload_sheet(i - 1)
                sheet = book.sheet_by_index(i)
                merges = [(r1, c1, r2 - 1, c2 - 1) for r1, r2, c1, c2 in sheet.merged_cells]
                return _Sheet(sheet.name, merges), _rows(book, sheet), sheet.nrows or None

            return write_workbook(path, self.format, options, book.sheet_names(), read)
        finally:
            book.release_resources()


def _rows(book: Any, sheet: Any) -> Iterator[list[Any]]:
    """Each row's values, dates as datetimes (the date alone where the format shows no
    time), booleans as bools (xlrd gives floats) and percentages as shown."""
    import xlrd

    for r in range(sheet.nrows):
        values: list[Any] = []
        for cell in sheet.row(r):
            if cell.ctype == xlrd.XL_CELL_DATE:
                try:
                    shown = xlrd.xldate_as_datetime(cell.value, book.datemode)
                    values.append(shown_value(shown, _number_format(book, cell)))
                except (ValueError, OverflowError, xlrd.xldate.XLDateError):
                    values.append(cell.value)
            elif cell.ctype == xlrd.XL_CELL_BOOLEAN:
                values.append(bool(cell.value))
            elif cell.ctype in (xlrd.XL_CELL_ERROR, xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
                values.append(None)
            else:
                values.append(shown_value(cell.value, _number_format(book, cell)))
        yield values


def _number_format(book: Any, cell: Any) -> str | None:
    try:
        return str(book.format_map[book.xf_list[cell.xf_index].format_key].format_str)
    except (IndexError, KeyError, AttributeError, TypeError):
        return None  # no formatting record for the cell: its value as stored


class _Quiet:
    """A log file for xlrd's warnings that drops them (they would go to stdout)."""

    def write(self, text: str) -> None:
        pass
