"""A Milvus writer killed at any moment leaves the index whole, like the local backend's.

Milvus has no transactions: a write is a sequence of inserts, upserts and deletes
(`rag.store.milvus`). Each trial kills a child process, with SIGKILL, right after one of
those calls, chosen at random (seeded: the same calls every run) among all the calls an
ingest or a removal makes. After each kill: `check_index` finds no damage (an interrupted
write is reported as stale, not as a problem); every document is exactly its old or its new
version; the next process to open the index answers and collects what was left; re-running
the command finishes the change.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import random
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest

from rag.index.check import check_index, repair_index
from rag.pipeline import open_pipeline
from rag.settings import Settings
from tests.crash import classify
from tests.fakes import HashEmbedder
from tests.milvus import MILVUS_MISSING, lite_location, milvus_document_states
from tests.test_crash_consistency import BASE_FILES, corpora
from tests.test_merged_sources import A, X, write

pytestmark = [
    pytest.mark.skipif(MILVUS_MISSING is not None, reason=str(MILVUS_MISSING)),
    pytest.mark.reliability,
]
WRITES = ("insert", "upsert", "delete", "flush")


def kills() -> int:
    return int(os.environ.get("RAG_CRASH_KILLS", "3"))


def settings(index: Path) -> Settings:
    return Settings(index_dir=index, backend="milvus", dense_floor=0.0)


def run(index: Path, operation: str, target: str) -> None:
    pipeline = open_pipeline(settings(index), HashEmbedder())
    try:
        if operation == "ingest":
            pipeline.ingest([Path(target)])
        else:
            for file in target.split(","):  # as `rag docs rm a b` does: one removal each
                pipeline.remove(file)
    finally:
        pipeline.close()


def write_and_die(index: str, operation: str, target: str, point: int, counted: str) -> None:
    """Child process: run the operation, SIGKILLed right after its `point`-th Milvus write
    (0: never; the number of writes is then saved to `counted`)."""
    import pymilvus

    writes = 0

    def counting(name: str) -> None:
        original = getattr(pymilvus.MilvusClient, name)

        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            nonlocal writes
            result = original(self, *args, **kwargs)
            writes += 1
            if writes == point:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        setattr(pymilvus.MilvusClient, name, call)

    for name in WRITES:
        counting(name)
    run(Path(index), operation, target)
    Path(counted).write_text(str(writes))


def in_child(*args: Any) -> int | None:
    child = multiprocessing.get_context("spawn").Process(target=write_and_die, args=args)
    child.start()
    child.join(timeout=300)
    return child.exitcode


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("milvus-crash")
    v1, v2 = corpora(root)
    run(root / "base", "ingest", str(v1))
    shutil.copytree(root / "base", root / "done")
    writes = {}
    counted = root / "writes"
    assert in_child(str(root / "done"), "ingest", str(v2), 0, str(counted)) == 0
    writes["ingest"] = int(counted.read_text())
    shutil.copytree(root / "done", root / "removed")
    assert in_child(str(root / "removed"), "remove", ",".join(BASE_FILES), 0, str(counted)) == 0
    writes["remove"] = int(counted.read_text())
    return {
        "root": root,
        "v2": v2,
        "writes": writes,
        "states": {
            name: milvus_document_states(lite_location(root / name))
            for name in ("base", "done", "removed")
        },
    }


@pytest.mark.parametrize("operation", ["ingest", "remove"])
def test_a_milvus_writer_killed_after_any_write_leaves_a_whole_index(
    operation: str, states: dict[str, Any], tmp_path: Path
) -> None:
    start, end = ("base", "done") if operation == "ingest" else ("done", "removed")
    target = str(states["v2"]) if operation == "ingest" else ",".join(BASE_FILES)
    before, after = states["states"][start], states["states"][end]
    total = states["writes"][operation]
    rng = random.Random(f"milvus-crash-{operation}")  # seeded: the same moments every run
    # One moment in each of `kills()` equal stretches of the write, so early and late
    # kills both happen.
    edges = [1 + (total - 1) * i // kills() for i in range(kills() + 1)]
    points = sorted({rng.randrange(a, max(b, a + 1)) for a, b in itertools.pairwise(edges)})
    phases = []
    for point in points:
        index = tmp_path / f"kill-{point}"
        shutil.copytree(states["root"] / start, index)
        exit_code = in_child(str(index), operation, target, point, str(tmp_path / "unused"))
        assert exit_code == -signal.SIGKILL
        location = lite_location(index)
        assert check_index(location).problems == []
        phases.append(classify(milvus_document_states(location), before, after))

        restarted = open_pipeline(settings(index), HashEmbedder())  # "the next start"
        try:
            assert restarted.ask("质量").passages
        finally:
            restarted.close()
        report = check_index(location)
        assert report.problems == [] and not report.stale  # what was left is collected
        run(index, operation, target)
        assert milvus_document_states(location) == after
        report = check_index(location)
        assert report.ok and not report.stale
        shutil.rmtree(index)
    print(f"\n{operation}: killed after writes {points} of {total}; states left: {phases}")


def remove_and_die_after_retexting(index: str, file: str) -> None:
    """Child process: remove `file`, SIGKILLed right after the upsert of whole passage rows
    (the passages taking their next source's identity), before the flip."""
    import pymilvus

    original = pymilvus.MilvusClient.upsert

    def upsert(self: Any, name: str, data: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, name, data, *args, **kwargs)
        if name.endswith("_passages") and not kwargs.get("partial_update"):
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    pymilvus.MilvusClient.upsert = upsert
    run(Path(index), "remove", file)


def test_a_removal_killed_between_retexting_a_merged_passage_and_its_flip_is_reported(
    tmp_path: Path,
) -> None:
    # The passage (a.txt's A, with b.txt's near duplicate X) is X's whole row while a.txt
    # is still current: neither the next open nor `--repair` can give back A's vector,
    # which that row replaced, so `rag check` names it; re-running the removal settles it.
    index = tmp_path / "index"
    pipeline = open_pipeline(settings(index), HashEmbedder())
    try:
        pipeline.ingest([write(tmp_path / "a", "a.txt", A)])
        pipeline.ingest([write(tmp_path / "b", "b.txt", X)])
    finally:
        pipeline.close()
    child = multiprocessing.get_context("spawn").Process(
        target=remove_and_die_after_retexting, args=(str(index), "a.txt")
    )
    child.start()
    child.join(timeout=300)
    assert child.exitcode == -signal.SIGKILL
    location = lite_location(index)

    restarted = open_pipeline(settings(index), HashEmbedder())  # "the next start"
    try:
        assert [d.file for d in restarted.documents()] == ["a.txt", "b.txt"]
        (passage,) = restarted.search(A, 1).passages
        assert passage.passage.text == X  # the premise: shown as b.txt's while a.txt is first
    finally:
        restarted.close()
    report = repair_index(location, 10.0)
    assert report.problems == [
        f"passages showing a text that is not their first source's: {passage.passage.id}"
    ]

    run(index, "remove", "a.txt")
    report = check_index(location)
    assert report.ok and not report.stale
    assert list(milvus_document_states(location)) == ["b.txt"]
