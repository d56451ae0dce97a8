"""Chunking: sentence-aligned pieces that tile each paragraph exactly."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rag.ingest.chunk import chunk_document, chunk_spans, make_splitter
from rag.ingest.document import load_document
from rag.text.sentences import split_sentences
from tests.conftest import DEMO

CJK_TEXT = st.text(
    alphabet=st.sampled_from(list("质量是基础安全底线。！？；…，、」”abc 12")), max_size=600
)


@given(CJK_TEXT, st.integers(min_value=20, max_value=300))
@settings(max_examples=200, deadline=None)
def test_chunks_tile_their_paragraph_exactly(text: str, size: int) -> None:
    spans = chunk_spans(text, make_splitter(size))
    assert "".join(text[a:b] for a, b in spans) == text
    assert all(a < b for a, b in spans)
    assert all(b - a <= size for a, b in spans)


@given(CJK_TEXT)
def test_sentences_cover_the_text_exactly(text: str) -> None:
    spans = split_sentences(text)
    assert "".join(text[a:b] for a, b in spans) == text


def test_a_sentence_ends_after_its_closing_quote() -> None:
    text = "他说：“质量是基础。”安全是底线！还有吗？"
    assert [text[a:b] for a, b in split_sentences(text)] == [
        "他说：“质量是基础。”",
        "安全是底线！",
        "还有吗？",
    ]


def test_chunks_break_at_sentence_ends_when_sentences_fit() -> None:
    text = "第一句话比较长一些。" * 3 + "第二句。" * 5
    spans = chunk_spans(text, make_splitter(25))
    assert all(text[b - 1] == "。" for _, b in spans)


def test_demo_chunks_stay_inside_one_paragraph_and_slice_back_to_the_source() -> None:
    document = load_document(DEMO / "000_7045e455b641a377.txt", 10_000_000)
    chunks = chunk_document(document, 200)
    assert len(chunks) > len(document.paragraphs) // 2
    by_number = {p.number: p for p in document.paragraphs}
    for chunk in chunks:
        paragraph = by_number[chunk.source.paragraph]
        assert chunk.text in paragraph.text
        assert len(chunk.text) <= 200
        raw = document.source.text[chunk.source.char_start : chunk.source.char_end]
        # The cleaned chunk is the raw span with white space normalised.
        assert "".join(raw.split()) == "".join(chunk.text.split())
        assert paragraph.line_start <= chunk.source.line_start <= chunk.source.line_end
        assert chunk.source.line_end <= paragraph.line_end
