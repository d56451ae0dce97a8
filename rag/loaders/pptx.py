"""PowerPoint .pptx (and .pptm): each slide a page; title, then text in reading order, then notes.

Only the slide's own shapes are read: the placeholder text of layouts and masters ("Click to
add title") is not the author's, and the footer, date and slide number are page furniture.
Shapes are read top to bottom, left to right within a band, groups opened; a table row is one
block written with its column headers; a chart gives its title and a row per category
(`类别: 二月；销量: 20`); SmartArt gives the text of its nodes; pictures are OCR'd when OCR is
on; the speaker notes close the slide.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rag.loaders.archive import open_package
from rag.loaders.base import Extraction, LoadError, LoadOptions, NoTextError
from rag.loaders.docx import _Images
from rag.loaders.layout import TextBuilder, add_page_lines
from rag.loaders.table import row_text, table_rows
from rag.loaders.xlsx import cell_text, shown_value, shows_date

# Shapes whose tops differ by less than this share of the slide height stand on one row.
_ROW_BAND = 1 / 24
_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_P = "{http://schemas.openxmlformats.org/presentationml/2006/main}"
_DGM = "{http://schemas.openxmlformats.org/drawingml/2006/diagram}"
_C = "{http://schemas.openxmlformats.org/drawingml/2006/chart}"
_FURNITURE = frozenset({"ftr", "dt", "sldNum"})
_R_DATA = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}dm"


class PptxLoader:
    """PowerPoint presentations, read with python-pptx; macros are never run."""

    format: str = "pptx"
    extensions: tuple[str, ...] = (".pptx", ".pptm")

    def extract(self, path: Path, data: bytes, options: LoadOptions) -> Extraction:
        open_package(path, data, "PowerPoint")
        try:
            from pptx import Presentation
        except ImportError as e:  # pragma: no cover - a core dependency
            raise LoadError(path, "python-pptx is not installed") from e
        try:
            presentation = Presentation(io.BytesIO(data))
            slides = list(presentation.slides)
        except Exception as e:  # python-pptx raises KeyError, ValueError, XML errors...
            raise LoadError(
                path, f"not a readable PowerPoint file ({type(e).__name__}: {e})"
            ) from None
        notes: list[str] = []
        if len(slides) > options.max_pages:
            notes.append(
                f"page limit: read the first {options.max_pages} of {len(slides)} slides "
                "(RAG_MAX_PAGES)"
            )
        band = (presentation.slide_height or 6858000) * _ROW_BAND
        images = _Images(options.ocr == "auto")
        builder = TextBuilder()
        try:
            for number, slide in enumerate(slides[: options.max_pages], 1):
                builder.new_page()
                for shape in _reading_order(slide, band):
                    _add_shape(builder, shape, number, images)
                if slide.has_notes_slide:
                    frame = slide.notes_slide.notes_text_frame
                    for paragraph in frame.paragraphs if frame is not None else ():
                        builder.add(paragraph.text, page=number)
        except Exception as e:
            raise LoadError(path, f"damaged PowerPoint file ({type(e).__name__}: {e})") from None
        if not builder.block_count:
            raise NoTextError(path, "no text in the presentation")
        return builder.build("pptx", self.format, notes + sorted(set(images.notes)))


# Where a point of a shape's coordinates stands on the slide: (x, y) -> (x, y).
Place = Callable[[float, float], tuple[float, float]]


def _on_slide(x: float, y: float) -> tuple[float, float]:
    return x, y


def _flatten(shapes: Any, place: Place = _on_slide) -> Iterator[tuple[Any, float, float]]:
    """Every shape with its top and left on the slide, groups opened."""
    for shape in shapes:
        if hasattr(shape, "shapes"):  # a group
            yield from _flatten(shape.shapes, _group_place(shape, place))
        else:
            left, top = place(shape.left or 0, shape.top or 0)
            yield shape, top, left


def _group_place(group: Any, place: Place) -> Place:
    """The placing of a group's children: they stand in the group's own coordinates
    (`chOff`/`chExt`), which stay where they were when the group was made while the group
    itself is moved or resized (`off`/`ext`)."""
    xfrm = group._element.find(f"{_P}grpSpPr/{_A}xfrm")
    parts = {_local(e.tag): e for e in xfrm} if xfrm is not None else {}
    if not {"off", "ext", "chOff", "chExt"} <= parts.keys():
        return place

    def number(part: str, name: str) -> float:
        return float(parts[part].get(name) or 0)

    sx = number("ext", "cx") / (number("chExt", "cx") or number("ext", "cx") or 1)
    sy = number("ext", "cy") / (number("chExt", "cy") or number("ext", "cy") or 1)

    def inner(x: float, y: float) -> tuple[float, float]:
        return place(
            number("off", "x") + (x - number("chOff", "x")) * sx,
            number("off", "y") + (y - number("chOff", "y")) * sy,
        )

    return inner


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _reading_order(slide: Any, band: float) -> list[Any]:
    title = slide.shapes.title
    title_id = title.shape_id if title is not None else None

    def key(placed: tuple[Any, float, float]) -> tuple[int, int, float]:
        shape, top, left = placed
        return (0 if shape.shape_id == title_id else 1, int(top // band), left)

    placed = [p for p in _flatten(slide.shapes) if not _furniture(p[0])]
    return [shape for shape, _, _ in sorted(placed, key=key)]


def _furniture(shape: Any) -> bool:
    """Whether a shape is the slide's footer, date or number placeholder: page furniture
    repeated on every slide (as Word's footers and a PDF's running lines, left out)."""
    ph = shape._element.find(f"{_P}nvSpPr/{_P}nvPr/{_P}ph")
    return ph is not None and ph.get("type") in _FURNITURE


def _add_shape(builder: TextBuilder, shape: Any, page: int, images: _Images) -> None:
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        for paragraph in shape.text_frame.paragraphs:
            builder.add(paragraph.text, page=page)
    elif getattr(shape, "has_table", False) and shape.has_table:
        for row in table_rows(_table_cells(shape.table)):
            builder.add(row, page=page)
    elif getattr(shape, "has_chart", False) and shape.has_chart:
        for text in _chart_texts(shape.chart):
            builder.add(text, page=page)
    elif (relations := shape._element.find(f".//{_DGM}relIds")) is not None:
        for text in _diagram_texts(shape.part, relations.get(_R_DATA)):
            builder.add(text, page=page)
    elif hasattr(shape, "image"):
        try:
            blob = shape.image.blob
        except Exception:
            return  # a linked picture with no embedded image
        add_page_lines(builder, images.lines(blob), page)


def _table_cells(table: Any) -> list[list[str | None]]:
    """A table's cells by row: `None` for one covered by a merged cell on its left (table.py
    names it after that cell), the value above for one covered by a merged cell above."""
    rows: list[list[str | None]] = []
    above: dict[int, str] = {}
    for row in table.rows:
        cells: list[str | None] = []
        for c, cell in enumerate(row.cells):
            if cell._tc.hMerge:
                cells.append(None)
                continue
            text = above.get(c, "") if cell._tc.vMerge else cell.text.strip()
            above[c] = text
            cells.append(text)
        rows.append(cells)
    return rows


def _chart_texts(chart: Any) -> Iterator[str]:
    """A chart's title, then a row per category naming its values by series:
    `类别: 二月；销量: 20`, as a table's rows are (the category axis title, if any, names
    the first column). The figures live in the chart part's cached values, read as stored.
    """
    if chart.has_title and chart.chart_title.has_text_frame:
        for paragraph in chart.chart_title.text_frame.paragraphs:
            yield paragraph.text
    name = "类别"
    try:
        axis = chart.category_axis
        if axis.has_title and axis.axis_title.has_text_frame:
            name = axis.axis_title.text_frame.text.strip() or name
    except ValueError:
        pass  # a pie or doughnut chart has no axes
    date1904 = chart._chartSpace.find(f"{_C}date1904")
    epoch_1904 = date1904 is not None and date1904.get("val") in ("1", "true")
    for plot in chart.plots:
        fmt = plot._element.findtext(f"{_C}ser/{_C}cat/{_C}numRef/{_C}numCache/{_C}formatCode")
        categories = [_category(str(c), fmt, epoch_1904) for c in plot.categories]
        series = [(s.name or "", list(s.values)) for s in plot.series]
        header = [name, *(series_name for series_name, _ in series)]
        for i, category in enumerate(categories):
            values = [cell_text(v[i]) if i < len(v) else "" for _, v in series]
            if any(values):
                yield row_text(header, [category, *values])


def _category(label: str, fmt: str | None, epoch_1904: bool) -> str:
    """A numeric category as its format shows it: a time axis stores Excel day numbers
    (`45292.0` is 2024-01-01), a number axis floats (`2022.0`)."""
    if fmt is None:
        return label  # text categories
    try:
        value = float(label)
    except ValueError:
        return label
    if shows_date(fmt):
        from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900, from_excel

        try:
            day = from_excel(value, CALENDAR_MAC_1904 if epoch_1904 else CALENDAR_WINDOWS_1900)
        except (ValueError, OverflowError):
            return label
        return cell_text(shown_value(day, fmt))
    return cell_text(value)


def _diagram_texts(part: Any, data_rel: str | None) -> Iterator[str]:
    """The text of a SmartArt diagram, a paragraph per line of each node, in model order.

    python-pptx does not read SmartArt: its text lives in the diagram's data part, as points
    of the data model. Only content nodes carry the author's text; the transitions and
    presentation points around them are layout.
    """
    from pptx.oxml import parse_xml

    if not data_rel or data_rel not in part.rels:
        return  # a diagram without its data part: nothing to read
    model = parse_xml(part.related_part(data_rel).blob)
    for point in model.iter(f"{_DGM}pt"):
        body = point.find(f"{_DGM}t")
        if point.get("type", "node") != "node" or body is None:
            continue
        for paragraph in body.iter(f"{_A}p"):
            yield "".join(t.text or "" for t in paragraph.iter(f"{_A}t"))
