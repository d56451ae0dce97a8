"""Contract tests of the storage protocols: every implementation passes the same suite.

A new backend is proven by adding its factory to the parameter lists below (one line each).
Milvus runs for real, on a Milvus Lite file per test; its vector and lexical indexes are
views of its passage store, so they are built by storing passages.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from rag.ingest.chunk import chunk_document
from rag.ingest.clean import clean_paragraphs
from rag.ingest.paragraphs import RawParagraph
from rag.store.base import LexicalIndex, PassageStore, VectorIndex
from rag.store.factory import BACKENDS
from rag.store.faiss import FaissVectorIndex
from rag.store.location import Location
from rag.store.placement import read_placement
from rag.text.identity import content_hash
from rag.text.offsets import MappedText
from rag.types import Document, Source, SourceText
from tests.milvus import MILVUS_MISSING, lite_location, store_passages

DIM = 8

BuildVectors = Callable[[Path, int, Sequence[int], np.ndarray], VectorIndex]
BuildLexical = Callable[[Path, Sequence[int], Sequence[list[str]]], LexicalIndex]


def _milvus_vectors(tmp: Path, dim: int, ids: Sequence[int], vectors: np.ndarray) -> VectorIndex:
    from rag.store.milvus_search import MilvusVectorIndex

    return MilvusVectorIndex(store_passages(tmp, dim, ids, vectors, [[] for _ in ids]))


def _milvus_lexical(tmp: Path, ids: Sequence[int], tokens: Sequence[list[str]]) -> LexicalIndex:
    from rag.store.milvus_search import MilvusLexicalIndex

    vectors = np.ones((len(ids), DIM), dtype=np.float32) / np.sqrt(DIM)
    return MilvusLexicalIndex(store_passages(tmp, DIM, ids, vectors, tokens))


VECTOR_INDEXES: dict[str, BuildVectors] = {
    name: (lambda _tmp, dim, ids, v, build=backend.build_vectors: build(dim, ids, v))
    for name, backend in BACKENDS.items()
    if backend.build_vectors is not None
} | {"milvus": _milvus_vectors}
# The local backend's approximate index, held to the same contract from its first vector.
VECTOR_INDEXES["local-ivf"] = lambda _tmp, dim, ids, v: FaissVectorIndex.build(
    dim, ids, v, approximate_from=1
)
LEXICAL_INDEXES: dict[str, BuildLexical] = {
    name: (lambda _tmp, ids, tokens, build=backend.build_lexical: build(ids, tokens))
    for name, backend in BACKENDS.items()
    if backend.build_lexical is not None
} | {"milvus": _milvus_lexical}


def backend_param(name: str) -> object:
    marks = [pytest.mark.skipif(MILVUS_MISSING is not None, reason=str(MILVUS_MISSING))]
    return pytest.param(name, marks=marks if name == "milvus" else [])


def location(name: str, tmp_path: Path) -> Location:
    return lite_location(tmp_path) if name == "milvus" else Location.local(tmp_path)


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


# -- vector index -----------------------------------------------------------------------------


@pytest.fixture(params=[backend_param(n) for n in VECTOR_INDEXES])
def vectors(request: pytest.FixtureRequest, tmp_path: Path) -> VectorIndex:
    build = VECTOR_INDEXES[request.param]
    return build(tmp_path, DIM, [10, 20, 30], np.stack([unit(1), unit(2), unit(3)]))


def test_a_vector_index_finds_a_stored_vector_first_with_cosine_one(vectors: VectorIndex) -> None:
    assert len(vectors) == 3 and vectors.dim == DIM
    [(pid, score), *_] = vectors.search(unit(2), 3)
    assert pid == 20 and score == pytest.approx(1.0, abs=1e-5)
    assert len(vectors.search(unit(2), 10)) == 3


def test_a_vector_index_scores_given_ids_and_skips_unknown_ones(vectors: VectorIndex) -> None:
    sims = vectors.similarities(unit(1), [10, 30, 99])
    assert set(sims) == {10, 30}
    assert sims[10] == pytest.approx(1.0, abs=1e-5)
    assert sims[30] == pytest.approx(float(unit(1) @ unit(3)), abs=1e-5)


def test_a_vector_index_adds_removes_and_returns_what_it_holds(vectors: VectorIndex) -> None:
    vectors.add([40], unit(4)[None, :])
    vectors.remove([10])
    assert sorted(int(i) for i in vectors.ids()) == [20, 30, 40]
    assert np.allclose(vectors.vectors([40, 20]), np.stack([unit(4), unit(2)]), atol=1e-6)
    assert 10 not in {p for p, _ in vectors.search(unit(1), 10)}


def test_a_vector_index_replaces_a_held_vector_and_keeps_one_per_id(
    vectors: VectorIndex,
) -> None:
    vectors.replace([20], unit(4)[None, :])
    assert sorted(int(i) for i in vectors.ids()) == [10, 20, 30]
    assert np.allclose(vectors.vectors([20]), unit(4)[None, :], atol=1e-6)
    assert [p for p, _ in vectors.search(unit(4), 3)].count(20) == 1


def test_a_vector_index_copy_is_independent(vectors: VectorIndex) -> None:
    working = vectors.copy()
    if working is vectors:
        return  # a server-side index: the protocol lets its copy be itself
    working.add([40], unit(4)[None, :])
    working.remove([20])
    assert sorted(int(i) for i in vectors.ids()) == [10, 20, 30]
    assert sorted(int(i) for i in working.ids()) == [10, 30, 40]


def test_a_vector_index_refuses_vectors_of_the_wrong_width(vectors: VectorIndex) -> None:
    with pytest.raises(ValueError):
        vectors.add([50], np.ones((1, DIM + 1), dtype=np.float32))


@pytest.mark.parametrize("name", [backend_param(n) for n in VECTOR_INDEXES])
def test_an_empty_vector_index_finds_nothing(name: str, tmp_path: Path) -> None:
    empty = VECTOR_INDEXES[name](tmp_path, DIM, [], np.zeros((0, DIM), dtype=np.float32))
    assert len(empty) == 0 and empty.search(unit(1), 5) == []


# -- lexical index ----------------------------------------------------------------------------

TOKENS = {7: ["质量", "检测"], 8: ["安全", "监督", "安全"], 9: ["质量", "提升", "活动"]}


@pytest.fixture(params=[backend_param(n) for n in LEXICAL_INDEXES])
def lexical(request: pytest.FixtureRequest, tmp_path: Path) -> LexicalIndex:
    return LEXICAL_INDEXES[request.param](tmp_path, list(TOKENS), list(TOKENS.values()))


def test_a_lexical_index_ranks_passages_holding_the_query_terms(lexical: LexicalIndex) -> None:
    assert len(lexical) == 3 and lexical.matrix_rows == 3
    assert sorted(int(i) for i in lexical.ids) == [7, 8, 9]
    top = lexical.search(["安全"], 3)
    assert [pid for pid, _ in top] == [8] and top[0][1] > 0
    assert {pid for pid, _ in lexical.search(["质量"], 3)} == {7, 9}


def test_a_lexical_index_scores_given_ids_from_one_query(lexical: LexicalIndex) -> None:
    scores = lexical.scores(["质量", "提升"])
    both = lexical.score_of(scores, [7, 9, 99])
    assert set(both) <= {7, 9} and both[9] > both.get(7, 0.0)
    assert lexical.top(scores, 1)[0][0] == 9


def test_a_lexical_index_knows_nothing_of_unknown_terms(lexical: LexicalIndex) -> None:
    assert lexical.search(["不存在"], 3) == []
    assert lexical.score_of(lexical.scores(["不存在"]), [7]) == {}


def test_a_lexical_index_weighs_rare_and_unseen_terms_more(lexical: LexicalIndex) -> None:
    idf = lexical.idf(["质量", "安全", "不存在"])
    assert idf["不存在"] > idf["安全"] > idf["质量"] > 0


# -- passage store ----------------------------------------------------------------------------


def document(path: str, lines: list[str]) -> Document:
    text = "\n".join(lines)
    raw, start = [], 0
    for i, line in enumerate(lines):
        raw.append(RawParagraph(i + 1, MappedText.from_source(line, start), i + 1, i + 1, page=2))
        start += len(line) + 1
    source = SourceText(path, text, "utf-8", "text")
    return Document(source, tuple(clean_paragraphs(raw, path)), f"hash-{path}")


@pytest.fixture(params=[backend_param(n) for n in BACKENDS])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PassageStore]:
    backend = BACKENDS[request.param]
    where = location(request.param, tmp_path)
    assert not backend.store_exists(where)
    backend.create_store(where, {"embedder": "test", "dim": str(DIM), "tokenizer": "bigram"})
    assert backend.store_exists(where)
    opened = backend.open_store(where, False)
    assert opened.get_meta("embedder") == "test"
    yield opened
    opened.close()


def add(store: PassageStore, file: str, lines: list[str]) -> list[int]:
    doc = document(file, lines)
    ids: list[int] = []
    with store.transaction():
        doc_id = store.insert_document(file, doc)
        for chunk in chunk_document(doc, 400):
            digest = content_hash(chunk.text)
            pid = store.passage_id_by_hash(digest)
            if pid is None:
                vector = unit(len(ids))
                pid = store.insert_passage(chunk.text, chunk.text, digest, b"sig", vector)
            store.insert_source(pid, doc_id, chunk.source)
            ids.append(pid)
        store.bump_generation()
    return ids


def test_a_store_keeps_documents_passages_and_every_source(store: PassageStore) -> None:
    a = add(store, "a.txt", ["质量是基础。", "安全是底线。"])
    b = add(store, "b.txt", ["安全是底线。"])
    assert b == [a[1]]  # the same passage, a second source
    assert store.generation() == 2
    assert [d.file for d in store.documents()] == ["a.txt", "b.txt"]
    found = store.find_document("a.txt")
    assert found is not None and found.paragraphs == 2 and found.passages == 2
    passages = store.passages(a)
    shared = passages[a[1]]
    assert [s.file for s in shared.sources] == ["a.txt", "b.txt"]
    first = shared.sources[0]
    assert (first.paragraph, first.line_start, first.page, first.sheet) == (2, 2, 2, None)
    assert store.document_text("a.txt") == "质量是基础。\n安全是底线。"
    assert {store.count(t) for t in ("documents", "passages")} == {2}


def test_a_store_keeps_where_a_sources_lines_break(store: PassageStore) -> None:
    """A passage of a wrapped paragraph spans lines: a quote of it is placed on its own."""
    text = "质量是基础，\n安全是底线，\n发展是目标。"
    raw = [RawParagraph(1, MappedText.from_source(text), 1, 3)]
    doc = Document(
        SourceText("w.txt", text, "utf-8", "text"), tuple(clean_paragraphs(raw, "w.txt")), "h"
    )
    (chunk,) = chunk_document(doc, 400)
    assert chunk.source.line_breaks == (7, 14)
    with store.transaction():
        doc_id = store.insert_document("w.txt", doc)
        pid = store.insert_passage(chunk.text, chunk.text, chunk.text, b"sig", unit(0))
        store.insert_source(pid, doc_id, chunk.source)

    (source,) = store.passages([pid])[pid].sources

    assert source.line_breaks == (7, 14)
    assert source.lines_of(7, 13) == (2, 2)  # 安全是底线，
    assert source.lines_of(0, 20) == (1, 3)


def test_a_source_stored_before_line_breaks_were_kept_reads_with_its_own_lines() -> None:
    stored = MappedText.from_source("质量是基础").offset_map().to_json()  # as it was written
    offsets, breaks = read_placement(json.dumps(stored))
    old = Source("a.txt", 1, 1, 3, 0, 20, "质量是基础", offsets, line_breaks=breaks)

    assert breaks == () and offsets is not None
    assert old.lines_of(7, 13) == (1, 3)  # unknown: the whole span's lines
    assert read_placement("null") == (None, ())


def test_a_store_removes_a_document_and_the_passages_only_it_held(store: PassageStore) -> None:
    a = add(store, "a.txt", ["质量是基础。", "安全是底线。"])
    add(store, "b.txt", ["安全是底线。"])
    found = store.find_document("a.txt")
    assert found is not None
    with store.transaction():
        orphans = store.delete_document(found.id)
    assert orphans == [a[0]]
    assert set(store.passages(a)) == {a[1]}
    assert store.find_document("a.txt") is None
    assert store.integrity_problems(DIM) == []


def test_a_store_reads_paragraphs_with_their_neighbours(store: PassageStore) -> None:
    add(store, "a.txt", ["一段。", "二段。", "三段。"])
    found = store.find_document("a.txt")
    assert found is not None
    before, row, after = store.paragraph_context(found.id, 2, 1)
    assert row is not None and row.text == "二段。" and row.page == 2
    assert [r.number for r in before] == [1] and [r.number for r in after] == [3]


def test_a_store_rolls_a_failed_transaction_back(store: PassageStore) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.insert_document("a.txt", document("a.txt", ["一段。"]))
        raise RuntimeError("boom")
    assert store.documents() == [] and store.generation() == 0


def test_a_store_gives_what_the_caches_are_rebuilt_from(store: PassageStore) -> None:
    ids = add(store, "a.txt", ["质量是基础。", "安全是底线。"])
    rows = list(store.iter_passages())
    assert sorted(r.id for r in rows) == sorted(ids)
    assert set(store.vectors_by_id()) == set(ids)
    assert store.folded_texts()[0] == sorted(ids)


def test_a_store_gives_the_content_hashes_of_the_passages_a_document_holds(
    store: PassageStore,
) -> None:
    add(store, "a.txt", ["质量是基础。", "安全是底线。"])
    add(store, "b.txt", ["安全是底线。", "发展是目标。"])
    a, b = store.find_document("a.txt"), store.find_document("b.txt")
    assert a is not None and b is not None
    # A shared passage is held by both documents; each has only its own besides.
    assert store.document_hashes(a.id) == {
        content_hash("质量是基础。"),
        content_hash("安全是底线。"),
    }
    assert store.document_hashes(b.id) == {
        content_hash("安全是底线。"),
        content_hash("发展是目标。"),
    }
    assert store.document_hashes(b.id + 1) == set()


def test_a_store_records_a_new_tokenizer_with_its_passages_tokens_at_once(
    store: PassageStore,
) -> None:
    # Korean: bigram reads no token of it, bigram2 does; Milvus keeps each passage's tokens.
    add(store, "a.txt", ["서울특별시청은 서울시 중구에 있다.", "质量是基础。"])
    generation = store.generation()

    assert store.replace_tokens("bigram2") == generation + 1

    assert (store.get_meta("tokenizer"), store.generation()) == ("bigram2", generation + 1)
    assert store.integrity_problems(DIM) == []  # Milvus: every passage's bigram2 tokens
    assert len(list(store.iter_passages())) == 2
