"""An index directory opened for reading and (one writer at a time) writing.

Layout of a local index directory:
    store.sqlite              documents, paragraphs, passages, sources, vectors (the source
                              of truth); its `generation` counts committed writes
    caches/<g>/, caches.json  the published FAISS and bm25s snapshots (`rag.store.snapshot`)
    write.lock, write.owner   the cross-process writer lock and who holds it (`rag.store.lock`)

A write commits to the store first, then publishes the next generation's snapshot. A process
killed at any point leaves either the old stamp (the next writer rebuilds the caches from the
store) or the new one. `Index` opens the directory and joins the two halves: the read front
(`rag.index.reader`) and the write coordination (`rag.index.writer`).

An index is named by a `Location` (`rag.store.location`): the layout above is the local
backend's; the Milvus backend keeps everything in Milvus collections (`rag.store.milvus`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from rag.index.config import AddResult, IndexConfig, IndexMismatchError, NewDocument, NoIndexError
from rag.index.reader import IndexReader
from rag.index.writer import EmbedPassages, IndexWriter, build_caches
from rag.store.base import DocumentRow
from rag.store.factory import BACKENDS, Backend, make_backend
from rag.store.location import Location
from rag.store.lock import IndexLock
from rag.store.snapshot import Caches
from rag.text.tokenize import get_tokenizer

# What `rag reindex` can change in place besides the tokenizer (`--tokenizer`, local only): the
# vectors, not the passages.
REEMBEDDABLE = frozenset({"embedder", "dim"})


class Index:
    """An index, opened for reading and (one writer at a time) writing.

    Args:
        location: Where the index is (a directory: the local backend there); created if
            missing.
        config: What the index is (or will be) built with; `config.backend` names the
            storage backend (`rag.store.factory`) and must be the location's. A config
            without a tokenizer takes the index's (a new index: the newest); `self.config`
            is the config decided.
        lock_timeout: Seconds a write waits for another process's write to finish.
        on_wait: Told who holds the lock when a write has to wait.
        lock: The write lock, when not the backend's own (a Redis lock shared by
            replicas: `rag.store.locking.shared_write_lock`).

    Raises:
        IndexMismatchError: The index was built with another backend or other settings.
    """

    def __init__(
        self,
        location: Location | Path,
        config: IndexConfig,
        lock_timeout: float = 600.0,
        on_wait: Callable[[str], None] | None = None,
        lock: IndexLock | None = None,
    ) -> None:
        if isinstance(location, Path):
            if config.backend != "local":
                raise ValueError(
                    f"a {config.backend} index is opened by a Location "
                    f"(rag.store.location.location_from_settings), not a directory"
                )
            location = Location.local(location)
        self.location = location
        self.directory = location.directory
        self.config = config
        backend = make_backend(config.backend)
        if location.backend != config.backend:
            raise IndexMismatchError(
                f"index at {location.describe()} is a {location.backend} index; "
                f"settings ask backend {config.backend}"
            )
        _refuse_other_backends(location)
        if location.backend == "local":
            location.directory.mkdir(parents=True, exist_ok=True)
        self._lock = lock if lock is not None else backend.lock(location, lock_timeout, on_wait)
        self._create_if_missing(backend)
        self.store = backend.open_store(location, False)  # the writer's connection
        if self.store.replace_pending():  # a `rag reindex` killed in its swap: finish it
            with self._lock():
                if self.store.replace_pending():
                    self.store.finish_replace()
        # RAG_TOKENIZER unset: the tokenizer the index was built with (on a new index, what
        # `_create_if_missing` recorded; an index built with `bigram` keeps tokenising with it).
        self.config = config = config.with_tokenizer_of(self.store.get_meta("tokenizer"))
        self._check_config()
        self._snapshots = backend.snapshots(location, self.store)
        tokenize = get_tokenizer(str(config.tokenizer))
        self._backend, self._tokenize = backend, tokenize
        self.reader = IndexReader(
            self._open_caches(),
            self._snapshots,
            lambda: backend.open_store(location, True),
            tokenize,
            config.embedder,
            config.tokenizer,
        )
        self.writer = IndexWriter(
            self.store, config, backend, self._snapshots, self.reader, self._lock, tokenize
        )

    # -- opening ------------------------------------------------------------------------

    def _create_if_missing(self, backend: Backend) -> None:
        """Create the store, once, whatever number of processes start on a new directory.

        The others wait for the write lock (or are refused after `lock_timeout`, like any
        writer) and then find the store complete.
        """
        if backend.store_exists(self.location):
            return
        with self._lock():
            if not backend.store_exists(self.location):
                backend.create_store(self.location, self.config.with_tokenizer_of(None).as_meta())

    def _check_config(self) -> None:
        wanted = self.config.as_meta()
        stored = {k: self.store.get_meta(k) for k in wanted}
        if all(v is None for v in stored.values()):
            with self._lock():
                if all(self.store.get_meta(k) is None for k in wanted):
                    with self.store.transaction():
                        for k, v in wanted.items():
                            self.store.set_meta(k, v)
                    return
            self._check_config()  # another process created it first: compare with theirs
            return
        if stored["backend"] is None:
            stored["backend"] = IndexConfig.from_store(self.store).backend  # built before it
        diff = {k: (stored[k], wanted[k]) for k in wanted if stored[k] != wanted[k]}
        if diff:
            details = ", ".join(
                f"{k}: index has {a}, settings ask {b}" for k, (a, b) in diff.items()
            )
            if set(diff) <= REEMBEDDABLE:
                advice = (
                    f"run `rag reindex` to re-embed its passages with {wanted['embedder']} "
                    "(no file is read again), or use the embedder it was built with"
                )
            elif set(diff) == {"tokenizer"}:
                advice = (
                    f"unset RAG_TOKENIZER to use the index's own, or run `rag reindex "
                    f"--tokenizer {wanted['tokenizer']}` to re-tokenize its passages "
                    "(no file is read again)"
                )
            else:
                advice = (
                    "use the settings it was built with, or re-ingest into a new index directory"
                )
            raise IndexMismatchError(
                f"index at {self.location.describe()} was built differently ({details}); {advice}"
            )

    def _open_caches(self) -> Caches:
        """The published caches if they are current; otherwise rebuild them from the store.

        A stale stamp means a writer is between its commit and its publish, or died there.
        If the lock is free it died: rebuild and publish. If not, serve the last published
        caches (a consistent older snapshot) and adopt the writer's on a later `refresh`.
        """
        published = self._snapshots.published()
        if published is not None and published == self.store.generation():
            caches = self._snapshots.load(published)
            if caches is not None:
                return caches
        if self._lock.try_acquire():
            try:
                caches = build_caches(self.store, self.config, self._backend, self._tokenize)
                self._snapshots.publish(caches)
                return caches
            finally:
                self._lock.release()
        if published is not None:
            caches = self._snapshots.load(published)
            if caches is not None:
                return caches
        return build_caches(
            self.store, self.config, self._backend, self._tokenize
        )  # nothing usable published yet: in memory only

    # -- the read front -------------------------------------------------------------------

    def refresh(self) -> None:
        self.reader.refresh()

    def __len__(self) -> int:
        return len(self.reader)

    def documents(self) -> list[DocumentRow]:
        return self.reader.documents()

    # -- writing --------------------------------------------------------------------------

    @contextmanager
    def writing(self, timeout: float | None = None) -> Iterator[None]:
        """See `IndexWriter.writing`."""
        with self.writer.writing(timeout):
            yield

    def unchanged(self, file: str, content_hash_: str) -> bool:
        return self.writer.unchanged(file, content_hash_)

    def indexed_hash(self, file: str) -> str | None:
        return self.writer.indexed_hash(file)

    def indexed_hashes(self) -> dict[str, str]:
        """Every indexed file's content hash, by file name."""
        return {row.file: row.content_hash for row in self.writer.store.documents()}

    def indexed_passage_hashes(self, files: Iterable[str]) -> dict[str, set[str]]:
        """The content hashes of the passages held by the indexed version of each of
        `files` that is indexed: the passages whose vectors a re-read of it reuses."""
        store = self.writer.store
        ids = {row.file: row.id for row in store.documents()}
        return {file: store.document_hashes(ids[file]) for file in files if file in ids}

    def add_documents(self, batch: Sequence[NewDocument], embed: EmbedPassages) -> AddResult:
        return self.writer.add_documents(batch, embed)

    def remove(self, file: str, embed: EmbedPassages, timeout: float | None = None) -> bool:
        """Drop a document and publish; passages it alone held go too. False: no such file.

        `embed`: for a merged passage that shows another source's text from now on.
        `timeout`: see `writing`.
        """
        return bool(self.remove_all([file], embed, timeout))

    def remove_all(
        self, files: Sequence[str], embed: EmbedPassages, timeout: float | None = None
    ) -> list[str]:
        """Drop documents and publish once; those there were. See `remove`."""
        with self.writing(timeout):
            try:
                return [file for file in files if self.writer.remove_document(file, embed)]
            finally:
                self.commit()  # publish the removals done, even if a later one failed

    def commit(self) -> None:
        self.writer.commit()

    def rebuild_caches(self) -> None:
        self.writer.rebuild_caches()

    def reembed(
        self,
        config: IndexConfig,
        embed: EmbedPassages,
        batch: int = 256,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Re-embed every stored passage into `config`'s embedder (`rag reindex`).

        Holds the write lock throughout; readers keep the old vectors until the new ones
        replace them all at once (`PassageStore.replace_vectors`). Returns the passages.

        Raises:
            IndexMismatchError: `config` differs from the index's in more than the embedder.
        """
        other = {
            f.name
            for f in fields(IndexConfig)
            if f.name not in REEMBEDDABLE
            and getattr(config, f.name) != getattr(self.config, f.name)
        }
        if other == {"tokenizer"}:
            raise IndexMismatchError(
                f"the index is tokenized with {self.config.tokenizer}, settings ask "
                f"{config.tokenizer}: `rag reindex --tokenizer {config.tokenizer}` changes "
                "that (and only that), or unset RAG_TOKENIZER to keep the index's"
            )
        if other:
            raise IndexMismatchError(
                "rag reindex changes only the embedder; the index also differs in "
                f"{', '.join(sorted(other))}: re-ingest into a new index directory"
            )
        with self.writing():
            ids, folded = self.store.folded_texts()
            matrix = np.zeros((len(ids), config.dim), dtype=np.float32)
            for start in range(0, len(ids), batch):
                matrix[start : start + batch] = embed(folded[start : start + batch])
                if on_progress is not None:
                    on_progress(min(start + batch, len(ids)), len(ids))
            self.writer.replace_vectors(ids, matrix, config)
            self.config = config
        return len(ids)

    def retokenize(self, name: str) -> int:
        """Make `name` the index's tokenizer: its lexical index rebuilt from the stored folded
        passage text (`rag reindex --tokenizer`). Returns the passages.

        Vectors are kept and no file is read again. Holds the write lock; the store records
        the new name in the same commit that moves its generation (Milvus: with every
        passage's new tokens, swapped in at once, `MilvusStore.replace_tokens`), and readers
        adopt the lexical index of the new tokens whole. A process that opened the index
        before is refused (writing) until it is restarted; reading, a local one keeps its
        snapshot, while on Milvus it searches the new tokens with its old tokenizer.

        Raises:
            ValueError: An unknown tokenizer.
        """
        tokenize = get_tokenizer(name)
        with self.writing():
            passages = self.store.count("passages")
            if name != self.config.tokenizer:
                self.writer.replace_tokenizer(name, tokenize)
                self.config = replace(self.config, tokenizer=name)
                self._tokenize = tokenize
        return passages

    def close(self) -> None:
        self.reader.close()
        self.store.close()


def read_config(location: Location) -> IndexConfig:
    """What the index at `location` was built with.

    Raises:
        NoIndexError: There is no index there; nothing is created.
        IndexMismatchError: The index there is of another backend.
    """
    backend = make_backend(location.backend)
    if not backend.store_exists(location):
        _refuse_other_backends(location)
        raise NoIndexError(f"no index at {location.describe()}")
    store = backend.open_store(location, True)
    try:
        return IndexConfig.from_store(store)
    finally:
        store.close()


def open_index(
    location: Location | Path,
    lock_timeout: float = 600.0,
    on_wait: Callable[[str], None] | None = None,
    lock: IndexLock | None = None,
) -> Index:
    """Open an existing index as it was built, without an embedder (to list or remove).

    Raises:
        NoIndexError: There is no index at `location`; nothing is created.
    """
    if isinstance(location, Path):
        location = Location.local(location)
    return Index(location, read_config(location), lock_timeout, on_wait, lock)


def _refuse_other_backends(location: Location) -> None:
    """An index directory that holds another backend's index is an error that says so."""
    milvus = location.milvus
    if milvus is not None and not (milvus.lite and milvus.lite_path.parent == location.directory):
        return  # the index is elsewhere: what the directory holds is not this index
    for name, other in BACKENDS.items():
        if name != location.backend and other.claims(location.directory):
            raise IndexMismatchError(
                f"{location.directory} holds a {name} index; settings ask backend "
                f"{location.backend} (RAG_BACKEND={name} opens it)"
            )


__all__ = ["Index", "IndexMismatchError", "NoIndexError", "open_index", "read_config"]
