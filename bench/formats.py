"""Real-document loaders measured: PDF libraries compared, pages/s, OCR speed and accuracy.

    python -m bench.formats ../shared/datasets [--articles N] [--scanned-pages N]

Builds a converted corpus from CMRC 2018 and DRCD dev contexts (simplified and traditional
Chinese, half each): documents of a few contexts each, printed to PDF by headless Chromium
(one column; two columns with a running header and page numbers), the same with the
ToUnicode maps removed (a "garbage text layer"), as DOCX and XLSX, and as scanned PDFs
(pages rasterised at 150 dpi). Then measures:

- each PDF library (pypdfium2, pdfplumber, pypdf) on the text-layer PDFs: seconds per page
  and how much of the source text comes back in order (10-character shingle recall);
- our loaders (`rag.loaders`): pages/s to paragraphs, shingle recall, header/footer removal;
- OCR of the scanned PDFs: pages/s on this machine (OCR_THREADS threads) and character
  accuracy against the source text.

Prints one JSON object; docs/benchmarks.md records the figures.
"""

from __future__ import annotations

import argparse
import difflib
import html
import json
import logging
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
_SPACE = re.compile(r"\s+")

PAGE_CSS = """
@page { size: A4; margin: 22mm 18mm; }
body { font-family: 'WenQuanYi Micro Hei', sans-serif; font-size: 12pt; line-height: 1.6; }
h1 { font-size: 18pt; }
p { text-indent: 2em; margin: 0 0 0.6em 0; }
"""
RUNNING_CSS = """
@page { @top-center { content: "%s"; font-size: 9pt; }
        @bottom-center { content: "第 " counter(page) " 页"; font-size: 9pt; } }
.columns { column-count: 2; column-gap: 8mm; }
"""


def article_html(title: str, paragraphs: Sequence[str], two_columns: bool = False) -> str:
    """An HTML page for Chromium to print: a title and paragraphs, optionally two columns
    under a running header with page numbers."""
    css = PAGE_CSS + (RUNNING_CSS % html.escape(title) if two_columns else "")
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    if two_columns:
        body = f'<div class="columns">{body}</div>'
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><style>{css}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def chromium_pdf(page_html: str, out: Path) -> Path:
    """Print `page_html` to the PDF `out` with headless Chromium (no header or footer of its own).

    Raises:
        RuntimeError: Chromium is missing or failed.
    """
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} not found (make chromium)")
    source = out.with_suffix(".html")
    source.write_text(page_html, encoding="utf-8")
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-pdf-header-footer",
                f"--user-data-dir={profile}",
                f"--print-to-pdf={out}",
                source.as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
    if done.returncode or not out.exists():
        raise RuntimeError(f"chromium failed: {done.stderr.decode(errors='replace')[-500:]}")
    return out


def strip_to_unicode(pdf: Path, out: Path) -> Path:
    """A copy of `pdf` whose fonts lose their ToUnicode maps: the text layer turns to garbage
    (glyph ids), as in many Chinese PDFs made by old tools."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import NameObject

    writer = PdfWriter(clone_from=PdfReader(pdf))
    for page in writer.pages:
        fonts = page.get("/Resources", {}).get("/Font", {})
        for ref in fonts.values():
            font = ref.get_object()
            if NameObject("/ToUnicode") in font:
                del font[NameObject("/ToUnicode")]
    with out.open("wb") as f:
        writer.write(f)
    return out


def scanned_pdf(pdf: Path, out: Path, dpi: int = 150, max_pages: int | None = None) -> Path:
    """Rasterise each page of `pdf` at `dpi` into an image-only PDF (a "scan")."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(pdf)
    count = len(document) if max_pages is None else min(len(document), max_pages)
    images = [document[i].render(scale=dpi / 72).to_pil().convert("L") for i in range(count)]
    document.close()
    images[0].save(out, save_all=True, append_images=images[1:], resolution=dpi)
    return out


def shingle_recall(source: str, extracted: str, n: int = 10) -> float:
    """Share of the source's n-character shingles (white space removed) found in `extracted`:
    missing, garbled or out-of-order text all lower it."""
    src = _SPACE.sub("", source)
    got = _SPACE.sub("", extracted)
    shingles = {src[i : i + n] for i in range(0, max(len(src) - n + 1, 1), n)}
    if not shingles:
        return 1.0
    return sum(1 for s in shingles if s in got) / len(shingles)


def char_accuracy(source: str, extracted: str) -> float:
    """Characters of `source` matched in order in `extracted` (white space ignored)."""
    src = _SPACE.sub("", source)
    got = _SPACE.sub("", extracted)
    if not src:
        return 1.0
    matcher = difflib.SequenceMatcher(None, src, got, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks()) / len(src)


def _pypdfium2(path: Path) -> tuple[str, int]:
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(path)
    texts = [document[i].get_textpage().get_text_range() for i in range(len(document))]
    return "\n".join(texts), len(texts)


def _pdfplumber(path: Path) -> tuple[str, int]:
    import pdfplumber

    with pdfplumber.open(path) as document:
        texts = [page.extract_text() or "" for page in document.pages]
    return "\n".join(texts), len(texts)


def _pypdf(path: Path) -> tuple[str, int]:
    from pypdf import PdfReader

    reader = PdfReader(path)
    texts = [page.extract_text() or "" for page in reader.pages]
    return "\n".join(texts), len(texts)


def _ours(path: Path, ocr: str = "off") -> tuple[str, int]:
    from rag.loaders.base import LoadError, LoadOptions
    from rag.loaders.registry import loader_for

    try:
        extraction = loader_for(path).extract(
            path,
            path.read_bytes(),
            LoadOptions(max_bytes=1 << 30, ocr=ocr),  # type: ignore[arg-type]
        )
    except LoadError:
        return "", 0  # refused: nothing extracted
    pages = {block.page for block in extraction.blocks}
    return "\n".join(block.text.text for block in extraction.blocks), len(pages)


LIBRARIES: dict[str, Callable[[Path], tuple[str, int]]] = {
    "pypdfium2": _pypdfium2,
    "pdfplumber": _pdfplumber,
    "pypdf": _pypdf,
    "ours (rag.loaders.pdf)": _ours,
}


def _measure(
    run: Callable[[Path], tuple[str, int]], docs: list[tuple[Path, str]]
) -> dict[str, Any]:
    pages = 0
    recalls = []
    start = time.perf_counter()
    for path, source in docs:
        text, count = run(path)
        pages += count
        recalls.append(shingle_recall(source, text))
    seconds = time.perf_counter() - start
    return {
        "pages": pages,
        "pages_per_s": round(pages / seconds, 1),
        "shingle_recall": round(sum(recalls) / len(recalls), 4),
    }


def build_corpus(contexts: list[tuple[str, str]], folder: Path, per_doc: int) -> dict[str, Any]:
    """Write the converted documents; return the paths with their source texts."""
    import docx
    import openpyxl

    corpus: dict[str, list[tuple[Path, str]]] = {
        "pdf_1col": [],
        "pdf_2col": [],
        "pdf_no_tounicode": [],
        "docx": [],
        "xlsx": [],
    }
    for d in range(0, len(contexts), per_doc):
        group = contexts[d : d + per_doc]
        title = group[0][0]
        paragraphs = [text for _, text in group]
        source = title + "\n" + "\n".join(paragraphs)
        one = chromium_pdf(article_html(title, paragraphs), folder / f"doc{d:04d}_1col.pdf")
        two = chromium_pdf(article_html(title, paragraphs, True), folder / f"doc{d:04d}_2col.pdf")
        corpus["pdf_1col"].append((one, source))
        corpus["pdf_2col"].append((two, source))
        if d == 0:
            bad = strip_to_unicode(one, folder / f"doc{d:04d}_garbage.pdf")
            corpus["pdf_no_tounicode"].append((bad, source))
        word = docx.Document()
        word.add_heading(title, level=1)
        for text in paragraphs:
            word.add_paragraph(text)
        word.save(str(folder / f"doc{d:04d}.docx"))
        corpus["docx"].append((folder / f"doc{d:04d}.docx", source))
        book = openpyxl.Workbook()
        sheet = book.active
        sheet.append(["标题", "段落", "内容"])
        for i, (name, text) in enumerate(group, 1):
            sheet.append([name, i, text])
        book.save(folder / f"doc{d:04d}.xlsx")
        corpus["xlsx"].append((folder / f"doc{d:04d}.xlsx", "\n".join(paragraphs)))
    return corpus


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("datasets", type=Path)
    parser.add_argument("--articles", type=int, default=96, help="CMRC contexts to convert")
    parser.add_argument("--per-doc", type=int, default=8, help="contexts per document")
    parser.add_argument("--scanned-pages", type=int, default=6, help="scanned pages to OCR")
    args = parser.parse_args(argv)
    # pdfminer complains at every font without a bounding box (Chromium's subsets).
    logging.getLogger("pdfminer").setLevel(logging.ERROR)
    # Half simplified (CMRC 2018), half traditional (DRCD): OCR reads both scripts.
    contexts: list[tuple[str, str]] = []
    for name in ("cmrc2018_dev.json", "drcd_dev.json"):
        data = json.loads((args.datasets / name).read_text(encoding="utf-8"))
        contexts += [
            (article.get("title") or "", paragraph["context"])
            for article in data["data"]
            for paragraph in article["paragraphs"]
        ][: args.articles // 2]
    report: dict[str, Any] = {"articles": len(contexts)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        corpus = build_corpus(contexts, folder, args.per_doc)
        report["build_seconds"] = round(time.perf_counter() - start, 1)
        report["libraries"] = {
            kind: {name: _measure(run, corpus[kind]) for name, run in LIBRARIES.items()}
            for kind in ("pdf_1col", "pdf_2col", "pdf_no_tounicode")
        }
        report["realdocs_langchain_pdf"] = {
            name: {
                "pages_per_s": _timed_pages(
                    run, args.datasets.parent / "realdocs" / "langchain.pdf"
                )
            }
            for name, run in LIBRARIES.items()
        }
        report["office"] = {kind: _measure(_ours, corpus[kind]) for kind in ("docx", "xlsx")}
        # The garbage text layer: does our loader notice it and OCR the page instead?
        garbage = corpus["pdf_no_tounicode"][0]
        report["garbage_layer_ours_with_ocr"] = _measure(lambda p: _ours(p, "auto"), [garbage])
        # Scanned pages, from the first simplified and the first traditional document: OCR
        # speed and character accuracy against the text layer of the same pages.
        from rag.loaders.ocr import OCR_THREADS

        docs = corpus["pdf_1col"]
        per_script = max(1, args.scanned_pages // 2)
        report["ocr_scanned_150dpi"] = {"ocr_threads": OCR_THREADS}
        for script, (path, _source) in (("simplified", docs[0]), ("traditional", docs[-1])):
            count = min(_ours(path)[1], per_script)
            scan = scanned_pdf(path, folder / (path.stem + "_scan.pdf"), 150, count)
            start = time.perf_counter()
            ocr_text, pages = _ours(scan, "auto")
            seconds = time.perf_counter() - start
            report["ocr_scanned_150dpi"][script] = {
                "pages": pages,
                "seconds_per_page": round(seconds / max(pages, 1), 2),
                "char_accuracy": round(char_accuracy(_page_texts(path, count), ocr_text), 4),
            }
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    json.dump(report, sys.stdout, ensure_ascii=False, indent=2)
    print()


def _page_texts(pdf: Path, count: int) -> str:
    """The text of the first `count` pages of a text-layer PDF, read by our loader."""
    from rag.loaders.base import LoadOptions
    from rag.loaders.pdf import PdfLoader

    extraction = PdfLoader().extract(
        pdf, pdf.read_bytes(), LoadOptions(max_bytes=1 << 30, max_pages=count, ocr="off")
    )
    return "\n".join(block.text.text for block in extraction.blocks)


def _timed_pages(run: Callable[[Path], tuple[str, int]], path: Path) -> float | None:
    if not path.exists():
        return None
    start = time.perf_counter()
    _, pages = run(path)
    return round(pages / (time.perf_counter() - start), 1)


if __name__ == "__main__":
    main()
