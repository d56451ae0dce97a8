"""An index built before locations had pages opens as it is: columns added, backend assumed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from rag.pipeline import open_pipeline
from rag.settings import Settings
from rag.store.sqlite_schema import ADDED_COLUMNS
from tests.conftest import DEMO
from tests.fakes import HashEmbedder

SEED = DEMO / "000_7045e455b641a377.txt"


def make_old(index: Path) -> None:
    """Strip an index back to the first release's schema and metadata."""
    db = sqlite3.connect(index / "store.sqlite")
    for table, columns in ADDED_COLUMNS.items():
        for name, _ in columns:
            db.execute(f"ALTER TABLE {table} DROP COLUMN {name}")
    db.execute("DELETE FROM meta WHERE key = 'backend'")
    db.commit()
    db.close()


def columns(index: Path, table: str) -> set[str]:
    db = sqlite3.connect(index / "store.sqlite")
    try:
        return {str(r[1]) for r in db.execute(f"PRAGMA table_info({table})")}
    finally:
        db.close()


def test_an_old_index_gets_the_new_columns_and_answers_as_before(tmp_path: Path) -> None:
    settings = Settings(index_dir=tmp_path / "index", dense_floor=0.0)
    with open_pipeline(settings, HashEmbedder()) as p:
        p.ingest([SEED])
        before = p.ask("质检总局局长是谁？")
    make_old(settings.index_dir)
    assert "page" not in columns(settings.index_dir, "sources")

    with open_pipeline(settings, HashEmbedder()) as p:
        after = p.ask("质检总局局长是谁？")
        assert p.document_text(SEED.name) is None  # not kept by the old version
    for table, added in ADDED_COLUMNS.items():
        assert {name for name, _ in added} <= columns(settings.index_dir, table)
    assert after.answer == before.answer
    assert [c.page for c in after.citations] == [None] * len(after.citations)
    assert after.citations == before.citations
