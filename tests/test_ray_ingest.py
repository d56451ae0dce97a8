"""Distributed ingestion on Ray: the same index as a local ingest, on a real two-node cluster.

The cluster is two `ray start` nodes of one CPU each on this machine (bench.ray_cluster):
separate raylets, object stores and workers, stopped (every process) after the module.
The parts without Ray (the actor plan, first occurrences, the writer half of the pipeline
with vectors embedded ahead) are tested first, without a cluster.
"""

from __future__ import annotations

import functools
import gc
import json
import os
import shutil
import subprocess
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.ray_cluster import local_cluster
from bench.service import RAG
from cli.documents import RAY_DEFAULT, ray_argv
from embeddings.base import Embedder, Kind, Vectors
from embeddings.factory import make_embedder
from rag.distributed.ray_ingest import (
    FirstOccurrences,
    connect,
    disconnect,
    ingest_on_ray,
    plan_actors,
)
from rag.index.config import IndexMismatchError
from rag.pipeline import (
    IngestReport,
    Pipeline,
    load_options,
    open_pipeline,
    prepare_file,
    walk_files,
)
from rag.settings import Settings
from rag.store.sqlite import STORE_FILE, SQLiteStore
from rag.text.script import fold_script
from rag.wire import answer_payload
from tests.conftest import DEMO, seed_questions
from tests.fakes import HashEmbedder

# -- without a cluster -------------------------------------------------------------------


def test_one_actor_per_node_by_default_and_room_left_for_parsing() -> None:
    settings = Settings(ray_actor_cpus=0.5, ray_parse_cpus=0.5)
    plan = plan_actors(settings, {"CPU": 2.0}, nodes=2)
    assert (plan.actors, plan.cpus, plan.gpus) == (2, 0.5, 0.0)


def test_an_actor_pool_that_would_starve_the_parse_tasks_is_refused() -> None:
    with pytest.raises(ValueError, match="RAG_RAY_ACTOR_CPUS"):
        plan_actors(Settings(ray_actor_cpus=1.0), {"CPU": 2.0}, nodes=2)


def test_gpu_actors_one_per_gpu_share_and_refused_without_gpus() -> None:
    settings = Settings(ray_actor_gpus=0.5)
    assert plan_actors(settings, {"CPU": 8.0, "GPU": 2.0}, nodes=2).actors == 4
    with pytest.raises(ValueError, match="GPU"):
        plan_actors(Settings(ray_actors=2, ray_actor_gpus=1), {"CPU": 8.0}, nodes=2)


def test_the_first_file_in_order_holding_a_passage_embeds_it_whoever_asks_first() -> None:
    first = FirstOccurrences()
    # File 3 asks before file 1: both are told they are first (3 only wastes a vector) ...
    assert first.claim([(3, ["a", "b"])]) == [[True, True]]
    assert first.claim([(1, ["b", "c"])]) == [[True, True]]
    # ... but once file 1 holds "b", later files are not, in whatever order they ask.
    assert first.claim([(5, ["b", "c"]), (2, ["c", "d"])]) == [[False, False], [False, True]]


def test_ray_without_an_address_means_rays_default() -> None:
    assert ray_argv(["ingest", "docs", "--ray"]) == ["ingest", "docs", "--ray", RAY_DEFAULT]
    assert ray_argv(["ingest", "docs", "--ray", "--index", "i"])[3] == RAY_DEFAULT
    # A path after it is one to ingest, not an address.
    assert ray_argv(["ingest", "--ray", str(DEMO)]) == ["ingest", "--ray", RAY_DEFAULT, str(DEMO)]
    assert ray_argv(["ingest", "docs", "--ray", "10.0.0.1:6379"]) == [
        "ingest",
        "docs",
        "--ray",
        "10.0.0.1:6379",
    ]


def test_disconnecting_frees_what_reference_cycles_hold_before_ray_shuts_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Freed during the shutdown, a Ray reference in a cycle would end the whole process.
    ray = pytest.importorskip("ray", reason="the 'ray' extra is not installed")

    class Holder:
        pass

    held = Holder()
    held.me = held  # type: ignore[attr-defined]
    alive = weakref.ref(held)
    del held
    freed_at_shutdown = []
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "shutdown", lambda: freed_at_shutdown.append(alive() is None))
    gc.disable()  # no collection by chance in between
    try:
        disconnect()
    finally:
        gc.enable()
    assert freed_at_shutdown == [True]


class CountingEmbedder(Embedder):
    """Another embedder, counting the passages it is asked for (the driver's share)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name, self.dim = inner.name, inner.dim
        self.passages = 0

    def embed_batch(self, texts: Sequence[str], kind: Kind) -> Vectors:
        if kind == "passage":
            self.passages += len(texts)
        return self.inner.embed_batch(texts, kind)


def _prepared_with_vectors(folder: Path, settings: Settings, embedder: Embedder) -> list[Any]:
    """What the parse tasks and embedding actors hand the driver, made here."""
    items = []
    for path, key in walk_files([folder], lambda *_: None, lambda *_: None):
        item = prepare_file(path, key, load_options(settings), settings.chunk_size)
        texts = list(dict.fromkeys(fold_script(c.text) for c in item.chunks))
        vectors = embedder.embed(texts)
        ahead = dict(zip(texts, vectors, strict=True))
        items.append(replace(item, vectors=ahead, vector_space=embedder.name))
    return items


def test_the_writer_uses_vectors_embedded_ahead_and_embeds_only_what_is_missing(
    tmp_path: Path, demo_copy: Path
) -> None:
    settings = Settings(index_dir=tmp_path / "ahead", dense_floor=0.0)
    items = _prepared_with_vectors(demo_copy, settings, HashEmbedder())
    # The last file comes without its vectors: the writer embeds its new passages itself.
    items[-1] = replace(items[-1], vectors=None)
    driver, local_embedder = HashEmbedder(), HashEmbedder()
    local_settings = settings.model_copy(update={"index_dir": tmp_path / "local"})
    with (
        open_pipeline(settings, driver) as ahead,
        open_pipeline(local_settings, local_embedder) as local,
    ):
        report = ahead.ingest_prepared(items)
        expected = local.ingest([demo_copy])
        assert (report.files, report.chunks, report.new_passages) == (
            expected.files,
            expected.chunks,
            expected.new_passages,
        )
        assert ahead.passage_texts() == local.passage_texts()
        assert _vectors(ahead.directory) == _vectors(local.directory)
    assert 0 < driver.texts_embedded < local_embedder.texts_embedded


def test_vectors_embedded_ahead_in_another_space_are_refused_before_anything_is_written(
    tmp_path: Path, demo_copy: Path
) -> None:
    # A worker that ran another embedder of the same dimension: a GPU turns e5-small into
    # fp16 torch, the "e5-small" space, while a CPU index of int8 holds "e5-small-int8".
    settings = Settings(index_dir=tmp_path / "ahead")
    worker = HashEmbedder()
    worker.name = "another-space"
    items = _prepared_with_vectors(demo_copy, settings, worker)
    with open_pipeline(settings, HashEmbedder()) as pipeline:
        with pytest.raises(IndexMismatchError, match="another-space vectors, but the index"):
            pipeline.ingest_prepared(items)
        assert pipeline.counts()["passages"] == 0


def _vectors(directory: Path) -> dict[int, bytes]:
    store = SQLiteStore(directory / STORE_FILE, readonly=True)
    try:
        return store.vectors_by_id()
    finally:
        store.close()


# -- on a two-node cluster -------------------------------------------------------------

# One CPU per node: half for the embedding actor, half for a parse task beside it.
ACTOR_CPUS = PARSE_CPUS = 0.5
QUESTIONS = [str(q["question"]) for q in seed_questions()[:8]] or ["质检总局局长是谁？"]
# Each actor builds its own model from this (pickled by reference: a module-level function).
E5 = functools.partial(make_embedder, "e5-small")


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    pytest.importorskip("ray", reason="the 'ray' extra is not installed")
    with local_cluster(nodes=2, cpus_per_node=1) as running:
        yield running.address


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo corpus and a PDF that is not one."""
    folder = tmp_path_factory.mktemp("ray-corpus") / "docs"
    shutil.copytree(DEMO, folder)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7 cut short")
    return folder


@pytest.fixture(scope="module")
def local(
    e5: Embedder, corpus: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Pipeline, IngestReport]]:
    """The reference: the same files ingested locally."""
    settings = Settings(index_dir=tmp_path_factory.mktemp("local") / "index")
    with open_pipeline(settings, e5) as pipeline:
        yield pipeline, pipeline.ingest([corpus])


def _contents(pipeline: Pipeline) -> dict[str, Any]:
    """What a reader sees of an index: documents, passages with sources, answers."""
    documents = [replace(row, ingested_at="") for row in pipeline.documents()]
    ids, folded = pipeline.passage_texts()
    _, _, passages = pipeline.candidates(QUESTIONS[0], len(ids))  # every passage
    answers = []
    for question in QUESTIONS:
        payload = answer_payload(pipeline.ask(question))
        payload.pop("timings_ms")
        answers.append(payload)
    return {
        "documents": documents,
        "passages": dict(zip(ids, folded, strict=True)),
        "sources": {pid: passages[pid].sources for pid in sorted(passages)},
        "answers": answers,
    }


VECTOR_ATOL = 2e-3
SCORE_ATOL = 3.5 * VECTOR_ATOL


def _assert_same_index(got: Pipeline, expected: Pipeline) -> None:
    ours, theirs = _contents(got), _contents(expected)
    assert ours["documents"] == theirs["documents"]
    assert ours["passages"] == theirs["passages"]
    assert ours["sources"] == theirs["sources"]
    # The actors embed other batches of texts than the local writer: vectors, and the
    # scores that follow from them, are equal within float tolerance; the rest exactly.
    # The tolerance is the engine's own across batches (bf16 rounding follows the padding:
    # 1e-3 per component, tests/test_embeddings.py), and a fused score scales a cosine
    # difference by dense_weight / (1 - dense_floor) = 3.5.
    for a, b in zip(ours["answers"], theirs["answers"], strict=True):
        for pa, pb in zip(a.pop("passages"), b.pop("passages"), strict=True):
            assert pa.pop("score") == pytest.approx(pb.pop("score"), abs=SCORE_ATOL)
            assert pa == pb
        assert a == b
    vectors, expected_vectors = _vectors(got.directory), _vectors(expected.directory)
    assert vectors.keys() == expected_vectors.keys()
    for pid, blob in vectors.items():
        np.testing.assert_allclose(
            np.frombuffer(blob, np.float32),
            np.frombuffer(expected_vectors[pid], np.float32),
            atol=VECTOR_ATOL,
        )


@pytest.mark.slow
def test_two_nodes_finish_an_interrupted_ingest_into_the_index_a_local_ingest_builds(
    cluster: str, corpus: Path, local: tuple[Pipeline, IngestReport], e5: Embedder, tmp_path: Path
) -> None:
    local_pipeline, local_report = local
    settings = Settings(
        index_dir=tmp_path / "index", ray_actor_cpus=ACTOR_CPUS, ray_parse_cpus=PARSE_CPUS
    )
    driver = CountingEmbedder(e5)
    connect(cluster)
    try:
        with open_pipeline(settings, driver) as pipeline:
            # What an ingest killed after its first batch leaves: two files committed.
            pipeline.ingest(sorted(corpus.glob("*.txt"))[:2])
            driver.passages = 0
            result = ingest_on_ray(pipeline, [corpus], E5)
            _assert_same_index(pipeline, local_pipeline)
            again = ingest_on_ray(pipeline, [corpus], E5)
            _assert_same_index(pipeline, local_pipeline)
            # `--reread` reads every file again (new document and passage ids, as locally)
            # into the index a local re-read makes.
            reread = ingest_on_ray(pipeline, [corpus], E5, reread=True)
            local_reread = local_pipeline.ingest([corpus], reread=True)
            _assert_same_index(pipeline, local_pipeline)
    finally:
        disconnect()
    report = result.report
    assert result.nodes == 2 and result.plan.actors == 2
    assert (report.files, report.unchanged) == (local_report.files, 2)
    assert report.skipped == local_report.skipped  # the broken PDF, with the same reason
    assert [Path(s.path).name for s in report.skipped] == ["broken.pdf"]
    # The committed files were neither parsed nor embedded again, and every vector the
    # writer needed came from the actors: the driver embedded none.
    assert 0 < result.embedded <= report.chunks
    assert driver.passages == 0
    # A second run finds everything done.
    assert (again.report.unchanged, again.embedded, again.report.new_passages) == (
        local_report.files,
        0,
        0,
    )
    assert (reread.report.files, reread.report.unchanged) == (local_report.files, 0)
    # Every file is read again, but its passages are those its indexed version holds: the
    # writer keeps their stored vectors, so the actors embed none (as a local re-read).
    assert reread.embedded == 0
    assert reread.report.new_passages == local_reread.new_passages > 0
    assert reread.report.skipped == local_report.skipped


@pytest.mark.slow
def test_rag_ingest_ray_reports_the_cluster_and_each_file_it_could_not_read(
    cluster: str, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    first = sorted(DEMO.glob("*.txt"))[0]
    shutil.copy(first, folder)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7 cut short")
    env = {
        **os.environ,
        "RAG_RAY_ACTOR_CPUS": f"{ACTOR_CPUS}",
        "RAG_RAY_PARSE_CPUS": f"{PARSE_CPUS}",
    }
    index = str(tmp_path / "index")
    done = subprocess.run(
        [str(RAG), "ingest", str(folder), "--index", index, "--ray", cluster],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "2 nodes; 2 embedding actors" in done.stdout
    assert f"skipped {folder / 'broken.pdf'}: not a readable PDF" in " ".join(done.stderr.split())
    listed = subprocess.run(
        [str(RAG), "docs", "list", "--json", "--index", index],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert [row["file"] for row in json.loads(listed.stdout)] == [first.name]
