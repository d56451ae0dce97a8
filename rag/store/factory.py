"""Storage backends by name: the one place that maps `RAG_BACKEND` to implementations.

The name is recorded in the index config (`rag.index.config.IndexConfig.backend`), so an
index is always reopened with the backend it was built with. A new backend is one module
(its `VectorIndex`, `LexicalIndex`, `PassageStore` and `Snapshots`) and one line in
`BACKENDS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.store.base import LexicalIndex, PassageStore, VectorIndex
from rag.store.bm25s import Bm25sLexicalIndex
from rag.store.faiss import FaissVectorIndex
from rag.store.snapshot import LocalSnapshots, Snapshots
from rag.store.sqlite import STORE_FILE, SQLiteStore, create_store


@dataclass(frozen=True)
class Backend:
    """How to build each storage part of an index directory."""

    name: str
    # Whether `directory` holds a store, and how to create one whole (with its config
    # metadata) under the index's write lock, so no process ever opens half a store.
    store_exists: Callable[[Path], bool]
    create_store: Callable[[Path, dict[str, str]], None]
    # (directory, readonly) -> the store; writers take one, each reading thread its own.
    open_store: Callable[[Path, bool], PassageStore]
    build_vectors: Callable[[int, Sequence[int], np.ndarray], VectorIndex]
    build_lexical: Callable[[Sequence[int], Sequence[list[str]]], LexicalIndex]
    snapshots: Callable[[Path], Snapshots]


def _local_exists(directory: Path) -> bool:
    return (directory / STORE_FILE).is_file()


def _local_create(directory: Path, meta: dict[str, str]) -> None:
    create_store(directory / STORE_FILE, meta)


def _local_store(directory: Path, readonly: bool) -> PassageStore:
    return SQLiteStore(directory / STORE_FILE, readonly=readonly)


BACKENDS: dict[str, Backend] = {
    "local": Backend(
        "local",
        _local_exists,
        _local_create,
        _local_store,
        FaissVectorIndex.build,
        Bm25sLexicalIndex.build,
        LocalSnapshots,
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
