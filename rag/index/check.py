"""`rag check`: prove an index directory is whole, or say exactly what is not.

The store is the source of truth; the published caches must hold exactly its passages:
every stored passage has its vector (the same vector) in FAISS and a row in the BM25
index, and neither cache holds a passage the store does not. A stale stamp (the store is
newer than the published caches) is not damage: a write is running or was killed between
its commit and its publish, and the next writer, or `rag check --repair`, rebuilds them.

A Milvus index has no caches: its collections are searched in place. There the check
verifies the collections' own invariants (`rag.store.milvus_check`), and an interrupted
write (rows the next writer collects) is reported as stale, like unpublished caches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rag.index.index import open_index, read_config
from rag.store.base import LexicalIndex, VectorIndex
from rag.store.factory import make_backend
from rag.store.location import Location
from rag.store.lock import IndexLock
from rag.store.snapshot import load_caches, published_generation
from rag.store.sqlite import STORE_FILE, SQLiteStore


@dataclass
class CheckReport:
    directory: str
    generation: int = 0  # the store's
    published: int | None = None  # the caches'
    documents: int = 0
    passages: int = 0
    vectors: int = 0
    lexical: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def stale(self) -> bool:
        return self.published != self.generation

    @property
    def ok(self) -> bool:
        return not self.problems


def check_index(location: Location | Path) -> CheckReport:
    """Compare an index's store with its published caches, changing nothing.

    Raises:
        NoIndexError: there is no index at `location`.
        IndexMismatchError: the directory holds another backend's index.
    """
    if isinstance(location, Path):
        location = Location.local(location)
    if location.backend != "local":
        return _check_in_place(location)
    directory = location.directory
    config = read_config(location)
    report = CheckReport(str(directory))
    store = SQLiteStore(directory / STORE_FILE, readonly=True)
    try:
        with store.snapshot():  # one committed state for every query below
            report.generation = store.generation()
            report.documents = store.count("documents")
            report.problems += store.integrity_problems(config.dim)
            stored = store.vectors_by_id()
    finally:
        store.close()
    report.passages = len(stored)
    report.published = published_generation(directory)
    if report.stale:
        return report  # the caches describe an older generation; nothing to compare
    try:
        caches = load_caches(directory, report.generation)
    except (OSError, ValueError, RuntimeError) as err:
        if published_generation(directory) != report.published:
            # A writer published a newer generation meanwhile and deleted this one's
            # files: not damage. Check the newer state.
            return check_index(location)
        report.problems.append(
            f"published caches of generation {report.generation} unreadable: {err}"
        )
        return report
    report.vectors, report.lexical = len(caches.vectors), len(caches.lexical)
    report.problems += _compare(stored, caches.vectors, caches.lexical, config.dim)
    return report


def repair_index(
    location: Location | Path, lock_timeout: float, lock: IndexLock | None = None
) -> CheckReport:
    """Rebuild the caches from the store (waiting for a running writer), then check.

    On Milvus, collect what an interrupted write left. Damage inside the store itself
    cannot be rebuilt from anything and stays reported. `lock`: the one every writer takes
    (`rag.pipeline.write_lock`); None: the backend's own.
    """
    # NoIndexError before anything is created.
    index = open_index(location, lock_timeout, lock=lock)
    try:
        index.rebuild_caches()
    finally:
        index.close()
    return check_index(location)


def _check_in_place(location: Location) -> CheckReport:
    """A backend whose store is its index: check the store's invariants."""
    config = read_config(location)
    report = CheckReport(location.describe())
    store = make_backend(location.backend).open_store(location, True)
    try:
        report.generation = store.generation()
        report.documents = store.count("documents")
        report.passages = store.count("passages")
        dirty = store.get_meta("dirty") == "1"
        # An interrupted write's leftovers are what the next writer collects: not damage.
        report.published = None if dirty else report.generation
        report.vectors = report.lexical = report.passages
        if not dirty:
            report.problems += store.integrity_problems(config.dim)
    finally:
        store.close()
    return report


def _compare(
    stored: dict[int, bytes], vectors: VectorIndex, lexical: LexicalIndex, dim: int
) -> list[str]:
    problems: list[str] = []
    store_ids = set(stored)
    for name, ids in (("vector index", vectors.ids()), ("lexical index", lexical.ids)):
        held = [int(i) for i in ids]
        if len(held) != len(set(held)):
            problems.append(f"{name} holds some passages twice")
        problems += _differences(name, store_ids, set(held))
    if lexical.matrix_rows != len(lexical):
        problems.append(
            f"lexical index matrix has {lexical.matrix_rows} rows for {len(lexical)} passages"
        )
    # Malformed stored vectors are the store check's finding; compare the well-formed ones.
    common = sorted(
        pid for pid in store_ids & {int(i) for i in vectors.ids()} if len(stored[pid]) == 4 * dim
    )
    if vectors.dim != dim:
        problems.append(f"vector index has {vectors.dim} dimensions, the index {dim}")
    elif common:
        expected = np.stack([np.frombuffer(stored[i], dtype=np.float32) for i in common])
        wrong = np.flatnonzero(~np.isclose(vectors.vectors(common), expected).all(axis=1))
        if len(wrong):
            problems.append(
                f"vector index disagrees with the store on {len(wrong)} passages "
                f"(e.g. {', '.join(str(common[i]) for i in wrong[:5])})"
            )
    return problems


def _differences(name: str, store_ids: set[int], held: set[int]) -> list[str]:
    out = []
    for what, ids in (
        (f"stored passages missing from the {name}", store_ids - held),
        (f"{name} entries with no stored passage", held - store_ids),
    ):
        if ids:
            shown = ", ".join(map(str, sorted(ids)[:5])) + (", ..." if len(ids) > 5 else "")
            out.append(f"{what}: {len(ids)} ({shown})")
    return out
