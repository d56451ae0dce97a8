"""Several writers and readers on one index directory: serialised, never corrupted.

Two `Pipeline`s on one directory stand for two processes here: the write lock is a `flock`
on its own file descriptor, which conflicts between descriptors of one process exactly as
between processes (tests/test_crash_consistency.py uses real processes).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from rag.index.check import check_index
from rag.pipeline import Pipeline, open_pipeline
from rag.settings import Settings
from rag.store.lock import IndexBusyError, WriteLock
from tests.fakes import HashEmbedder


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def two_pipelines(
    fake_settings: Settings, fake_embedder: HashEmbedder
) -> tuple[Pipeline, Pipeline]:
    return open_pipeline(fake_settings, fake_embedder), open_pipeline(fake_settings, fake_embedder)


def test_a_second_writer_waits_for_the_first_and_sees_its_work(
    two_pipelines: tuple[Pipeline, Pipeline], tmp_path: Path
) -> None:
    first, second = two_pipelines
    a = write(tmp_path / "a", "a.txt", "甲方负责质量检测。\n")
    b = write(tmp_path / "b", "b.txt", "乙方负责安全监督。\n")
    waited: list[str] = []
    lock = second._index._lock
    assert isinstance(lock, WriteLock)  # the local backend's file lock
    lock.on_wait = waited.append
    with first.writing():
        worker = threading.Thread(target=second.ingest, args=([b],))
        worker.start()
        time.sleep(0.3)
        assert worker.is_alive(), "the second writer should wait for the lock"
        first.ingest([a])  # reentrant within the holder
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert waited and "pid" in waited[0]
    files = {row.file for row in second.documents()}
    assert files == {"a.txt", "b.txt"}
    report = check_index(second.directory)
    assert report.ok and not report.stale, report.problems
    assert report.passages == 2 and report.vectors == 2 and report.lexical == 2


def test_a_writer_that_cannot_wait_is_refused_with_a_clear_message(
    two_pipelines: tuple[Pipeline, Pipeline], tmp_path: Path
) -> None:
    first, second = two_pipelines
    with first.writing():
        with pytest.raises(
            IndexBusyError, match=r"being written by another process \(pid \d+"
        ) as busy:
            second.remove("a.txt", timeout=0)
        assert "gave up after 0 s" in str(busy.value)
    assert second.remove("a.txt", timeout=0) is False  # free again: no such file


def test_the_lock_is_reentrant_and_its_owner_file_goes_with_it(tmp_path: Path) -> None:
    lock = WriteLock(tmp_path, timeout=0)
    with lock(), lock():
        assert (tmp_path / "write.owner").exists()
    assert not (tmp_path / "write.owner").exists()
    assert not lock.held


def test_a_reader_adopts_what_another_writer_published_on_its_next_query(
    two_pipelines: tuple[Pipeline, Pipeline], tmp_path: Path
) -> None:
    reader, writer = two_pipelines
    assert reader.search("安全监督", 5).passages == []
    writer.ingest([write(tmp_path / "b", "b.txt", "乙方负责安全监督。\n")])
    found = reader.search("安全监督", 5).passages
    assert [p.passage.sources[0].file for p in found] == ["b.txt"]
    writer.remove("b.txt")
    assert reader.search("安全监督", 5).passages == []


def test_a_writer_syncs_with_another_processes_writes_before_its_own(
    two_pipelines: tuple[Pipeline, Pipeline], tmp_path: Path
) -> None:
    # Without the sync, the first writer's in-memory MinHash index and working vectors would
    # miss the second's passages, and its publish would stamp caches without them.
    first, second = two_pipelines
    first.ingest([write(tmp_path / "a", "a.txt", "甲方负责质量检测。\n")])
    second.ingest([write(tmp_path / "b", "b.txt", "乙方负责安全监督。\n")])
    first.ingest([write(tmp_path / "c", "c.txt", "乙方负责安全监督。\n丙方负责后勤。\n")])
    report = check_index(first.directory)
    assert report.ok and not report.stale, report.problems
    assert (report.documents, report.passages) == (3, 3)  # c's first line merged with b's
    for pipeline in (first, second):
        merged = pipeline.search("乙方负责安全监督", 1).passages[0].passage
        assert {s.file for s in merged.sources} == {"b.txt", "c.txt"}


def test_queries_during_repeated_adds_and_removes_see_whole_snapshots(
    fake_pipeline: Pipeline, tmp_path: Path
) -> None:
    stable = write(tmp_path / "stable", "stable.txt", "甲方负责质量检测。\n")
    fake_pipeline.ingest([stable])
    churn_dir = tmp_path / "churn"
    churn = write(churn_dir, "churn.txt", "乙方负责安全监督。\n第二段说明安全监督的范围。\n")
    errors: list[BaseException] = []
    seen: dict[int, int] = {0: 0, 2: 0}  # passages of churn.txt in a result -> times
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                passages = fake_pipeline.ask("安全监督", 10).passages
                mine = [p for p in passages if p.passage.sources[0].file == "churn.txt"]
                assert all(p.passage.sources for p in passages)
                seen[len(mine)] = seen.get(len(mine), 0) + 1
            except BaseException as err:  # every failure is the finding
                errors.append(err)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for thread in readers:
        thread.start()
    for _ in range(15):
        fake_pipeline.ingest([churn_dir])
        fake_pipeline.remove("churn.txt")
    stop.set()
    for thread in readers:
        thread.join()
    assert errors == []
    assert set(seen) == {0, 2}, f"a result held part of a document: {seen}"
    assert seen[0] > 0 and seen[2] > 0, f"the readers never overlapped the writes: {seen}"
    assert check_index(fake_pipeline.directory).ok
    assert churn.exists()
