"""The LangChain-Chatchat baseline: chunking, paragraph mapping, answer shape, fusion, reuse."""

from __future__ import annotations

import importlib
import shutil
import sys
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from embeddings.base import Embedder, Kind, Vectors
from eval.baselines import langchain_chatchat
from eval.baselines.langchain_chatchat import (
    CHUNK_OVERLAP,
    CHUNK_SIZE,
    BaselineChunk,
    ChunkSource,
    LangChainBaseline,
)
from rag.types import Format, SourceText
from tests.conftest import DEMO
from tests.fakes import HashEmbedder
from tests.texts import paragraph_spans

QUESTIONS = ["质检总局局长是谁？", "王岐山在哪裡主持召開質量工作座談會？", "质量提升"]
ANSWER_KEYS = {"question", "answer", "abstained", "citations", "passages", "timings_ms"}
CITATION_KEYS = {"n", "file", "paragraph", "line_start", "line_end", "char_start", "char_end"}
CITATION_KEYS |= {"quote", "passage_id", "also_in"}
SOURCE_KEYS = {"file", "paragraph", "line_start", "line_end", "char_start", "char_end"}


class AliasEmbedder(HashEmbedder):
    """TEST FAKE: a query listed in `aliases` embeds as its alias text instead.

    Lets a test decide what the dense side finds for a query, whatever BM25 finds.
    """

    def __init__(self, aliases: dict[str, str]) -> None:
        super().__init__()
        self.aliases = aliases

    def embed_batch(self, texts: Sequence[str], kind: Kind) -> Vectors:
        if kind == "query":
            texts = [self.aliases.get(t, t) for t in texts]
        return super().embed_batch(texts, kind)


@pytest.fixture(scope="module")
def demo_baseline() -> LangChainBaseline:
    baseline = LangChainBaseline(HashEmbedder())
    baseline.ingest([DEMO])
    return baseline


def sources_by_file() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in DEMO.glob("*.txt")}


def strip_timings(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "timings_ms"}


def chunks_of(baseline: LangChainBaseline, file: str) -> list[BaselineChunk]:
    return [c for c in baseline.chunks if c.file == file]


# -- chunking ---------------------------------------------------------------------------


def test_chunks_are_verbatim_slices_within_size(demo_baseline: LangChainBaseline) -> None:
    texts = sources_by_file()
    assert {c.file for c in demo_baseline.chunks} == set(texts)
    assert [c.id for c in demo_baseline.chunks] == list(range(len(demo_baseline.chunks)))
    for chunk in demo_baseline.chunks:
        assert 0 < len(chunk.text) <= CHUNK_SIZE
        assert texts[chunk.file][chunk.char_start : chunk.char_end] == chunk.text


def test_chunks_overlap_by_at_most_the_overlap_and_cover_the_file(
    demo_baseline: LangChainBaseline,
) -> None:
    overlaps = []
    for file, text in sources_by_file().items():
        chunks = chunks_of(demo_baseline, file)
        for before, after in pairwise(chunks):
            assert after.char_start > before.char_start
            overlaps.append(before.char_end - after.char_start)
        covered: set[int] = set()
        for chunk in chunks:
            covered.update(range(chunk.char_start, chunk.char_end))
        assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
    assert max(overlaps) <= CHUNK_OVERLAP
    assert max(overlaps) > 0  # neighbours do share text


def test_small_chunks_split_at_sentences_with_overlap(tmp_path: Path) -> None:
    text = "".join(f"第{n}句话在这里结束。" for n in range(1, 21))  # 20 sentences, no newline
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    baseline = LangChainBaseline(HashEmbedder(), chunk_size=40, chunk_overlap=12)
    report = baseline.ingest([tmp_path])
    assert report.chunks == len(baseline.chunks) > 5
    for chunk in baseline.chunks:
        assert len(chunk.text) <= 40
        assert chunk.text.endswith("。")  # separators stay with the sentence they close
        assert text[chunk.char_start : chunk.char_end] == chunk.text
    assert all(0 < a.char_end - b.char_start <= 12 for a, b in pairwise(baseline.chunks))


# -- chunk -> paragraphs ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "a.txt",
            "标题\n\n第一段。\n  第二段，有逗号。\n",
            [(1, 1, 1, 0, 2), (2, 3, 3, 4, 8), (3, 4, 4, 9, 19)],
        ),
        # Markdown: the heading's paragraph starts after "# ", so the chunk's "# " is in none.
        ("b.md", "# 标题\n\n正文。\n第二行\n", [(1, 1, 1, 2, 4), (2, 3, 4, 6, 13)]),
    ],
)
def test_chunk_maps_to_the_paragraphs_it_overlaps(
    tmp_path: Path, name: str, text: str, expected: list[tuple[int, int, int, int, int]]
) -> None:
    (tmp_path / name).write_text(text, encoding="utf-8")
    baseline = LangChainBaseline(HashEmbedder())
    baseline.ingest([tmp_path])
    [chunk] = baseline.chunks
    assert chunk.sources == tuple(
        ChunkSource(name, n, line_a, line_b, a, b) for n, line_a, line_b, a, b in expected
    )
    fmt: Format = "markdown" if name.endswith(".md") else "text"
    spans = paragraph_spans(SourceText(name, text, "utf-8", fmt))
    assert [s.paragraph for s in chunk.sources] == [p.number for p in spans]
    for source, paragraph in zip(chunk.sources, spans, strict=True):
        assert text[source.char_start : source.char_end] == paragraph.text.text


def test_every_overlapped_paragraph_is_a_source(demo_baseline: LangChainBaseline) -> None:
    texts = sources_by_file()
    for file, text in texts.items():
        paragraphs = paragraph_spans(SourceText(file, text, "utf-8", "text"))
        for chunk in chunks_of(demo_baseline, file):
            overlapped = [
                p.number
                for p in paragraphs
                if p.text.source_span()[0] < chunk.char_end
                and chunk.char_start < p.text.source_span()[1]
            ]
            assert [s.paragraph for s in chunk.sources] == overlapped
            for source in chunk.sources:
                assert chunk.char_start <= source.char_start < source.char_end <= chunk.char_end
                assert source.line_start >= chunk.line_start
                assert source.line_end <= chunk.line_end


# -- asking -----------------------------------------------------------------------------


def test_ask_returns_our_answer_object(demo_baseline: LangChainBaseline) -> None:
    texts = sources_by_file()
    answer = demo_baseline.ask("质检总局局长是谁？", top_k=4)
    assert set(answer) == ANSWER_KEYS
    assert answer["question"] == "质检总局局长是谁？"
    assert answer["abstained"] is False
    passages = answer["passages"]
    assert len(passages) == 4
    assert answer["answer"] == passages[0]["text"]
    scores = [p["score"] for p in passages]
    assert scores == sorted(scores, reverse=True)
    assert scores[-1] > 0
    for passage in passages:
        assert set(passage) == {"id", "text", "score", "sources"}
        assert passage["text"] == demo_baseline.chunks[passage["id"]].text
        for source in passage["sources"]:
            assert set(source) == SOURCE_KEYS
    [citation] = answer["citations"]
    assert set(citation) == CITATION_KEYS
    assert citation["n"] == 1
    assert citation["passage_id"] == passages[0]["id"]
    assert citation["paragraph"] == passages[0]["sources"][0]["paragraph"]
    assert citation["also_in"] == []
    quote = texts[citation["file"]][citation["char_start"] : citation["char_end"]]
    assert quote == citation["quote"] == answer["answer"]
    assert set(answer["timings_ms"]) == {"retrieve", "total"}


def test_ask_ranks_as_the_ensemble_retriever_does(demo_baseline: LangChainBaseline) -> None:
    assert demo_baseline.ensemble is not None
    for question in QUESTIONS:
        answer = demo_baseline.ask(question, top_k=5)
        # ask() left each retriever's k where the ensemble's own invoke() will use it.
        fused = demo_baseline.ensemble.invoke(question)[:5]
        assert [p["text"] for p in answer["passages"]] == [d.page_content for d in fused]


def test_scores_are_the_ensembles_weighted_reciprocal_ranks(
    demo_baseline: LangChainBaseline,
) -> None:
    assert demo_baseline.bm25 is not None and demo_baseline.dense is not None
    for question in QUESTIONS:
        answer = demo_baseline.ask(question, top_k=5)
        lists = [demo_baseline.bm25.invoke(question), demo_baseline.dense.invoke(question)]
        for passage in answer["passages"]:
            # Keyed by text: the copies of a repeated chunk (seed 004) pool their credit.
            expected = sum(
                0.5 / (rank + 60)
                for documents in lists
                for rank, document in enumerate(documents, start=1)
                if document.page_content == passage["text"]
            )
            assert passage["score"] == pytest.approx(expected, abs=1e-6)


@pytest.fixture
def distinct_demo(tmp_path: Path) -> Path:
    """The demo corpus less seed 004, whose repeated chunks would pool fused scores."""
    target = tmp_path / "demo"
    target.mkdir()
    for path in sorted(DEMO.glob("*.txt"))[:4]:
        shutil.copy(path, target / path.name)
    return target


def test_bm25_finds_what_the_dense_side_cannot(distinct_demo: Path) -> None:
    # The dense side sees a text of another article instead: only BM25 can find 梅克保.
    elsewhere = (distinct_demo / "002_7624235b4c0c48e9.txt").read_text(encoding="utf-8")[:300]
    baseline = LangChainBaseline(AliasEmbedder({"梅克保": elsewhere}), top_k_candidates=2)
    baseline.ingest([distinct_demo])
    answer = baseline.ask("梅克保", top_k=2)
    assert baseline.dense is not None
    assert not any("梅克保" in d.page_content for d in baseline.dense.invoke("梅克保"))
    assert any("梅克保" in p["text"] for p in answer["passages"])


def test_dense_finds_what_bm25_cannot(
    demo_baseline: LangChainBaseline, distinct_demo: Path
) -> None:
    target = demo_baseline.chunks[0]
    # No jieba token of the question is in the corpus, so BM25 scores every chunk 0 and lists
    # the last ones; the dense side sees the target's own text. Two candidates a side, so
    # that no chunk gets credit from both lists and outranks the dense side's first.
    baseline = LangChainBaseline(AliasEmbedder({"ZZZZ": target.text}), top_k_candidates=2)
    baseline.ingest([distinct_demo])
    assert baseline.bm25 is not None
    baseline.bm25.k = baseline.top_k_candidates
    assert target.text not in [d.page_content for d in baseline.bm25.invoke("ZZZZ")]
    answer = baseline.ask("ZZZZ", top_k=2)
    assert target.id in [p["id"] for p in answer["passages"]]


# -- ingest reports, persistence, failures ----------------------------------------------


def test_rebuilding_bm25_per_query_as_chatchat_does_ranks_alike(
    demo_baseline: LangChainBaseline,
) -> None:
    question = "质检总局局长是谁？"
    cached = strip_timings(demo_baseline.ask(question))
    demo_baseline.bm25_per_query = True
    try:
        rebuilt = strip_timings(demo_baseline.ask(question))
    finally:
        demo_baseline.bm25_per_query = False
    assert rebuilt == cached


def test_unreadable_file_is_skipped_and_counted(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("好的文件。", encoding="utf-8")
    (tmp_path / "empty.txt").write_bytes(b"")
    baseline = LangChainBaseline(HashEmbedder())
    report = baseline.ingest([tmp_path])
    assert (report.files, report.chunks) == (1, 1)
    assert [(Path(s.path).name, s.reason) for s in report.skipped] == [("empty.txt", "empty file")]
    assert report.seconds >= report.embed_seconds > 0
    assert baseline.chunks[0].file == "good.txt"


def test_nothing_to_index_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(ValueError, match="no text to index"):
        LangChainBaseline(HashEmbedder()).ingest([tmp_path])


def test_batched_ingest_reports_progress_and_indexes_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(5):
        (tmp_path / f"{n}.txt").write_text(f"第{n}个文件讲第{n}件事。", encoding="utf-8")
    whole = LangChainBaseline(HashEmbedder())
    whole.ingest([tmp_path])
    monkeypatch.setattr(langchain_chatchat, "INGEST_BATCH", 2)
    seen: list[tuple[int, int]] = []
    batched = LangChainBaseline(HashEmbedder())
    batched.ingest([tmp_path], on_progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 5), (4, 5), (5, 5)]
    for question in ("第3件事", "第0个文件"):
        assert strip_timings(batched.ask(question)) == strip_timings(whole.ask(question))


def test_save_load_answers_alike_without_re_embedding(
    demo_baseline: LangChainBaseline, tmp_path: Path
) -> None:
    before = [strip_timings(demo_baseline.ask(q)) for q in QUESTIONS]
    demo_baseline.save(tmp_path / "baseline")
    embedder = HashEmbedder()
    loaded = LangChainBaseline.load(tmp_path / "baseline", embedder)
    assert loaded.chunks == demo_baseline.chunks
    after = [strip_timings(loaded.ask(q)) for q in QUESTIONS]
    assert after == before
    assert embedder.texts_embedded == len(QUESTIONS)  # the questions only


def test_load_refuses_another_embedder(demo_baseline: LangChainBaseline, tmp_path: Path) -> None:
    demo_baseline.save(tmp_path / "baseline")

    class Other(HashEmbedder):
        name = "other"

    with pytest.raises(ValueError, match="fake-hash"):
        LangChainBaseline.load(tmp_path / "baseline", Other())


def test_missing_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "langchain_classic.retrievers", None)
    monkeypatch.delitem(sys.modules, "eval.baselines.langchain_chatchat")
    with pytest.raises(ImportError, match=r"pip install '\.\[baseline\]'"):
        importlib.import_module("eval.baselines.langchain_chatchat")


@pytest.mark.slow
def test_real_model_finds_the_director(e5: Embedder) -> None:
    baseline = LangChainBaseline(e5)
    baseline.ingest([DEMO])
    answer = baseline.ask("质检总局局长是谁？")
    assert "支树平" in answer["passages"][0]["text"]
    assert answer["answer"] == answer["passages"][0]["text"]
