"""The SQLite store's schema, its additions to an older index, and its integrity checks."""

from __future__ import annotations

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    file TEXT UNIQUE NOT NULL,
    path TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    encoding TEXT NOT NULL,
    format TEXT NOT NULL,
    paragraphs INTEGER NOT NULL,
    ingested_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS paragraphs (
    document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    text TEXT NOT NULL,
    char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL,
    line_start INTEGER NOT NULL,
    line_end INTEGER NOT NULL,
    PRIMARY KEY (document_id, number)
);
-- AUTOINCREMENT: a passage id is never reused, so a reader still searching an older
-- snapshot of the caches can only miss a deleted passage, never get another in its place.
CREATE TABLE IF NOT EXISTS passages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    text TEXT NOT NULL,
    folded TEXT NOT NULL,
    hash TEXT UNIQUE NOT NULL,
    signature BLOB NOT NULL,
    vector BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS sources (
    passage_id INTEGER NOT NULL REFERENCES passages(id) ON DELETE CASCADE,
    document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    paragraph INTEGER NOT NULL,
    line_start INTEGER NOT NULL,
    line_end INTEGER NOT NULL,
    char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL,
    text TEXT NOT NULL,
    origin TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sources_by_passage ON sources(passage_id);
CREATE INDEX IF NOT EXISTS sources_by_document ON sources(document_id);
"""
# Columns added since the first release: added on open to an index that lacks them (NULL
# in existing rows). Locations may carry a page, a sheet and an OCR confidence
# (`rag.types.Location`); a document keeps the text its offsets index.
ADDED_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "documents": (("text", "TEXT"),),
    "paragraphs": (("page", "INTEGER"), ("sheet", "TEXT"), ("ocr_confidence", "REAL")),
    "sources": (("page", "INTEGER"), ("sheet", "TEXT"), ("ocr_confidence", "REAL")),
}


def _missing_columns(db: sqlite3.Connection) -> list[tuple[str, str, str]]:
    missing = []
    for table, columns in ADDED_COLUMNS.items():
        have = {str(r[1]) for r in db.execute(f"PRAGMA table_info({table})")}
        missing += [(table, name, kind) for name, kind in columns if name not in have]
    return missing


def add_columns(db: sqlite3.Connection) -> None:
    """Add the columns an index created by an older version lacks (NULL in existing rows)."""
    if not _missing_columns(db):
        return  # the usual case: no write at all on open
    db.execute("BEGIN IMMEDIATE")
    try:
        # Looked at again inside the write lock: another process may have added them.
        for table, name, kind in _missing_columns(db):
            db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def integrity_problems(db: sqlite3.Connection, dim: int) -> list[str]:
    """What is wrong inside the store itself; empty when it is sound.

    SQLite's own checks, then the invariants the pipeline relies on: every passage has a
    source and a vector of the index's width, every source and paragraph belongs to a
    document, and each document holds as many paragraph rows as it says.
    """
    problems = [
        f"sqlite integrity: {r[0]}" for r in db.execute("PRAGMA integrity_check") if r[0] != "ok"
    ]
    problems += [
        f"foreign key: {r[0]} row {r[1]} points at missing {r[2]}"
        for r in db.execute("PRAGMA foreign_key_check")
    ]
    checks = {
        "passages without a source": (
            "SELECT id FROM passages WHERE id NOT IN (SELECT passage_id FROM sources)"
        ),
        f"passages without a {dim}-dimension vector": (
            f"SELECT id FROM passages WHERE length(vector) != {4 * dim}"
        ),
        "sources of missing passages": (
            "SELECT passage_id FROM sources WHERE passage_id NOT IN (SELECT id FROM passages)"
        ),
        "sources of missing documents": (
            "SELECT document_id FROM sources WHERE document_id NOT IN (SELECT id FROM documents)"
        ),
        "sources citing a missing paragraph": (
            "SELECT s.passage_id FROM sources s LEFT JOIN paragraphs p ON "
            "p.document_id = s.document_id AND p.number = s.paragraph "
            "WHERE p.number IS NULL"
        ),
        "documents whose paragraph rows do not match their count": (
            "SELECT d.file FROM documents d WHERE d.paragraphs != "
            "(SELECT COUNT(*) FROM paragraphs p WHERE p.document_id = d.id)"
        ),
    }
    for what, sql in checks.items():
        found = [str(r[0]) for r in db.execute(sql).fetchmany(6)]
        if found:
            shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
            problems.append(f"{what}: {shown}")
    return problems
