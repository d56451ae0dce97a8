"""`rag check` finds each kind of damage, `--repair` mends what the store can rebuild."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from rag.index.check import check_index, repair_index
from rag.index.config import NoIndexError
from rag.pipeline import Pipeline, open_pipeline
from rag.settings import Settings
from rag.store.bm25s import Bm25sLexicalIndex
from rag.store.faiss import FaissVectorIndex
from rag.store.snapshot import Caches, load_caches
from tests.fakes import HashEmbedder


@pytest.fixture
def index(fake_pipeline: Pipeline, demo_copy: Path) -> Path:
    fake_pipeline.ingest([demo_copy])
    fake_pipeline.close()
    return fake_pipeline.directory


def published(index: Path) -> Path:
    generation = json.loads((index / "caches.json").read_text())["generation"]
    return index / "caches" / str(generation)


def store(index: Path) -> sqlite3.Connection:
    return sqlite3.connect(index / "store.sqlite", isolation_level=None)


def test_a_freshly_built_index_is_sound(index: Path) -> None:
    report = check_index(index)
    assert report.ok and not report.stale
    assert report.passages == report.vectors == report.lexical > 0
    assert report.documents == 5


def test_a_passage_missing_from_the_vector_cache_is_found(index: Path) -> None:
    vectors = FaissVectorIndex.load(published(index) / "vectors.faiss")
    vectors.remove([int(vectors.ids()[0])])
    vectors.save(published(index) / "vectors.faiss")
    [problem] = check_index(index).problems
    assert problem.startswith("stored passages missing from the vector index: 1")


def test_a_vector_that_differs_from_the_stored_one_is_found(index: Path) -> None:
    vectors = FaissVectorIndex.load(published(index) / "vectors.faiss")
    pid = int(vectors.ids()[0])
    vectors.remove([pid])
    vectors.add([pid], -vectors.vectors([int(vectors.ids()[0])]))
    vectors.save(published(index) / "vectors.faiss")
    [problem] = check_index(index).problems
    assert problem.startswith("vector index disagrees with the store on 1 passages")


def test_a_lexical_entry_with_no_stored_passage_is_found(index: Path) -> None:
    lexical = Bm25sLexicalIndex.load(published(index) / "lexical")
    ids = [int(i) for i in lexical.ids] + [999_999]
    Bm25sLexicalIndex.build(ids, [["质量"]] * len(ids)).save(published(index) / "lexical")
    problems = check_index(index).problems
    assert any(p.startswith("lexical index entries with no stored passage: 1") for p in problems)


def test_damage_inside_the_store_is_found(index: Path) -> None:
    with store(index) as db:
        db.execute("DELETE FROM sources WHERE passage_id = (SELECT MIN(id) FROM passages)")
        db.execute("UPDATE passages SET vector = x'00' WHERE id = (SELECT MAX(id) FROM passages)")
    problems = " | ".join(check_index(index).problems)
    assert "passages without a source" in problems
    assert "passages without a 64-dimension vector" in problems


def test_a_stale_stamp_is_reported_but_is_not_damage(index: Path) -> None:
    with store(index) as db:
        db.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
    report = check_index(index)
    assert report.stale and report.ok


CHECKS_LOAD = "rag.index.check.load_caches"  # how `check_index` reads published caches


def test_caches_a_writer_replaces_while_they_are_checked_are_not_damage(
    index: Path, fake_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A writer publishing between the check's reading of the stamp and of the caches
    # deletes the generation being read: `rag check` reported it unreadable (exit 1).
    def read_after_a_write(directory: Path, generation: int) -> Caches:
        monkeypatch.setattr(CHECKS_LOAD, load_caches)  # the one write, once
        with open_pipeline(fake_settings, HashEmbedder()) as writer:
            assert writer.remove(writer.documents()[0].file)
        return load_caches(directory, generation)

    monkeypatch.setattr(CHECKS_LOAD, read_after_a_write)
    report = check_index(index)
    assert report.ok, report.problems
    assert not report.stale and report.documents == 4


def test_repair_rebuilds_damaged_caches_from_the_store(index: Path) -> None:
    (published(index) / "vectors.faiss").write_bytes(b"not faiss")
    assert not check_index(index).ok
    report = repair_index(index, lock_timeout=5)
    assert report.ok and not report.stale


def test_the_command_exits_0_when_sound_1_with_problems_2_without_an_index(
    index: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    sound = runner.invoke(app, ["check", "--index", str(index), "--json"])
    assert sound.exit_code == 0 and json.loads(sound.stdout)["ok"] is True
    (published(index) / "vectors.faiss").unlink()
    damaged = runner.invoke(app, ["check", "--index", str(index)])
    assert damaged.exit_code == 1
    assert "unreadable" in damaged.output
    assert runner.invoke(app, ["check", "--index", str(tmp_path / "none")]).exit_code == 2
    with pytest.raises(NoIndexError):
        check_index(tmp_path / "none")


def test_nothing_is_created_by_checking_a_missing_index(tmp_path: Path) -> None:
    with pytest.raises(NoIndexError):
        repair_index(tmp_path / "none", lock_timeout=1)
    assert not (tmp_path / "none").exists()
