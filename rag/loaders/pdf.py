"""PDF: the text layer read with PDFium, scanned or garbled pages OCR'd, paragraphs rebuilt.

Why pypdfium2: on our Chinese PDFs it was 3-16 times faster than pypdf and pdfplumber and as
correct (docs/benchmarks.md, bench/formats.py), and it renders pages for OCR, so one
library serves both. Where a CID font has no ToUnicode map it reads glyph ids, like pypdf:
such pages are read again by pdfminer.six (pdf_text.py). PyMuPDF is AGPL, so not used.

Each page's characters are grouped into lines by position (not by the order in which the PDF
draws them), the lines into columns and paragraphs (geometry.py). Lines in the top and bottom
margin that repeat on most pages (digits aside) are running headers and footers, and a lone
page number there is one too: both are left out of the text. A page with no text layer but
something drawn on it, or whose text layer is mojibake that pdfminer cannot read either
(garbage.py), is rendered and OCR'd; on a page with a text layer, large embedded images that
no text covers are OCR'd as well."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.loaders.base import Extraction, LoadError, LoadOptions, NoTextError
from rag.loaders.garbage import is_garbage
from rag.loaders.geometry import Line
from rag.loaders.layout import TextBuilder, add_pages
from rag.loaders.ocr import MAX_OCR_SIDE, OcrFailed, OcrUnavailable, ocr_lines
from rag.loaders.pdf_frame import PageFrame
from rag.loaders.pdf_table import find_tables
from rag.loaders.pdf_text import PdfminerReader, text_lines

OCR_DPI = 200
# Running headers and footers live in the top and bottom margins.
_MARGIN = 0.1
_PAGE_NUMBER = re.compile(
    r"(?:第\s*)?[-–—(（\[]?\s*(?:page\s*)?\d{1,5}\s*[-–—)）\]]?\s*(?:页|頁)?"
    r"(?:\s*(?:[/／]|of|共)\s*\d{1,5}\s*(?:页|頁)?)?",
    re.IGNORECASE,
)
_DIGITS = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")
_MIN_IMAGE_SHARE = 0.02  # embedded images smaller than this share of the page are not OCR'd
_MAX_IMAGES_PER_PAGE = 8
# An image with this much text-layer text on it is a scan with its own OCR layer; less (a
# page number, a stamp) does not make a scanned page readable.
_COVERED_CHARS = 40


@dataclass
class _Page:
    number: int
    height: float
    lines: list[Line] = field(default_factory=list)


@dataclass
class _Notes:
    ocr_off: list[int] = field(default_factory=list)
    unreadable: list[int] = field(default_factory=list)
    garbled: list[int] = field(default_factory=list)
    rescued: list[int] = field(default_factory=list)
    other: list[str] = field(default_factory=list)

    def render(self) -> list[str]:
        notes = list(self.other)
        if self.rescued:
            notes.append(
                f"{_pages(self.rescued)}: fonts without a ToUnicode map, read through their "
                "own cmap (pdfminer)"
            )
        if self.garbled:
            notes.append(f"{_pages(self.garbled)}: text layer is garbage (mojibake)")
        if self.ocr_off:
            notes.append(f"{_pages(self.ocr_off)}: no usable text layer; OCR is off, skipped")
        if self.unreadable:
            notes.append(f"{_pages(self.unreadable)}: could not be read, skipped")
        return notes


def _pages(numbers: list[int]) -> str:
    """`[1, 2, 3, 7]` -> `pages 1-3, 7`."""
    runs: list[list[int]] = []
    for n in sorted(numbers):
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    parts = [f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs]
    return ("pages " if len(numbers) > 1 else "page ") + ", ".join(parts)


class PdfLoader:
    """PDF files, with or without a text layer."""

    format: str = "pdf"
    extensions: tuple[str, ...] = (".pdf",)

    def extract(self, path: Path, data: bytes, options: LoadOptions) -> Extraction:
        import pypdfium2 as pdfium

        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as e:
            raise LoadError(path, _open_error(str(e))) from None
        notes = _Notes()
        pages: list[_Page] = []
        try:
            total = len(pdf)
            if total == 0:
                raise LoadError(path, "PDF has no pages")
            count = min(total, options.max_pages)
            if count < total:
                notes.other.append(
                    f"page limit: read the first {count} of {total} pages (RAG_MAX_PAGES)"
                )
            ocr = options.ocr == "auto"
            miner = PdfminerReader(data)
            for index in range(count):
                try:
                    page = pdf[index]
                except pdfium.PdfiumError:
                    notes.unreadable.append(index + 1)
                    continue
                try:
                    pages.append(_read_page(page, index + 1, ocr, notes, miner))
                except OcrUnavailable as e:
                    ocr = False
                    notes.other.append(str(e))
                    notes.ocr_off.append(index + 1)
                except OcrFailed as e:
                    notes.other.append(f"page {index + 1}: {e}")
                except Exception:
                    # One damaged page (a broken content stream, an image PDFium cannot
                    # decode) costs that page, not the document.
                    notes.unreadable.append(index + 1)
                finally:
                    page.close()
        finally:
            pdf.close()
        dropped = _drop_running_lines(pages)
        if dropped:
            notes.other.append(
                f"running headers, footers and page numbers left out ({dropped} lines)"
            )
        builder = TextBuilder()
        add_pages(builder, [(page.number, page.lines) for page in pages])
        if not builder.block_count:
            if reasons := "; ".join(notes.render()):  # pages it could not read
                raise LoadError(path, f"no text found in the PDF ({reasons})")
            raise NoTextError(path, "no text found in the PDF (pages are blank)")
        return builder.build("pdf", self.format, notes.render())


def _open_error(message: str) -> str:
    lowered = message.lower()
    if "password" in lowered:
        return "password-protected PDF (encrypted); remove the password"
    if "security" in lowered:
        return "PDF uses an unsupported security handler (encrypted)"
    if "format" in lowered or "file" in lowered:
        return "not a readable PDF (truncated or damaged)"
    return f"cannot open PDF ({message})"


def _read_page(page: Any, number: int, ocr: bool, notes: _Notes, miner: PdfminerReader) -> _Page:
    # Positions as the page is shown: a page turned by /Rotate reads like any other.
    frame = PageFrame.of(page)
    width, height = frame.width, frame.height
    result = _Page(number, height)
    textpage = page.get_textpage()
    try:
        lines = text_lines(textpage, frame, find_tables(page, frame))
    finally:
        textpage.close()
    text = "".join(line.text for line in lines)
    garbled = bool(text.strip()) and is_garbage(text)
    if garbled:
        lines = miner.lines(number - 1, height)
        # A line pdfminer could not map either (a glyph with no cmap entry) is dropped.
        lines = [line for line in lines if "\ufffd" not in line.text and not is_garbage(line.text)]
        if lines and not is_garbage("".join(line.text for line in lines)):
            notes.rescued.append(number)
        else:
            notes.garbled.append(number)
            lines = []
    if lines:
        result.lines = lines
        if ocr:
            result.lines += _ocr_images(page, frame, lines)
        return result
    if not garbled and not _draws_anything(page):
        return result  # a blank page: nothing to read, nothing to report
    if not ocr:
        notes.ocr_off.append(number)
        return result
    scale = min(OCR_DPI / 72, MAX_OCR_SIDE / max(width, height, 1))
    image = page.render(scale=scale).to_pil()
    result.lines = ocr_lines(image, scale=1 / scale)
    return result


def _draws_anything(page: Any) -> bool:
    """Whether a page with no text shows something (a scan, text drawn as outlines)."""
    import pypdfium2.raw as raw

    for obj in page.get_objects(max_depth=2):
        if obj.type in (raw.FPDF_PAGEOBJ_IMAGE, raw.FPDF_PAGEOBJ_PATH, raw.FPDF_PAGEOBJ_SHADING):
            return True
    return False


def _ocr_images(page: Any, frame: PageFrame, lines: list[Line]) -> list[Line]:
    """OCR the large embedded images of a page that no text-layer line stands on."""
    import pypdfium2.raw as raw

    width, height = frame.width, frame.height
    found: list[Line] = []
    images = 0
    for obj in page.get_objects(filter=(raw.FPDF_PAGEOBJ_IMAGE,), max_depth=2):
        left, y0, right, y1 = frame.box(*obj.get_bounds())  # y0, y1 top-down, as shown
        left, right = max(left, 0.0), min(right, width)
        y0, y1 = max(y0, 0.0), min(y1, height)
        if (right - left) * (y1 - y0) < _MIN_IMAGE_SHARE * width * height:
            continue
        inside = sum(
            len(line.text)
            for line in lines
            if left <= (line.x0 + line.x1) / 2 <= right and y0 <= line.middle <= y1
        )
        if inside >= _COVERED_CHARS:
            continue  # a scan under its own OCR text layer: the layer is already read
        images += 1
        if images > _MAX_IMAGES_PER_PAGE:
            break
        scale = min(OCR_DPI / 72, MAX_OCR_SIDE / max(right - left, y1 - y0, 1))
        # The crop is taken from the rendered (shown) page: left, bottom, right, top margins.
        crop = (left, height - y1, width - right, y0)
        image = page.render(scale=scale, crop=crop).to_pil()
        found += ocr_lines(image, scale=1 / scale, dx=left, dy=y0)
    return found


def _drop_running_lines(pages: list[_Page]) -> int:
    """Remove running headers, footers and page numbers from `pages`; return how many."""

    def margin_lines(page: _Page) -> list[Line]:
        return [
            line
            for line in page.lines
            if line.bottom < _MARGIN * page.height or line.top > (1 - _MARGIN) * page.height
        ]

    def key(line: Line) -> str:
        return _SPACES.sub("", _DIGITS.sub("#", line.text))

    counts: Counter[str] = Counter()
    for page in pages:
        counts.update({key(line) for line in margin_lines(page)})
    repeated = max(2, (len(pages) + 1) // 2)
    dropped = 0
    for page in pages:
        drop = {
            id(line)
            for line in margin_lines(page)
            if _PAGE_NUMBER.fullmatch(line.text.strip())
            or (len(pages) > 1 and counts[key(line)] >= repeated)
        }
        if drop:
            page.lines = [line for line in page.lines if id(line) not in drop]
            dropped += len(drop)
    return dropped
