"""Sentence-aligned, Chinese-aware chunking of paragraphs into passages-to-be."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from rag.loaders.lines import LineIndex
from rag.text.sentences import CLAUSE_END, SENTENCE_END, split_sentences
from rag.types import Chunk, Document, Paragraph, Source

if TYPE_CHECKING:
    from langchain_text_splitters import RecursiveCharacterTextSplitter


def make_splitter(size: int) -> RecursiveCharacterTextSplitter:
    """LangChain's recursive splitter, set up so that chunks concatenate back to the input.

    Separators are kept at the end of the piece they close and nothing is stripped or
    overlapped, which is what lets every chunk keep exact offsets into its paragraph.
    Imported here: only ingesting splits, and LangChain's import costs every command 0.2 s.
    """
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(
        separators=[SENTENCE_END, CLAUSE_END, ""],
        is_separator_regex=True,
        keep_separator="end",
        chunk_size=size,
        chunk_overlap=0,
        strip_whitespace=False,
    )


def chunk_spans(text: str, splitter: RecursiveCharacterTextSplitter) -> list[tuple[int, int]]:
    """Spans of the chunks of one paragraph; they tile `text` exactly, in order."""
    if len(text) <= splitter._chunk_size:
        return [(0, len(text))] if text else []
    spans: list[tuple[int, int]] = []
    pos = 0
    for piece in splitter.split_text(text):
        # The splitter returns pieces in order without overlap; find() guards against
        # any drift rather than trusting lengths blindly.
        start = text.find(piece, pos)
        if start < 0:
            raise AssertionError("splitter returned text that is not in its input")
        spans.append((start, start + len(piece)))
        pos = start + len(piece)
    return spans


def split_at_pages(paragraph: Paragraph, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Cut chunk spans of a paragraph continued over a page break where the first sentence
    starting on the next page begins: a chunk's page (where it starts) is then the page of
    every sentence in it, so a quote's page is that of its sentence (a sentence running over
    the break stays on the page where it starts)."""
    if not paragraph.page_breaks or not paragraph.text:
        return spans
    cuts: list[int] = []
    page = paragraph.page
    for a, _ in split_sentences(paragraph.text)[1:]:
        here = paragraph.page_at(paragraph.source_span(a, a + 1)[0])
        if here != page:
            cuts.append(a)
            page = here
    out: list[tuple[int, int]] = []
    for a, b in spans:
        for cut in cuts:
            if a < cut < b:
                out.append((a, cut))
                a = cut
        out.append((a, b))
    return out


def paragraph_chunks(
    paragraph: Paragraph, lines: LineIndex, splitter: RecursiveCharacterTextSplitter
) -> Iterator[Chunk]:
    """Chunks of one paragraph, white space trimmed, each with its exact source span."""
    for a, b in split_at_pages(paragraph, chunk_spans(paragraph.text, splitter)):
        piece = paragraph.text[a:b]
        lead = len(piece) - len(piece.lstrip())
        a, b = a + lead, a + len(piece.rstrip())
        if a >= b:
            continue
        char_start, char_end = paragraph.source_span(a, b)
        yield Chunk(
            text=paragraph.text[a:b],
            source=Source(
                file=paragraph.file,
                paragraph=paragraph.number,
                line_start=lines.line_of(char_start),
                line_end=lines.line_of(max(char_end - 1, char_start)),
                char_start=char_start,
                char_end=char_end,
                text=paragraph.text[a:b],
                origin=paragraph.origin.slice(a, b),
                line_breaks=lines.breaks(char_start, char_end),
                # A paragraph continued on the next page: the page this chunk starts on.
                page=paragraph.page_at(char_start),
                sheet=paragraph.sheet,
                ocr_confidence=paragraph.ocr_confidence,
            ),
            paragraph=paragraph,
            start=a,
        )


def chunk_document(document: Document, size: int) -> list[Chunk]:
    """All chunks of a document, paragraph by paragraph: a chunk never crosses paragraphs."""
    splitter = make_splitter(size)
    lines = LineIndex(document.source.text)
    return [c for p in document.paragraphs for c in paragraph_chunks(p, lines, splitter)]
