"""The index directory: the passage store plus the dense and lexical caches built from it.

Layout of an index directory:
    store.sqlite              documents, paragraphs, passages, sources, vectors (the source
                              of truth); its `generation` counts committed writes
    caches/<g>/vectors.faiss  FAISS index of passage vectors, by passage id, at generation g
    caches/<g>/lexical/       bm25s index of folded passage text, by passage id
    caches.json               which generation's caches are published
    write.lock, write.owner   the cross-process writer lock and who holds it (`rag.lock`)

A write commits to SQLite first, then writes the next generation's caches into a new folder
and publishes them by replacing `caches.json`. Caches are never rewritten in place, so a
process that reads the stamp always loads a complete set, and a process killed at any point
leaves either the old stamp (the next writer rebuilds the caches from the store) or the new
one. Other processes serving the same index adopt newly published caches on their next
query (`refresh`).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasketch import MinHash

from rag.dedupe import (
    NearDuplicateIndex,
    content_hash,
    signature_bytes,
    signature_from_bytes,
)
from rag.lexical import LexicalIndex
from rag.lock import WriteLock
from rag.script import fold_script
from rag.store import (
    STORE_FILE,
    DocumentRow,
    ParagraphRow,
    Store,
    create_store,
    vectors_from_rows,
)
from rag.tokenize import get_tokenizer
from rag.types import Chunk, Document, Passage
from rag.vectors import VectorIndex

EmbedPassages = Callable[[list[str]], np.ndarray]


class IndexMismatchError(ValueError):
    """The index on disk was built with settings that cannot serve this configuration."""


class NoIndexError(FileNotFoundError):
    """There is no index in the directory."""


@dataclass(frozen=True)
class IndexConfig:
    """What an index was built with; a mismatch on open is an error, not silent garbage."""

    embedder: str
    dim: int
    tokenizer: str
    chunk_size: int
    dedupe_threshold: float
    shingle_size: int
    minhash_perm: int

    def as_meta(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_store(cls, store: Store) -> IndexConfig:
        """What an existing index was built with, from its metadata."""
        try:
            meta = {k: store.get_meta(k) for k in cls.__dataclass_fields__}
        except sqlite3.OperationalError as err:  # not a store this program wrote
            raise ValueError(f"not an index store ({err})") from None
        missing = [k for k, v in meta.items() if v is None]
        if missing:
            raise ValueError(f"index metadata lacks {', '.join(missing)}")
        return cls(
            embedder=str(meta["embedder"]),
            dim=int(str(meta["dim"])),
            tokenizer=str(meta["tokenizer"]),
            chunk_size=int(str(meta["chunk_size"])),
            dedupe_threshold=float(str(meta["dedupe_threshold"])),
            shingle_size=int(str(meta["shingle_size"])),
            minhash_perm=int(str(meta["minhash_perm"])),
        )


@dataclass(frozen=True)
class NewDocument:
    """A document ready to index: the name citations use, its content, its chunks."""

    file: str
    document: Document
    chunks: Sequence[Chunk]


@dataclass
class AddResult:
    passages: int = 0  # chunks of the documents
    new_passages: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    reused_vectors: int = 0  # new passages whose vector came from the file's previous version

    @property
    def merged(self) -> int:
        return self.exact_duplicates + self.near_duplicates


STAMP = "caches.json"
CACHES = "caches"
VECTORS = "vectors.faiss"  # in a generation's folder, beside LEXICAL
LEXICAL = "lexical"


@dataclass(frozen=True)
class Caches:
    """An immutable snapshot readers search; a commit replaces it whole."""

    vectors: VectorIndex
    lexical: LexicalIndex
    generation: int  # the store generation they were built from


def published_generation(directory: Path) -> int | None:
    """The generation whose caches `directory`'s stamp publishes; None if none readable."""
    try:
        return int(json.loads((directory / STAMP).read_text())["generation"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_caches(directory: Path, generation: int) -> Caches:
    """The published caches of `generation`.

    Raises:
        OSError, ValueError, KeyError, RuntimeError: missing or unreadable files.
    """
    folder = directory / CACHES / str(generation)
    return Caches(
        VectorIndex.load(folder / VECTORS), LexicalIndex.load(folder / LEXICAL), generation
    )


class Index:
    """An index directory, opened for reading and (one writer at a time) writing.

    Args:
        directory: Created if missing.
        config: What the index is (or will be) built with.
        lock_timeout: Seconds a write waits for another process's write to finish.
        on_wait: Told who holds the lock when a write has to wait.
    """

    def __init__(
        self,
        directory: Path,
        config: IndexConfig,
        lock_timeout: float = 600.0,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.directory = directory
        self.config = config
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = WriteLock(directory, lock_timeout, on_wait)
        self._thread_lock = threading.RLock()  # one writing thread in this process
        self._create_if_missing()
        self.store = Store(directory / STORE_FILE)  # the writer's connection
        self._check_config()
        # Each reading thread gets its own read-only connection (see `Store`).
        self._local = threading.local()
        self._readers: list[Store] = []
        self._readers_lock = threading.Lock()
        self._tokenize = get_tokenizer(config.tokenizer)
        self._near: NearDuplicateIndex | None = None
        self._working: VectorIndex | None = None
        self._refresh_lock = threading.Lock()
        self._stamp_seen: tuple[int, int, int] | None = None
        self._caches = self._open_caches()
        # The store generation this process's writer state (`_near`, `_working`) reflects.
        self._state_generation = self._caches.generation

    # -- opening ------------------------------------------------------------------------

    def _create_if_missing(self) -> None:
        """Create the store, once, whatever number of processes start on a new directory.

        The others wait for the write lock (or are refused after `lock_timeout`, like any
        writer) and then find the store complete.
        """
        path = self.directory / STORE_FILE
        if path.is_file():
            return
        with self._lock():
            if not path.is_file():
                create_store(path, self.config.as_meta())

    def _check_config(self) -> None:
        stored = {k: self.store.get_meta(k) for k in self.config.as_meta()}
        if all(v is None for v in stored.values()):
            with self._lock():
                if all(self.store.get_meta(k) is None for k in self.config.as_meta()):
                    with self.store.transaction():
                        for k, v in self.config.as_meta().items():
                            self.store.set_meta(k, v)
                    return
            self._check_config()  # another process created it first: compare with theirs
            return
        wanted = self.config.as_meta()
        diff = {k: (stored[k], wanted[k]) for k in wanted if stored[k] != wanted[k]}
        if diff:
            details = ", ".join(
                f"{k}: index has {a}, settings ask {b}" for k, (a, b) in diff.items()
            )
            raise IndexMismatchError(
                f"index at {self.directory} was built differently ({details}); "
                "use the settings it was built with, or re-ingest into a new index directory"
            )

    def _open_caches(self) -> Caches:
        """The published caches if they are current; otherwise rebuild them from the store.

        A stale stamp means a writer is between its commit and its publish, or died there.
        If the lock is free it died: rebuild and publish. If not, serve the last published
        caches (a consistent older snapshot) and adopt the writer's on a later `refresh`.
        """
        published = self._read_stamp()
        if published is not None and published == self.store.generation():
            caches = self._load_generation(published)
            if caches is not None:
                return caches
        if self._lock.try_acquire():
            try:
                return self._rebuild_and_publish()
            finally:
                self._lock.release()
        if published is not None:
            caches = self._load_generation(published)
            if caches is not None:
                return caches
        return self._build_caches()  # nothing usable published yet: in memory only

    def _read_stamp(self) -> int | None:
        return published_generation(self.directory)

    def _load_generation(self, generation: int) -> Caches | None:
        try:
            return load_caches(self.directory, generation)
        except (OSError, ValueError, KeyError, RuntimeError):
            return None  # missing (superseded meanwhile) or unreadable

    def _build_caches(self) -> Caches:
        # One read transaction: the generation and the rows come from the same snapshot.
        with self.store.snapshot():
            generation = self.store.generation()
            rows = list(self.store.iter_passages())
        ids, matrix = vectors_from_rows(rows, self.config.dim)
        vectors = VectorIndex.build(self.config.dim, ids, matrix)
        lexical = self._build_lexical(ids, [r.folded for r in rows])
        return Caches(vectors, lexical, generation)

    def _rebuild_and_publish(self) -> Caches:
        caches = self._build_caches()
        self._publish(caches)
        return caches

    def _build_lexical(self, rows_ids: Sequence[int], folded: Sequence[str]) -> LexicalIndex:
        return LexicalIndex.build(rows_ids, [self._tokenize(f) for f in folded])

    def _publish(self, caches: Caches) -> None:
        """Write a generation's caches to their own folder, then point the stamp at them.

        Called with the write lock held.
        """
        root = self.directory / CACHES
        folder = root / str(caches.generation)
        tmp = root / f"{caches.generation}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)  # a half-published run that died
        tmp.mkdir(parents=True)
        caches.vectors.save(tmp / VECTORS)
        caches.lexical.save(tmp / LEXICAL)
        os.replace(tmp, folder)
        stamp = self.directory / f"{STAMP}.tmp"
        stamp.write_text(json.dumps({"generation": caches.generation}))
        os.replace(stamp, self.directory / STAMP)
        # Older generations can go: a reader that already loaded one keeps its copy (FAISS
        # reads the whole file, bm25s maps it and the mapping outlives the unlink).
        for old in root.iterdir():
            if old.name != folder.name:
                shutil.rmtree(old, ignore_errors=True)
        for legacy in (VECTORS, LEXICAL):  # the pre-generation layout
            path = self.directory / legacy
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def refresh(self) -> None:
        """Adopt caches another process published since ours were loaded.

        Costs one `stat` when nothing changed, so the retriever calls it on every query.
        """
        try:
            st = os.stat(self.directory / STAMP)
        except OSError:
            return
        seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        if seen == self._stamp_seen:
            return
        with self._refresh_lock:
            if seen == self._stamp_seen:
                return
            published = self._read_stamp()
            if published is not None and published > self._caches.generation:
                caches = self._load_generation(published)
                if caches is None:
                    return  # superseded while we looked: try again on the next query
                self._caches = caches
            self._stamp_seen = seen

    # -- reading ------------------------------------------------------------------------

    def tokenize(self, folded: str) -> list[str]:
        return self._tokenize(folded)

    def hybrid_candidates(
        self, tokens: Sequence[str], query_vector: np.ndarray, k: int
    ) -> tuple[dict[int, float], dict[int, float], dict[str, float]]:
        """Top `k` of each ranking, each candidate scored by both (cosine, BM25), and timings.

        Scoring the union fully, rather than treating "absent from the other top k" as zero,
        keeps a passage that is 51st lexically but 1st densely from losing its lexical half.
        """
        caches = self._caches  # one snapshot for the whole query
        t0 = time.perf_counter()
        lexical_all = caches.lexical.scores(tokens)
        lexical_top = caches.lexical.top(lexical_all, k)
        t1 = time.perf_counter()
        dense_top = caches.vectors.search(query_vector, k)
        ids = {pid for pid, _ in lexical_top} | {pid for pid, _ in dense_top}
        dense = caches.vectors.similarities(query_vector, ids)
        t2 = time.perf_counter()
        lexical = caches.lexical.score_of(lexical_all, ids)
        timings = {"lexical": (t1 - t0) * 1000, "dense_search": (t2 - t1) * 1000}
        return dense, lexical, timings

    def idf(self, tokens: Iterable[str]) -> dict[str, float]:
        return self._caches.lexical.idf(tokens)

    def _reader(self) -> Store:
        reader: Store | None = getattr(self._local, "store", None)
        if reader is None:
            reader = Store(self.directory / STORE_FILE, readonly=True)
            self._local.store = reader
            with self._readers_lock:
                self._readers.append(reader)
        return reader

    def passages(self, ids: Sequence[int]) -> dict[int, Passage]:
        return self._reader().passages(ids)

    def documents(self) -> list[DocumentRow]:
        return self._reader().documents()

    def counts(self) -> dict[str, int]:
        """Documents, paragraphs and passages in the committed store."""
        reader = self._reader()
        return {table: reader.count(table) for table in ("documents", "paragraphs", "passages")}

    def document(self, file: str) -> DocumentRow | None:
        return self._reader().find_document(file)

    def paragraph_context(
        self, file: str, number: int, context: int
    ) -> tuple[list[ParagraphRow], ParagraphRow | None, list[ParagraphRow]] | None:
        """A paragraph with its neighbours (see `Store.paragraph_context`); None: no file."""
        reader = self._reader()
        row = reader.find_document(file)
        if row is None:
            return None
        return reader.paragraph_context(row.id, number, context)

    def __len__(self) -> int:
        return len(self._caches.vectors)

    # -- writing ------------------------------------------------------------------------

    @contextmanager
    def writing(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the write lock (this process's and the directory's) around a change.

        Args:
            timeout: Seconds to wait for another writer; default: the index's `lock_timeout`.

        Raises:
            IndexBusyError: Another process kept the lock for longer than `timeout`.
        """
        with self._thread_lock, self._lock(timeout):
            self._sync()
            yield

    def rebuild_caches(self) -> None:
        """Rebuild the caches from the store and publish them (`rag check --repair`)."""
        with self.writing():
            self._caches = self._rebuild_and_publish()
            self._working = None

    def _sync(self) -> None:
        # Another process may have written since this one last did: its passages are not
        # in our MinHash index or working vectors, and our caches may be older than the store.
        current = self.store.generation()
        if current == self._state_generation:
            return
        self._near = None
        self._working = None
        if self._caches.generation != current:
            published = self._read_stamp()
            caches = self._load_generation(current) if published == current else None
            self._caches = caches if caches is not None else self._rebuild_and_publish()
        self._state_generation = current

    def _near_duplicates(self) -> NearDuplicateIndex:
        if self._near is None:
            near = NearDuplicateIndex(
                self.config.dedupe_threshold, self.config.minhash_perm, self.config.shingle_size
            )
            for row in self.store.iter_passages():
                near.add(row.id, signature_from_bytes(row.signature, self.config.minhash_perm))
            self._near = near
        return self._near

    def _working_vectors(self) -> VectorIndex:
        # Writes go to a private copy so readers keep searching the committed snapshot.
        if self._working is None:
            self._working = self._caches.vectors.copy()
        return self._working

    def unchanged(self, file: str, content_hash_: str) -> bool:
        row = self.store.find_document(file)
        return row is not None and row.content_hash == content_hash_

    def add_documents(self, batch: Sequence[NewDocument], embed: EmbedPassages) -> AddResult:
        """Store documents' chunks as passages, merging duplicates; replaces older versions.

        Exact duplicates (same `content_hash`) and near duplicates (MinHash Jaccard at or
        above the threshold) become extra sources of the passage already stored, so the
        passage is embedded once and every file that holds it can be cited. The batch is one
        transaction and one call to `embed`: the model is fastest on full batches, and most
        files are too small to fill one.
        """
        files = [item.file for item in batch]
        if len(set(files)) != len(files):
            raise ValueError("a batch holds one version of each file")
        result = AddResult()
        near = self._near_duplicates()
        vectors = self._working_vectors()
        try:
            with self.store.transaction():
                fresh: list[tuple[int, str]] = []
                for item in batch:
                    fresh.extend(self._add(item, near, vectors, result))
                if fresh:
                    # Passages are embedded in folded form, like queries, so the dense side
                    # also sees one script.
                    matrix = embed([text for _, text in fresh])
                    self.store.set_vectors([pid for pid, _ in fresh], matrix)
                    vectors.add([pid for pid, _ in fresh], matrix)
                self._state_generation = self.store.bump_generation()
        except BaseException:
            # The store rolled back; the in-memory working state no longer matches it.
            self._near = None
            self._working = None
            raise
        return result

    def _add(
        self, item: NewDocument, near: NearDuplicateIndex, vectors: VectorIndex, result: AddResult
    ) -> list[tuple[int, str]]:
        """Insert one document; return the new passages that still need a vector."""
        result.passages += len(item.chunks)
        existing = self.store.find_document(item.file)
        # An edited file keeps most of its passages: reuse their vectors rather than paying
        # the model again for text it has already embedded.
        reusable: dict[str, np.ndarray] = {}
        if existing is not None:
            reusable = self.store.document_vectors(existing.id)
            self._remove(existing.id, near, vectors)
        doc_id = self.store.insert_document(item.file, item.document)
        fresh: list[tuple[int, str]] = []
        for chunk in item.chunks:
            digest = content_hash(chunk.text)
            signature = near.signature(chunk.text)
            pid = self._place(digest, signature, near, result)
            if pid is None:
                folded = fold_script(chunk.text)
                vector = reusable.get(digest)
                pid = self.store.insert_passage(
                    chunk.text,
                    folded,
                    digest,
                    signature_bytes(signature),
                    vector if vector is not None else np.zeros(0, np.float32),
                )
                near.add(pid, signature)
                if vector is None:
                    fresh.append((pid, folded))
                else:
                    vectors.add([pid], vector[None, :])
                    result.reused_vectors += 1
                result.new_passages += 1
            self.store.insert_source(pid, doc_id, chunk.source)
        return fresh

    def _place(
        self, digest: str, signature: MinHash, near: NearDuplicateIndex, result: AddResult
    ) -> int | None:
        """The stored passage a chunk duplicates, if any."""
        pid = self.store.passage_id_by_hash(digest)
        if pid is not None:
            result.exact_duplicates += 1
            return pid
        pid = near.find(signature)
        if pid is not None:
            result.near_duplicates += 1
        return pid

    def _remove(self, doc_id: int, near: NearDuplicateIndex, vectors: VectorIndex) -> None:
        orphans = self.store.delete_document(doc_id)
        vectors.remove(orphans)
        for pid in orphans:
            near.remove(pid)

    def remove(self, file: str, timeout: float | None = None) -> bool:
        """Drop a document and publish; passages it alone held go too. False: no such file.

        `timeout`: see `writing`.
        """
        with self.writing(timeout):
            removed = self._remove_document(file)
            self.commit()
            return removed

    def _remove_document(self, file: str) -> bool:
        row = self.store.find_document(file)
        if row is None:
            return False
        near = self._near_duplicates()
        vectors = self._working_vectors()
        try:
            with self.store.transaction():
                self._remove(row.id, near, vectors)
                self._state_generation = self.store.bump_generation()
        except BaseException:
            self._near = None
            self._working = None
            raise
        return True

    def commit(self) -> None:
        """Publish pending writes: rebuild the lexical index, save caches, swap the snapshot."""
        if self._working is None:
            return
        ids, folded = self.store.folded_texts()
        caches = Caches(self._working, self._build_lexical(ids, folded), self.store.generation())
        self._publish(caches)
        self._caches = caches
        self._working = None

    def close(self) -> None:
        with self._readers_lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()
        self.store.close()


def open_index(
    directory: Path, lock_timeout: float = 600.0, on_wait: Callable[[str], None] | None = None
) -> Index:
    """Open an existing index as it was built, without an embedder (to list or remove).

    Raises:
        NoIndexError: `directory` holds no index; nothing is created.
    """
    path = directory / STORE_FILE
    if not path.is_file():
        raise NoIndexError(f"no index at {directory} (no store.sqlite)")
    store = Store(path, readonly=True)
    try:
        config = IndexConfig.from_store(store)
    finally:
        store.close()
    return Index(directory, config, lock_timeout, on_wait)
