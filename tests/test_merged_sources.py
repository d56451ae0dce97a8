"""A merged passage that loses its first source: what it stores follows the text it shows.

A near duplicate is stored once, with the text, content hash, MinHash signature, vector and
lexical text of its first source. When that source goes (its file removed, or changed so
that it no longer holds the text), the passage shows its next source's text, and everything
else stored for it must be that text's too: the passage reads as if the remaining file had
been ingested alone. Otherwise its vector embeds text no longer stored, its words are not
found, and its old hash makes the removed text an "exact" duplicate of text it is not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from embeddings.base import Embedder
from rag.index.check import check_index
from rag.pipeline import Pipeline, open_pipeline
from rag.settings import Settings
from rag.store.factory import BACKENDS
from rag.store.location import location_from_settings
from rag.store.sqlite import SQLiteStore
from rag.text.identity import content_hash
from rag.text.script import fold_script
from tests.conftest import run_rag
from tests.fakes import HashEmbedder
from tests.milvus import MILVUS_MISSING

# One paragraph (A) and a near duplicate of it (X) that says 鲸鱼 where A says 质量: the
# words only X holds are how a reader would look for it.
A = (
    "国家质检总局今天召开全国质量工作会议，要求各地进一步加强产品质量监督抽查，"
    "完善质量安全风险监测，严厉打击制售假冒伪劣产品的违法行为，切实保障消费者权益。"
)
X = A.replace("全国质量工作会议", "全国鲸鱼工作会议")
NEW_WORDS = "鲸鱼"
# Y and two near duplicates of it too far apart to merge with each other (the MinHash
# outcomes the two merge tests rest on: each checks them as its premise).
Y = "各地要进一步加强产品质量监督抽查，完善风险监测，严厉打击制售假冒伪劣产品的违法行为。"
Y1, Y2 = Y[:1] + "甲" + Y[2:], Y[:11] + "乙" + Y[12:]

BACKEND_PARAMS = [
    pytest.param(
        b,
        marks=pytest.mark.skipif(
            b == "milvus" and MILVUS_MISSING is not None, reason=str(MILVUS_MISSING)
        ),
    )
    for b in BACKENDS
]


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text + "\n", encoding="utf-8")
    return path


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def opened(directory: Path, backend: str) -> Pipeline:
    return open_pipeline(
        Settings(index_dir=directory, backend=backend, dense_floor=0.0), HashEmbedder()
    )


@pytest.fixture
def index(tmp_path: Path, backend: str) -> Iterator[Pipeline]:
    """a.txt holds A, then b.txt its near duplicate X: one passage showing A."""
    pipeline = opened(tmp_path / "index", backend)
    pipeline.ingest([write(tmp_path / "a", "a.txt", A)])
    report = pipeline.ingest([write(tmp_path / "b", "b.txt", X)])
    assert report.near_duplicates == 1  # the premise: X is merged into A's passage
    yield pipeline
    pipeline.close()


def stored(pipeline: Pipeline) -> list[tuple[str, str, str, bytes, bytes]]:
    """Every passage as stored, without its id: text, hash, folded text, signature, vector."""
    store = pipeline._index.store
    hashes = store.passage_hashes()  # type: ignore[attr-defined]
    rows = {r.id: r for r in store.iter_passages()}
    texts = {pid: p.text for pid, p in store.passages(list(rows)).items()}
    return sorted(
        (texts[pid], hashes[pid], r.folded, r.signature, r.vector) for pid, r in rows.items()
    )


def alone(tmp_path: Path, backend: str, text: str) -> list[tuple[str, str, str, bytes, bytes]]:
    pipeline = opened(tmp_path / "alone", backend)
    try:
        pipeline.ingest([write(tmp_path / "alone-docs", "b.txt", text)])
        return stored(pipeline)
    finally:
        pipeline.close()


def found_by_words(pipeline: Pipeline, words: str) -> bool:
    _, lexical, _ = pipeline.candidates(words, 5)
    return bool(lexical)


def test_removing_the_first_source_stores_the_passage_as_its_remaining_source_alone(
    index: Pipeline, tmp_path: Path, backend: str
) -> None:
    assert not found_by_words(index, NEW_WORDS)  # the passage holds A's words so far

    assert index.remove("a.txt")

    ((text, digest, folded, signature, vector),) = stored(index)
    assert text == X
    assert [(text, digest, folded, signature, vector)] == alone(tmp_path, backend, X)
    expected = HashEmbedder().embed([fold_script(X)], kind="passage")[0]
    assert np.array_equal(np.frombuffer(vector, np.float32), expected)
    assert found_by_words(index, NEW_WORDS)
    report = check_index(location_from_settings(index.settings))
    assert report.ok and not report.stale, report.problems


def test_a_file_changed_to_drop_the_first_source_leaves_the_passage_as_the_remaining_one(
    index: Pipeline, tmp_path: Path, backend: str
) -> None:
    report = index.ingest([write(tmp_path / "a", "a.txt", "甲方负责后勤保障和车辆调度。")])

    assert report.new_passages == 1
    passages = [row for row in stored(index) if row[0] == X]
    assert passages == alone(tmp_path, backend, X)
    assert found_by_words(index, NEW_WORDS)


def test_the_removed_text_ingested_again_is_a_near_duplicate_of_the_text_now_stored(
    index: Pipeline, tmp_path: Path
) -> None:
    # With A's hash left on the passage showing X, A came back as an "exact" duplicate.
    index.remove("a.txt")

    report = index.ingest([write(tmp_path / "a", "a.txt", A)])

    assert (report.exact_duplicates, report.near_duplicates, report.new_passages) == (0, 1, 0)
    (passage,) = index.search(A, 1).passages
    assert passage.passage.text == X
    assert [s.file for s in passage.passage.sources] == ["b.txt", "a.txt"]


def test_rag_docs_rm_loads_the_model_to_embed_the_text_a_merged_passage_shows_now(
    tmp_path: Path, e5: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `rag docs rm` opens the index without a model; it loads the index's when asked.
    directory = tmp_path / "index"
    pipeline = open_pipeline(Settings(index_dir=directory), e5)
    pipeline.ingest([write(tmp_path / "a", "a.txt", A)])
    pipeline.ingest([write(tmp_path / "b", "b.txt", X)])
    pipeline.close()

    assert run_rag(monkeypatch, "docs", "rm", "a.txt", "--index", str(directory)) == 0

    pipeline = open_pipeline(Settings(index_dir=directory), e5)
    try:
        ((text, _, folded, _, vector),) = stored(pipeline)
    finally:
        pipeline.close()
    assert (text, folded) == (X, fold_script(X))
    expected = e5.embed([fold_script(X)], kind="passage")[0]
    assert float(np.frombuffer(vector, np.float32) @ expected) == pytest.approx(1.0, abs=1e-4)


def test_a_text_merged_into_two_passages_is_one_once_it_is_what_both_show(
    tmp_path: Path, backend: str
) -> None:
    # Y's near duplicates Y1 (a.txt) and Y2 (q.txt) are too far apart to merge. b.txt's Y
    # joins Y1's passage, the only one then; c.txt's Y joins Y2's, the closer one later.
    # With both first sources gone, both passages show Y: they are one passage, with one
    # hash (two passages could not share it).
    pipeline = opened(tmp_path / "index", backend)
    try:
        reports = [
            pipeline.ingest([write(tmp_path / name, f"{name}.txt", text)])
            for name, text in (("a", Y1), ("b", Y), ("q", Y2), ("c", Y))
        ]
        assert [r.new_passages for r in reports] == [1, 0, 1, 0]  # the premise

        assert pipeline.remove("a.txt") and pipeline.remove("q.txt")

        ((text, digest, _, _, _),) = stored(pipeline)
        assert (text, digest) == (Y, content_hash(Y))
        (passage,) = pipeline.search(Y, 5).passages
        assert [s.file for s in passage.passage.sources] == ["b.txt", "c.txt"]
        assert len(pipeline) == 1
        report = check_index(location_from_settings(pipeline.settings))
        assert report.ok and not report.stale, report.problems
    finally:
        pipeline.close()


def test_rag_check_reports_a_passage_whose_hash_is_not_its_texts_and_reread_mends_it(
    index: Pipeline, tmp_path: Path, backend: str
) -> None:
    # What a removal left before passages followed their text: `rag check` said nothing.
    index.remove("a.txt")
    store = index._index.store
    (pid,) = store.passage_hashes()  # type: ignore[attr-defined]
    stale = content_hash(A)
    if isinstance(store, SQLiteStore):
        store._db.execute("UPDATE passages SET hash = ? WHERE id = ?", (stale, pid))
    else:
        store.client.upsert(  # type: ignore[attr-defined]
            store.names["passages"],  # type: ignore[attr-defined]
            [{"id": pid, "hash": stale}],
            partial_update=True,
        )

    location = location_from_settings(index.settings)

    assert check_index(location).problems == [
        f"passages whose content hash is not their text's: {pid}"
    ]
    index.ingest([tmp_path / "b"], reread=True)  # what the README says to do
    assert check_index(location).ok
    assert stored(index) == alone(tmp_path, backend, X)


def test_an_exact_duplicate_with_other_punctuation_is_stored_as_its_own_text_once_first(
    tmp_path: Path, backend: str
) -> None:
    # `content_hash` ignores punctuation and white space; the folded text, so the lexical
    # terms (a comma ends a bigram run) and the vector, does not. a.txt's copy has no commas.
    bare = A.replace("，", "")
    assert content_hash(bare) == content_hash(A) and fold_script(bare) != fold_script(A)
    pipeline = opened(tmp_path / "index", backend)
    try:
        pipeline.ingest([write(tmp_path / "a", "a.txt", bare)])
        report = pipeline.ingest([write(tmp_path / "b", "b.txt", A)])
        assert report.exact_duplicates == 1  # the premise: one passage, showing a.txt's

        assert pipeline.remove("a.txt")

        assert stored(pipeline) == alone(tmp_path, backend, A)
        assert not found_by_words(pipeline, "议要")  # a bigram of the comma-less copy only
        check = check_index(location_from_settings(pipeline.settings))
        assert check.ok and not check.stale, check.problems
    finally:
        pipeline.close()


def test_a_document_holding_both_of_two_merged_passages_counts_one_passage(
    tmp_path: Path, backend: str
) -> None:
    # As above, Y's passages merge once a.txt and q.txt go; m.txt, ingested last, holds an
    # exact copy of each (Y1 and Y2), so it held two passages and holds one after the merge.
    pipeline = opened(tmp_path / "index", backend)
    try:
        for name, text in (("a", Y1), ("b", Y), ("q", Y2), ("c", Y), ("m", f"{Y1}\n\n{Y2}")):
            pipeline.ingest([write(tmp_path / name, f"{name}.txt", text)])
        assert {d.file: d.passages for d in pipeline.documents()}["m.txt"] == 2  # the premise

        assert pipeline.remove("a.txt") and pipeline.remove("q.txt")

        assert len(pipeline) == 1
        counts = {d.file: d.passages for d in pipeline.documents()}
        assert counts == {"b.txt": 1, "c.txt": 1, "m.txt": 1}
        report = check_index(location_from_settings(pipeline.settings))
        assert report.ok and not report.stale, report.problems
    finally:
        pipeline.close()


@pytest.mark.skipif(MILVUS_MISSING is not None, reason=str(MILVUS_MISSING))
def test_rag_check_reports_a_milvus_passage_count_its_sources_disagree_with(
    tmp_path: Path,
) -> None:
    # What a merge left before it lowered the count (SQLite counts, so only Milvus can).
    pipeline = opened(tmp_path / "index", "milvus")
    try:
        pipeline.ingest([write(tmp_path / "a", "a.txt", A)])
        pipeline.ingest([write(tmp_path / "b", "b.txt", X)])
        store = pipeline._index.store
        (doc,) = [d for d in pipeline.documents() if d.file == "b.txt"]
        store.client.upsert(  # type: ignore[attr-defined]
            store.names["documents"],  # type: ignore[attr-defined]
            [{"id": doc.id, "passages": 2}],
            partial_update=True,
        )
        location = location_from_settings(pipeline.settings)

        assert check_index(location).problems == [
            "documents whose passage count disagrees with their sources: b.txt"
        ]
        pipeline.ingest([tmp_path / "b"], reread=True)  # what the README says to do
        assert check_index(location).ok
        assert {d.file: d.passages for d in pipeline.documents()} == {"a.txt": 1, "b.txt": 1}
    finally:
        pipeline.close()


def test_a_file_edited_only_in_punctuation_stores_the_vector_of_its_new_text(
    tmp_path: Path, backend: str
) -> None:
    # The previous version's vectors are reused for passages of the same text; the content
    # hash ignores punctuation, and the vector (of the folded text) does not.
    pipeline = opened(tmp_path / "index", backend)
    try:
        pipeline.ingest([write(tmp_path / "a", "a.txt", A)])

        pipeline.ingest([write(tmp_path / "a", "a.txt", A.replace("，", ""))])

        assert stored(pipeline) == alone(tmp_path, backend, A.replace("，", ""))
    finally:
        pipeline.close()
