"""Storage backends by name: the one place that maps `RAG_BACKEND` to implementations.

The name is recorded in the index config (`rag.index.config.IndexConfig.backend`), so an
index is always reopened with the backend it was built with. A new backend is one module
(its `VectorIndex`, `LexicalIndex`, `PassageStore` and `Snapshots`) and one line in
`BACKENDS`. Every function takes a `Location` (`rag.store.location`): a directory for the
local backend, a Milvus target and collection name for Milvus.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from rag.store.base import LexicalIndex, PassageStore, VectorIndex
from rag.store.bm25s import Bm25sLexicalIndex
from rag.store.faiss import FaissVectorIndex
from rag.store.location import LITE_FILE, Location
from rag.store.lock import IndexLock, RefusingLock, WriteLock
from rag.store.snapshot import Caches, LocalSnapshots, Snapshots
from rag.store.sqlite import STORE_FILE, SQLiteStore, create_store

# (location, timeout, on_wait) -> the index's write lock.
MakeLock = Callable[[Location, float, Callable[[str], None] | None], IndexLock]


@dataclass(frozen=True)
class Backend:
    """How to build each storage part of an index."""

    name: str
    # Whether `location` holds a store, and how to create one whole (with its config
    # metadata) under the index's write lock, so no process ever opens half a store.
    store_exists: Callable[[Location], bool]
    create_store: Callable[[Location, dict[str, str]], None]
    # (location, readonly) -> the store; writers take one, each reading thread its own.
    open_store: Callable[[Location, bool], PassageStore]
    # Building search indexes in memory from stored rows (None: the store is the index,
    # searched in place, and `live_caches` gives its views).
    build_vectors: Callable[[int, Sequence[int], np.ndarray], VectorIndex] | None
    build_lexical: Callable[[Sequence[int], Sequence[list[str]]], LexicalIndex] | None
    # (location, the writer's store) -> where snapshots are published.
    snapshots: Callable[[Location, PassageStore], Snapshots]
    lock: MakeLock
    # Whether a directory holds an index of this backend (cheap: names a mismatch early).
    claims: Callable[[Path], bool]
    live_caches: Callable[[PassageStore, int], Caches] | None = None


# -- local: SQLite, FAISS and bm25s files in a directory --------------------------------------


def _local_exists(location: Location) -> bool:
    return (location.directory / STORE_FILE).is_file()


def _local_create(location: Location, meta: dict[str, str]) -> None:
    create_store(location.directory / STORE_FILE, meta)


def _local_store(location: Location, readonly: bool) -> PassageStore:
    return SQLiteStore(location.directory / STORE_FILE, readonly=readonly)


def _local_lock(
    location: Location, timeout: float, on_wait: Callable[[str], None] | None
) -> IndexLock:
    location.directory.mkdir(parents=True, exist_ok=True)
    return WriteLock(location.directory, timeout, on_wait)


# -- milvus: collections on Milvus Lite or a server (imported only when used) -----------------


def _milvus_exists(location: Location) -> bool:
    from rag.store.milvus_schema import acquire_client, exists, release_client

    assert location.milvus is not None
    if location.milvus.lite and not location.milvus.lite_path.exists():
        return False  # no file: do not create one just to look
    client = acquire_client(location.milvus)
    try:
        return bool(exists(client, location))
    finally:
        release_client(location.milvus)


def _milvus_create(location: Location, meta: dict[str, str]) -> None:
    from rag.store.milvus_schema import (
        acquire_client,
        create_collections,
        create_meta,
        release_client,
    )

    assert location.milvus is not None
    client = acquire_client(location.milvus)
    try:
        create_collections(client, location, int(meta.get("dim", "0")))
        create_meta(client, location, meta)
    finally:
        release_client(location.milvus)


def _milvus_store(location: Location, readonly: bool) -> PassageStore:
    from rag.store.milvus import MilvusStore

    return cast(PassageStore, MilvusStore(location, readonly))


def _milvus_snapshots(location: Location, store: PassageStore) -> Snapshots:
    from rag.store.milvus import MilvusStore
    from rag.store.milvus_search import MilvusSnapshots

    assert isinstance(store, MilvusStore)
    return MilvusSnapshots(store)


def _milvus_live(store: PassageStore, generation: int) -> Caches:
    from rag.store.milvus import MilvusStore
    from rag.store.milvus_search import live_caches

    assert isinstance(store, MilvusStore)
    return live_caches(store, generation)


def _milvus_lock(
    location: Location, timeout: float, on_wait: Callable[[str], None] | None
) -> IndexLock:
    """Milvus Lite: a file lock beside its database file. A server: refuse to write.

    Writers on a Milvus server may run on several machines: only a lock they all see
    serialises them (`RAG_REDIS_URL`, passed in as `Index(lock=...)`).
    """
    target = location.milvus
    assert target is not None
    if target.lite:
        path = target.lite_path
        path.parent.mkdir(parents=True, exist_ok=True)
        prefix = f"{path.name}.{location.collection}."
        return WriteLock(path.parent, timeout, on_wait, prefix=prefix)
    return RefusingLock(
        f"{location.describe()}: writing to a Milvus server needs a write lock shared by "
        "every writer; set RAG_REDIS_URL (a Redis lock) or use a Milvus Lite file"
    )


def _milvus_claims(directory: Path) -> bool:
    return (directory / LITE_FILE).exists()


BACKENDS: dict[str, Backend] = {
    "local": Backend(
        "local",
        _local_exists,
        _local_create,
        _local_store,
        FaissVectorIndex.build,
        Bm25sLexicalIndex.build,
        lambda location, _store: LocalSnapshots(location.directory),
        _local_lock,
        lambda directory: (directory / STORE_FILE).is_file(),
    ),
    "milvus": Backend(
        "milvus",
        _milvus_exists,
        _milvus_create,
        _milvus_store,
        None,
        None,
        _milvus_snapshots,
        _milvus_lock,
        _milvus_claims,
        _milvus_live,
    ),
}


def make_backend(name: str) -> Backend:
    """The backend called `name`.

    Raises:
        ValueError: No such backend; the message lists the valid names.
    """
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}") from None
