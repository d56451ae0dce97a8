"""The local passage store: SQLite holds documents, paragraphs, passages, sources and vectors.

It is the source of truth; the FAISS and BM25 files beside it are caches that can always be
rebuilt from it (see `rag.store.snapshot` and `rag.index`).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from rag.store.base import DocumentRow, MetaGeneration, ParagraphRow, StoredPassage
from rag.store.placement import placement_json, read_placement
from rag.store.sqlite_schema import SCHEMA, add_columns, integrity_problems
from rag.text.identity import content_hash
from rag.types import Document, Passage, Source

STORE_FILE = "store.sqlite"
# Seconds a connection waits on another's lock before SQLite reports the database busy.
BUSY_TIMEOUT_S = 30.0


class SQLiteStore(MetaGeneration):
    """One SQLite connection: the writer's, or (`readonly=True`) one reader thread's.

    In WAL mode a reader's connection sees the last committed state while a writer's
    transaction is open, so a query never reads half of an ingest.
    """

    def __init__(self, path: Path, readonly: bool = False) -> None:
        # Callers open only a store that exists (`create_store` makes it whole): connecting
        # to a missing path would create an empty file that other processes take for an
        # index without tables.
        if readonly:
            self._db = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=False,  # used by one thread, but closed by the index's owner
                timeout=BUSY_TIMEOUT_S,
            )
            return
        # The writer may be handed from thread to thread (the service's ingestion worker,
        # request threads deleting a document); a lock above the store keeps it one at a time.
        # Writers are serialised by `rag.lock` before they begin, so the busy timeout only
        # covers a reader's checkpoint or a legacy index's first open.
        self._db = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_S
        )
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # An index created by an older version lacks the newer columns: add them (once).
        add_columns(self._db)

    def close(self) -> None:
        self._db.close()

    # -- transactions and metadata ------------------------------------------------------

    def transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def snapshot(self) -> AbstractContextManager[None]:
        """A read transaction: every read inside sees one committed state.

        Inside a transaction already open on this connection it adds nothing: that
        transaction is the snapshot.
        """
        if self._db.in_transaction:
            return nullcontext()
        return _Transaction(self._db, "BEGIN DEFERRED")

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- documents ----------------------------------------------------------------------

    _DOCUMENT_ROW = (
        "SELECT d.id, d.file, d.path, d.content_hash, d.encoding, d.format, d.paragraphs, "
        "(SELECT COUNT(DISTINCT passage_id) FROM sources s WHERE s.document_id = d.id), "
        "d.ingested_at FROM documents d"
    )

    def documents(self) -> list[DocumentRow]:
        rows = self._db.execute(f"{self._DOCUMENT_ROW} ORDER BY d.file").fetchall()
        return [DocumentRow(*row) for row in rows]

    def find_document(self, file: str) -> DocumentRow | None:
        row = self._db.execute(f"{self._DOCUMENT_ROW} WHERE d.file = ?", (file,)).fetchone()
        return None if row is None else DocumentRow(*row)

    def insert_document(self, file: str, document: Document) -> int:
        cur = self._db.execute(
            "INSERT INTO documents(file, path, content_hash, encoding, format, paragraphs, "
            "ingested_at, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                file,
                document.source.path,
                document.content_hash,
                document.source.encoding,
                document.source.format,
                len(document.paragraphs),
                datetime.now(UTC).isoformat(timespec="seconds"),
                document.source.text,
            ),
        )
        doc_id = int(cur.lastrowid or 0)
        self._db.executemany(
            "INSERT INTO paragraphs(document_id, number, text, char_start, char_end, line_start, "
            "line_end, page, sheet, ocr_confidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    doc_id,
                    p.number,
                    p.text,
                    *p.source_span(),
                    p.line_start,
                    p.line_end,
                    p.page,
                    p.sheet,
                    p.ocr_confidence,
                )
                for p in document.paragraphs
            ],
        )
        return doc_id

    def delete_document(self, doc_id: int) -> list[int]:
        """Remove a document and its sources; return the ids of passages left with no source."""
        affected = [
            int(r[0])
            for r in self._db.execute(
                "SELECT DISTINCT passage_id FROM sources WHERE document_id = ?", (doc_id,)
            )
        ]
        self._db.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
        orphans = [
            pid
            for pid in affected
            if self._db.execute("SELECT 1 FROM sources WHERE passage_id = ?", (pid,)).fetchone()
            is None
        ]
        self._db.executemany("DELETE FROM passages WHERE id = ?", [(p,) for p in orphans])
        # A merged passage shows the text of its first remaining source.
        self._db.executemany(
            "UPDATE passages SET text = (SELECT text FROM sources WHERE passage_id = ? "
            "ORDER BY rowid LIMIT 1) WHERE id = ?",
            [(p, p) for p in set(affected) - set(orphans)],
        )
        return orphans

    def document_passages(self, doc_id: int) -> set[int]:
        rows = self._db.execute(
            "SELECT DISTINCT passage_id FROM sources WHERE document_id = ?", (doc_id,)
        )
        return {int(r[0]) for r in rows}

    def shown_passages(self, ids: Iterable[int]) -> dict[int, tuple[str, str, str]]:
        out: dict[int, tuple[str, str, str]] = {}
        for chunk, marks in self._in_chunks(sorted(set(ids))):
            for pid, text, digest, folded in self._db.execute(
                f"SELECT id, text, hash, folded FROM passages WHERE id IN ({marks})", chunk
            ):
                out[int(pid)] = (str(text), str(digest), str(folded))
        return out

    def retext_passage(
        self, passage_id: int, text: str, folded: str, content_hash: str, signature: bytes
    ) -> None:
        # No vector until `set_vectors`, as a new passage: `rag check` reports one left so.
        self._db.execute(
            "UPDATE passages SET text = ?, folded = ?, hash = ?, signature = ?, vector = ? "
            "WHERE id = ?",
            (text, folded, content_hash, signature, b"", passage_id),
        )

    def merge_passage(self, passage_id: int, into: int) -> None:
        self._db.execute(
            "UPDATE sources SET passage_id = ? WHERE passage_id = ?", (into, passage_id)
        )
        self._db.execute("DELETE FROM passages WHERE id = ?", (passage_id,))
        # Sources keep their rowids: `into` shows the first of them all.
        self._db.execute(
            "UPDATE passages SET text = (SELECT text FROM sources WHERE passage_id = ? "
            "ORDER BY rowid LIMIT 1) WHERE id = ?",
            (into, into),
        )

    def paragraph_context(
        self, doc_id: int, number: int, context: int
    ) -> tuple[list[ParagraphRow], ParagraphRow | None, list[ParagraphRow]]:
        """Paragraph `number` of a document with up to `context` stored neighbours each side.

        Neighbours are the nearest stored paragraphs: numbering counts paragraphs that
        cleaning dropped, so paragraph 7's predecessor may be 5.
        """
        with self.snapshot():
            return self._paragraph_context(doc_id, number, context)

    def _paragraph_context(
        self, doc_id: int, number: int, context: int
    ) -> tuple[list[ParagraphRow], ParagraphRow | None, list[ParagraphRow]]:
        columns = "number, text, line_start, line_end, char_start, char_end, page, sheet"
        row = self._db.execute(
            f"SELECT {columns} FROM paragraphs WHERE document_id = ? AND number = ?",
            (doc_id, number),
        ).fetchone()
        before = self._db.execute(
            f"SELECT {columns} FROM paragraphs WHERE document_id = ? AND number < ? "
            "ORDER BY number DESC LIMIT ?",
            (doc_id, number, context),
        ).fetchall()
        after = self._db.execute(
            f"SELECT {columns} FROM paragraphs WHERE document_id = ? AND number > ? "
            "ORDER BY number LIMIT ?",
            (doc_id, number, context),
        ).fetchall()
        return (
            [ParagraphRow(*r) for r in reversed(before)],
            None if row is None else ParagraphRow(*row),
            [ParagraphRow(*r) for r in after],
        )

    def document_vectors(self, doc_id: int) -> dict[str, np.ndarray]:
        """Folded text -> vector of every passage the document holds."""
        rows = self._db.execute(
            "SELECT p.folded, p.vector FROM passages p WHERE p.id IN "
            "(SELECT passage_id FROM sources WHERE document_id = ?)",
            (doc_id,),
        ).fetchall()
        return {str(h): np.frombuffer(v, dtype=np.float32) for h, v in rows if v}

    def replace_tokens(self, name: str) -> int:
        # The store holds no tokens (the lexical index is a cache of the folded text, built
        # by the caller with the new tokenizer): recording the name is the whole change.
        with self.transaction():
            self.set_meta("tokenizer", name)
            return self.bump_generation()

    def document_hashes(self, doc_id: int) -> set[str]:
        rows = self._db.execute(
            "SELECT p.hash FROM passages p WHERE p.id IN "
            "(SELECT passage_id FROM sources WHERE document_id = ?)",
            (doc_id,),
        )
        return {str(r[0]) for r in rows}

    # -- passages -----------------------------------------------------------------------

    def passage_id_by_hash(self, content_hash: str) -> int | None:
        row = self._db.execute("SELECT id FROM passages WHERE hash = ?", (content_hash,)).fetchone()
        return None if row is None else int(row[0])

    def insert_passage(
        self, text: str, folded: str, content_hash: str, signature: bytes, vector: np.ndarray
    ) -> int:
        cur = self._db.execute(
            "INSERT INTO passages(text, folded, hash, signature, vector) VALUES (?, ?, ?, ?, ?)",
            (text, folded, content_hash, signature, np.asarray(vector, np.float32).tobytes()),
        )
        return int(cur.lastrowid or 0)

    def set_vectors(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        matrix = np.asarray(vectors, dtype=np.float32)
        self._db.executemany(
            "UPDATE passages SET vector = ? WHERE id = ?",
            [(matrix[i].tobytes(), pid) for i, pid in enumerate(ids)],
        )

    def replace_vectors(self, ids: Sequence[int], vectors: np.ndarray, meta: dict[str, str]) -> int:
        """One transaction: SQLite's commit is the switch from the old vectors to the new."""
        with self.transaction():
            if len(set(ids)) != self.count("passages"):
                raise ValueError("replace_vectors takes every stored passage")
            self.set_vectors(ids, vectors)
            for key, value in meta.items():
                self.set_meta(key, value)
            return self.bump_generation()

    def replace_pending(self) -> bool:
        return False  # a killed transaction leaves nothing to finish

    def finish_replace(self) -> None:
        pass

    def insert_source(self, passage_id: int, doc_id: int, source: Source) -> None:
        self._db.execute(
            "INSERT INTO sources(passage_id, document_id, paragraph, line_start, line_end, "
            "char_start, char_end, text, origin, page, sheet, ocr_confidence) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                passage_id,
                doc_id,
                source.paragraph,
                source.line_start,
                source.line_end,
                source.char_start,
                source.char_end,
                source.text,
                placement_json(source),
                source.page,
                source.sheet,
                source.ocr_confidence,
            ),
        )

    def passages(self, ids: Sequence[int]) -> dict[int, Passage]:
        """Passages by id, each with all its sources in ingestion order."""
        if not ids:
            return {}
        # Texts and sources from one snapshot: a delete committed between the two reads
        # would otherwise leave a passage with no source to cite.
        with self.snapshot():
            return self._passages(ids)

    def _passages(self, ids: Sequence[int]) -> dict[int, Passage]:
        texts: dict[int, str] = {}
        sources: dict[int, list[Source]] = {}
        for chunk, marks in self._in_chunks(ids):
            texts.update(
                self._db.execute(f"SELECT id, text FROM passages WHERE id IN ({marks})", chunk)
            )
            # A passage's sources all come with its chunk, so each keeps ingestion order.
            for row in self._db.execute(
                "SELECT s.passage_id, d.file, s.paragraph, s.line_start, s.line_end, "
                "s.char_start, s.char_end, s.text, s.origin, s.page, s.sheet, s.ocr_confidence "
                "FROM sources s JOIN documents d "
                f"ON d.id = s.document_id WHERE s.passage_id IN ({marks}) ORDER BY s.rowid",
                chunk,
            ):
                sources.setdefault(row[0], []).append(_source(row[1], row[2:]))
        return {pid: Passage(pid, texts[pid], tuple(sources.get(pid, ()))) for pid in texts}

    def folded_texts(self) -> tuple[list[int], list[str]]:
        """Ids and folded texts of all passages: what the lexical index is built from."""
        rows = self._db.execute("SELECT id, folded FROM passages ORDER BY id").fetchall()
        return [int(r[0]) for r in rows], [str(r[1]) for r in rows]

    def iter_passages(self) -> Iterator[StoredPassage]:
        for row in self._db.execute("SELECT id, folded, signature, vector FROM passages"):
            yield StoredPassage(*row)

    def vectors_by_id(self) -> dict[int, bytes]:
        return {int(r[0]): r[1] for r in self._db.execute("SELECT id, vector FROM passages")}

    def integrity_problems(self, dim: int) -> list[str]:
        """What is wrong inside the store itself; empty when it is sound (`sqlite_schema`),
        and passages whose content hash is not their text's (SQL cannot compute it)."""
        problems = integrity_problems(self._db, dim)
        rows = self._db.execute("SELECT id, text, hash FROM passages ORDER BY id")
        stale = [str(pid) for pid, text, digest in rows if content_hash(text) != digest]
        if stale:
            shown = ", ".join(stale[:5]) + (", ..." if len(stale) > 5 else "")
            problems.append(f"passages whose content hash is not their text's: {shown}")
        return problems

    def document_text(self, file: str) -> str | None:
        """The text a document's offsets index (None for one ingested before it was kept)."""
        row = self._db.execute("SELECT text FROM documents WHERE file = ?", (file,)).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def _in_chunks(self, ids: Sequence[int]) -> Iterator[tuple[list[int], str]]:
        """`ids` in lists that one statement can bind, each with its `?` marks.

        SQLite refuses a statement with more parameters than its build allows (32,766 by
        default, 999 before 3.32): a book with more passages than that could not be read.
        """
        size = self._db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        for start in range(0, len(ids), size):
            chunk = list(ids[start : start + size])
            yield chunk, ",".join("?" * len(chunk))

    # -- export (`rag migrate` copies an index to another backend) -------------------------

    def export_document(self, doc_id: int) -> tuple[str | None, list[ParagraphRow]]:
        """A document's kept text and its paragraph rows, in order."""
        row = self._db.execute("SELECT text FROM documents WHERE id = ?", (doc_id,)).fetchone()
        paragraphs = self._db.execute(
            "SELECT number, text, line_start, line_end, char_start, char_end, page, sheet "
            "FROM paragraphs WHERE document_id = ? ORDER BY number",
            (doc_id,),
        ).fetchall()
        return (None if row is None else row[0]), [ParagraphRow(*r) for r in paragraphs]

    def export_sources(self, doc_id: int) -> list[tuple[int, Source]]:
        """(passage id, source) of a document, in ingestion order."""
        file = self._db.execute("SELECT file FROM documents WHERE id = ?", (doc_id,)).fetchone()
        out = []
        for row in self._db.execute(
            "SELECT passage_id, paragraph, line_start, line_end, char_start, char_end, text, "
            "origin, page, sheet, ocr_confidence FROM sources WHERE document_id = ? "
            "ORDER BY rowid",
            (doc_id,),
        ):
            source = _source(file[0], row[1:])
            out.append((int(row[0]), source))
        return out

    def export_passages(self, ids: Sequence[int]) -> dict[int, tuple[str, str, str, bytes, bytes]]:
        """Passage id -> (text, folded, content hash, signature, vector) as stored."""
        out = {}
        for chunk, marks in self._in_chunks(ids):
            for r in self._db.execute(
                "SELECT id, text, folded, hash, signature, vector FROM passages "
                f"WHERE id IN ({marks})",
                chunk,
            ):
                out[int(r[0])] = (r[1], r[2], r[3], r[4], r[5])
        return out

    def passage_hashes(self) -> dict[int, str]:
        """Passage id -> content hash, of every passage."""
        return {int(r[0]): str(r[1]) for r in self._db.execute("SELECT id, hash FROM passages")}

    def count(self, table: str) -> int:
        if table not in {"documents", "paragraphs", "passages", "sources"}:
            raise ValueError(table)
        return int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def create_store(path: Path, meta: dict[str, str]) -> None:
    """Create a store with its schema and metadata atomically: whole, or not at all.

    Built under a temporary name and renamed into place, so another process never opens a
    store that has no tables or no configuration yet. Schema statements run by several
    processes on one new file raced: a statement that read the schema before another
    process's commit cannot upgrade to a write in WAL mode, and SQLite answers "database is
    locked" at once, without waiting. The caller holds the index's write lock.
    """
    tmp = path.with_name(f"{path.name}.new")
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        leftover.unlink(missing_ok=True)  # an earlier creation that died half-way
    db = sqlite3.connect(tmp, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")  # recorded in the file: it persists
        db.executescript(SCHEMA)
        add_columns(db)
        with _Transaction(db):
            for key, value in meta.items():
                db.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (key, value))
    finally:
        db.close()  # checkpoints and removes the WAL: the file alone is the store
    os.replace(tmp, path)


class _Transaction:
    """`with store.transaction():` commits on success and rolls back on any error."""

    def __init__(self, db: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> None:
        self._db = db
        self._begin = begin

    def __enter__(self) -> None:
        self._db.execute(self._begin)

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")


def vectors_from_rows(rows: Iterable[StoredPassage], dim: int) -> tuple[list[int], np.ndarray]:
    ids: list[int] = []
    blobs: list[bytes] = []
    for row in rows:
        ids.append(row.id)
        blobs.append(row.vector)
    matrix = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(ids), dim)
    return ids, matrix


def _source(file: str, columns: Sequence[Any]) -> Source:
    """A source from its stored columns, in the order both readers select them: paragraph,
    lines, chars, text, origin (`rag.store.placement`), page, sheet, OCR confidence."""
    paragraph, line_start, line_end, char_start, char_end, text, origin, page, sheet, ocr = columns
    offsets, breaks = read_placement(origin)
    return Source(
        file,
        paragraph,
        line_start,
        line_end,
        char_start,
        char_end,
        text,
        offsets,
        page=page,
        sheet=sheet,
        ocr_confidence=ocr,
        line_breaks=breaks,
    )
