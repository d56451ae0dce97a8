"""Open-domain retrieval over CMRC 2018 / DRCD dev articles rendered as real documents (issue 14).

    nice -n 10 python -m bench.converted ../shared/datasets [--articles 20] [--scanned 5]

Takes the first `--articles` articles of CMRC 2018 dev and of DRCD dev (a fixed slice) and
writes each one as plain text (title, then one context a line: the reference), as a PDF
printed by headless Chromium (every other article in two columns under a running header and
page numbers), as DOCX and as XLSX; the first `--scanned` articles of each set also as a
scanned PDF (the PDF's pages rasterised at 150 dpi, image only). Each corpus is ingested by
the real pipeline into its own index and every question of its articles is asked. Reports:

- hit@1 / hit@5: the gold article is the first (among the first five) retrieved documents;
- gold page in the first citation: the page the answer stands on in the rendered PDF (found by
  locating the answer, with a few characters of its context, in PDFium's text of each page);
- every citation's quote equals the document's extracted text at its offsets;
- PDF pages/s to paragraphs (the loader alone), OCR pages/s and character accuracy of the
  scanned corpus against the text layer of the same pages.

Passage and query vectors are cached by text across corpora (the embedder is deterministic),
so the model embeds each distinct text once; it changes no result.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.formats import article_html, char_accuracy, chromium_pdf, scanned_pdf
from embeddings.base import Embedder, Kind
from embeddings.factory import make_embedder
from rag.ingest.clean import clean_text
from rag.loaders.layout import read_span
from rag.pipeline import Pipeline, open_pipeline
from rag.settings import Settings

_SPACE = re.compile(r"\s+")
_UNSAFE = re.compile(r"[^\w-]+")
KINDS = ("txt", "pdf", "docx", "xlsx")


@dataclass(frozen=True)
class Question:
    question: str
    answer: str
    stem: str  # the gold article's file stem
    context: int  # index of the gold context in the article
    answer_start: int


@dataclass
class Article:
    stem: str
    title: str
    contexts: list[str]
    two_columns: bool
    gold_pages: dict[int, set[int]] = field(default_factory=dict)  # question index -> pages
    page_texts: list[str] = field(default_factory=list)  # PDFium's, white space removed


def load_slice(datasets: Path, per_set: int, skip: int = 0) -> tuple[list[Article], list[Question]]:
    """`per_set` articles of CMRC 2018 dev and of DRCD dev after the first `skip`, with their
    questions."""
    articles: list[Article] = []
    questions: list[Question] = []
    for name in ("cmrc2018_dev", "drcd_dev"):
        data = json.loads((datasets / f"{name}.json").read_text(encoding="utf-8"))["data"]
        for a, raw in enumerate(data[skip : skip + per_set], skip):
            title = str(raw.get("title") or raw.get("id") or a)
            stem = f"{name}_{a:03d}_{_UNSAFE.sub('_', title)[:20]}"
            contexts = [" ".join(p["context"].split()) for p in raw["paragraphs"]]
            articles.append(Article(stem, title, contexts, two_columns=len(articles) % 2 == 1))
            for c, paragraph in enumerate(raw["paragraphs"]):
                for qa in paragraph["qas"]:
                    if not qa.get("answers"):
                        continue
                    first = qa["answers"][0]
                    # Offsets into the context as flattened above (inner white space -> one space).
                    before = " ".join(paragraph["context"][: first["answer_start"]].split())
                    start = len(before) + (
                        1
                        if before
                        and paragraph["context"][
                            first["answer_start"] - 1 : first["answer_start"]
                        ].isspace()
                        else 0
                    )
                    questions.append(Question(qa["question"], first["text"], stem, c, start))
    return articles, questions


class CachedEmbedder(Embedder):
    """The real embedder with a cache by (kind, text): each distinct text is embedded once."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self._cache: dict[tuple[str, str], np.ndarray] = {}

    def embed_batch(self, texts: Sequence[str], kind: Kind) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if (kind, t) not in self._cache))
        if missing:
            for text, vector in zip(missing, self.inner.embed_batch(missing, kind), strict=True):
                self._cache[(kind, text)] = vector
        return np.stack([self._cache[(kind, t)] for t in texts])


def write_corpora(articles: list[Article], root: Path, scanned: set[str]) -> dict[str, Path]:
    """Write each article in every format; return the folder of each corpus."""
    import docx
    import openpyxl

    folders = {kind: root / kind for kind in (*KINDS, "scan", "txt_scanned")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    for article in articles:
        text = article.title + "\n" + "\n".join(article.contexts) + "\n"
        (folders["txt"] / f"{article.stem}.txt").write_text(text, encoding="utf-8")
        pdf = chromium_pdf(
            article_html(article.title, article.contexts, article.two_columns),
            folders["pdf"] / f"{article.stem}.pdf",
        )
        pdf.with_suffix(".html").unlink()
        word = docx.Document()
        word.add_heading(article.title, level=1)
        for context in article.contexts:
            word.add_paragraph(context)
        word.save(str(folders["docx"] / f"{article.stem}.docx"))
        book = openpyxl.Workbook()
        sheet = book.active
        sheet.append(["标题", "段落", "内容"])
        for i, context in enumerate(article.contexts, 1):
            sheet.append([article.title, i, context])
        book.save(folders["xlsx"] / f"{article.stem}.xlsx")
        if article.stem in scanned:
            scanned_pdf(pdf, folders["scan"] / f"{article.stem}.pdf", dpi=150)
            (folders["txt_scanned"] / f"{article.stem}.txt").write_text(text, encoding="utf-8")
    return folders


def page_texts(pdf: Path) -> list[str]:
    """PDFium's raw text of each page, white space removed."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(pdf)
    try:
        return [
            _SPACE.sub("", document[i].get_textpage().get_text_range())
            for i in range(len(document))
        ]
    finally:
        document.close()


def locate_gold_pages(article: Article, questions: list[tuple[int, Question]], pdf: Path) -> int:
    """Fill `article.gold_pages`; return how many answers could not be placed on a page."""
    pages = article.page_texts = page_texts(pdf)
    lost = 0
    for index, q in questions:
        context = article.contexts[q.context]
        found: set[int] = set()
        # The answer with a little context on each side, narrowing until it is on one page:
        # a window that crosses a page or column break is found nowhere.
        for pad in (12, 6, 2, 0):
            needle = _SPACE.sub(
                "", context[max(0, q.answer_start - pad) : q.answer_start + len(q.answer) + pad]
            )
            found = {n for n, text in enumerate(pages, 1) if needle and needle in text}
            if found:
                break
        if not found:  # offsets off (odd white space): any page holding the answer
            found = {n for n, text in enumerate(pages, 1) if _SPACE.sub("", q.answer) in text}
        if not found:
            lost += 1
        article.gold_pages[index] = found
    return lost


def ingest(pipeline: Pipeline, folder: Path) -> dict[str, Any]:
    cpu = time.process_time()
    report = pipeline.ingest([folder])
    cpu = time.process_time() - cpu
    return {
        "files": report.files,
        "skipped": [s.reason for s in report.skipped],
        "passages": pipeline.counts()["passages"],
        "seconds": round(report.seconds, 1),
        "embed_seconds": round(report.embed_seconds, 1),
        "cpu_seconds": round(cpu, 1),  # this process's, all threads (OCR and embedder)
    }


def ask_all(
    pipeline: Pipeline, questions: list[tuple[int, Question]], articles: dict[str, Article]
) -> dict[str, Any]:
    """hit@1, hit@5, gold page of the first citation, and quote validity."""
    hit1 = hit5 = page_right = page_asked = quotes = quotes_valid = quotes_exact = 0
    answer_quoted = 0  # the first citation's quote holds the answer (any format)
    page_spanned = 0  # the gold page is among the pages the first citation's quote spans
    gold_context = 0  # the first citation quotes the gold context (any format)
    quote_on_page = 0  # the first citation's quote starts on the page it names
    texts: dict[str, str | None] = {}
    misses: list[str] = []
    page_misses: list[dict[str, Any]] = []
    for index, q in questions:
        answer = pipeline.ask(q.question, 10)
        files: list[str] = []
        for scored in answer.passages:
            for source in scored.passage.sources:
                if Path(source.file).stem not in files:
                    files.append(Path(source.file).stem)
        hit1 += files[:1] == [q.stem]
        hit5 += q.stem in files[:5]
        if files[:1] != [q.stem] and len(misses) < 5:
            misses.append(f"{q.question} -> {files[:2]} (gold {q.stem})")
        gold = articles[q.stem].gold_pages.get(index)
        first = answer.citations[0] if answer.citations else None
        answer_quoted += first is not None and _SPACE.sub("", q.answer) in _SPACE.sub(
            "", first.quote
        )
        if first is not None and Path(first.file).stem == q.stem:
            quoted = _SPACE.sub("", first.quote)
            gold_context += quoted in _SPACE.sub("", articles[q.stem].contexts[q.context])
            pages = articles[q.stem].page_texts
            if first.page and first.page <= len(pages):
                quote_on_page += quoted[:10] in pages[first.page - 1]
        if gold and first is not None and first.page and Path(first.file).stem == q.stem:
            page_asked += 1
            page_right += first.page in gold
            # A quote running over a page break stands on each page it spans.
            if first.file not in texts:
                texts[first.file] = pipeline.document_text(first.file)
            span = (texts[first.file] or "")[first.char_start : first.char_end]
            page_spanned += bool(gold & set(range(first.page, first.page + span.count("\f") + 1)))
            if first.page not in gold and len(page_misses) < 20:
                page_misses.append(
                    {
                        "question": q.question,
                        "answer": q.answer,
                        "gold_pages": sorted(gold),
                        "cited_page": first.page,
                        "answer_in_quote": _SPACE.sub("", q.answer) in _SPACE.sub("", first.quote),
                        "quote": first.quote[:80],
                    }
                )
        for citation in answer.citations:
            if citation.file not in texts:
                texts[citation.file] = pipeline.document_text(citation.file)
            text = texts[citation.file]
            span = "" if text is None else text[citation.char_start : citation.char_end]
            quotes += 1
            # The text at the offsets, read as the pipeline reads it (a PDF paragraph keeps its
            # wrapped lines' breaks in the text; the loader joins them, then cleaning runs),
            # is the quote: the seeds test's check, with the loader's line joining.
            quotes_exact += span == citation.quote
            quotes_valid += reads_as(span) == citation.quote
    n = max(len(questions), 1)
    return {
        "questions": len(questions),
        "hit@1": round(hit1 / n, 4),
        "hit@5": round(hit5 / n, 4),
        "gold_page_first_citation": round(page_right / page_asked, 4) if page_asked else None,
        "gold_page_asked": page_asked,
        "gold_page_in_first_quote_pages": (
            round(page_spanned / page_asked, 4) if page_asked else None
        ),
        "answer_in_first_quote": round(answer_quoted / n, 4),
        "first_quote_in_gold_context": round(gold_context / n, 4),
        "first_quote_starts_on_its_page": (
            round(quote_on_page / page_asked, 4) if page_asked else None
        ),
        "quotes": quotes,
        "quotes_valid": round(quotes_valid / quotes, 4) if quotes else None,
        "quotes_verbatim": round(quotes_exact / quotes, 4) if quotes else None,
        "misses": misses,
        "page_misses": page_misses,
    }


def reads_as(span: str) -> str:
    """What the pipeline makes of extracted text: wrapped lines (and a paragraph continued
    over a column or page break) joined, then cleaned."""
    return clean_text(read_span(span)).text


def loader_pages_per_s(
    folder: Path, ocr: str, walls: list[float] | None = None
) -> tuple[float, int, dict[str, str]]:
    """Pages per second of our loader alone (to paragraphs) over every file of `folder`, by
    this process's CPU time (wall time on a shared machine mostly measures the others; it is
    appended to `walls` when given)."""
    from rag.loaders.base import LoadOptions
    from rag.loaders.registry import loader_for

    pages = 0
    texts: dict[str, str] = {}
    start = time.process_time()
    wall = time.perf_counter()
    for path in sorted(folder.iterdir()):
        extraction = loader_for(path).extract(
            path,
            path.read_bytes(),
            LoadOptions(max_bytes=1 << 30, ocr=ocr),  # type: ignore[arg-type]
        )
        pages += len({block.page for block in extraction.blocks})
        texts[path.stem] = extraction.text
    if walls is not None:
        walls.append(time.perf_counter() - wall)
    return pages / (time.process_time() - start), pages, texts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("datasets", type=Path)
    parser.add_argument("--articles", type=int, default=20, help="first N of each dataset")
    parser.add_argument(
        "--skip", type=int, default=0, help="skip the first K of each (a held-out slice)"
    )
    parser.add_argument("--scanned", type=int, default=5, help="first N of each, also scanned")
    parser.add_argument("--out", type=Path, help="write the JSON report here too")
    parser.add_argument(
        "--corpora",
        default=",".join((*KINDS, "txt_scanned", "scan")),
        help="which corpora to ingest and ask (comma-separated)",
    )
    args = parser.parse_args(argv)
    logging.getLogger("pdfminer").setLevel(logging.ERROR)
    articles, questions = load_slice(args.datasets, args.articles, args.skip)
    by_stem = {a.stem: a for a in articles}
    scanned = {
        a.stem
        for name in ("cmrc2018_dev", "drcd_dev")
        for a in [a for a in articles if a.stem.startswith(name)][: args.scanned]
    }
    indexed = list(enumerate(questions))
    report: dict[str, Any] = {
        "articles": len(articles),
        "scanned_articles": len(scanned),
        "questions": len(questions),
        "load_average_start": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }
    settings = Settings()
    embedder = CachedEmbedder(make_embedder(settings.embedder, settings.embedder_options()))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        folders = write_corpora(articles, root / "corpus", scanned)
        report["render_seconds"] = round(time.perf_counter() - start, 1)
        lost = 0
        for article in articles:
            own = [(i, q) for i, q in indexed if q.stem == article.stem]
            lost += locate_gold_pages(article, own, folders["pdf"] / f"{article.stem}.pdf")
        report["answers_not_placed_on_a_page"] = lost
        walls: list[float] = []
        speed, pages, _ = loader_pages_per_s(folders["pdf"], "off", walls)
        report["pdf_pages"] = pages
        report["pdf_pages_per_cpu_s_to_paragraphs"] = round(speed, 1)
        report["pdf_pages_per_wall_s_to_paragraphs"] = round(pages / walls[0], 1)
        print(json.dumps(report, ensure_ascii=False), file=sys.stderr)

        results: dict[str, Any] = {}
        for kind in args.corpora.split(","):
            pipeline = open_pipeline(settings, embedder, root / "index" / kind)
            try:
                asked = (
                    indexed if kind in KINDS else [(i, q) for i, q in indexed if q.stem in scanned]
                )
                results[kind] = {"ingest": ingest(pipeline, folders[kind])}
                results[kind].update(ask_all(pipeline, asked, by_stem))
                if kind == "scan":
                    # Character accuracy against the text layer of the same pages.
                    _, _, layer = loader_pages_per_s(_only(folders["pdf"], scanned, root), "off")
                    accuracies = []
                    for stem in sorted(scanned):
                        ocr_text = pipeline.document_text(f"{stem}.pdf") or ""
                        accuracies.append(char_accuracy(layer[stem], ocr_text))
                    results[kind]["ocr_char_accuracy"] = round(float(np.mean(accuracies)), 4)
                    results[kind]["ocr_char_accuracy_per_doc"] = [round(a, 3) for a in accuracies]
            finally:
                pipeline.close()
            results[kind]["load_average"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
            print(kind, json.dumps(results[kind], ensure_ascii=False), file=sys.stderr)
            report["corpora"] = results
            if args.out:  # as it goes: a late failure keeps what was measured
                args.out.write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n")
        report["corpora"] = results
        if "scan" not in results:
            print(json.dumps(report, ensure_ascii=False, indent=1))
            return 0
        # OCR speed: the scanned corpus's ingest less its embedding is almost all OCR.
        scan = results["scan"]["ingest"]
        scan_pages = sum(len(page_texts(folders["pdf"] / f"{s}.pdf")) for s in scanned)
        report["scan_pages"] = scan_pages
        ocr_seconds = scan["seconds"] - scan["embed_seconds"]
        report["ocr_seconds_per_page"] = round(ocr_seconds / max(scan_pages, 1), 2)
    report["load_average_end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    text = json.dumps(report, ensure_ascii=False, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


def _only(folder: Path, stems: set[str], root: Path) -> Path:
    """A folder holding only the files of `folder` whose stem is in `stems`."""
    out = root / f"{folder.name}_only"
    out.mkdir(exist_ok=True)
    for stem in stems:
        target = out / f"{stem}.pdf"
        if not target.exists():
            target.symlink_to(folder / f"{stem}.pdf")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
