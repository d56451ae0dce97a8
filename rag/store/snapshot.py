"""Snapshot publishing: how a committed state of the store becomes what readers search.

The local backend keeps its FAISS and bm25s indexes as caches of the SQLite store, one
folder per store generation:

    caches/<g>/vectors.faiss  FAISS index of passage vectors, by passage id, at generation g
    caches/<g>/lexical/       bm25s index of folded passage text, by passage id
    caches.json               which generation's caches are published

A writer saves the next generation's caches into a new folder and publishes them by
replacing `caches.json`. Caches are never rewritten in place, so a process that reads the
stamp always loads a complete set. This is apart from search/add/remove (`rag.store.base`):
a server-side backend, whose indexes are the truth, publishes nothing (`Snapshots` methods
become no-ops there).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rag.store.base import LexicalIndex, VectorIndex
from rag.store.bm25s import Bm25sLexicalIndex
from rag.store.faiss import FaissVectorIndex

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


class Snapshots(Protocol):
    """Where published snapshots live, for one index."""

    def published(self) -> int | None:
        """The generation readers should search; None if nothing readable is published."""
        ...

    def stamp_signature(self) -> tuple[int, int, int] | None:
        """Changes whenever something is published: a reader's cheap per-query check."""
        ...

    def load(self, generation: int) -> Caches | None:
        """The published caches of `generation`, or None if missing or unreadable."""
        ...

    def publish(self, caches: Caches) -> None:
        """Make `caches` what readers search; called with the write lock held."""
        ...


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
        FaissVectorIndex.load(folder / VECTORS),
        Bm25sLexicalIndex.load(folder / LEXICAL),
        generation,
    )


class LocalSnapshots:
    """Generations of FAISS + bm25s files beside the SQLite store, published by a stamp."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def published(self) -> int | None:
        return published_generation(self.directory)

    def stamp_signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.directory / STAMP)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def load(self, generation: int) -> Caches | None:
        try:
            return load_caches(self.directory, generation)
        except (OSError, ValueError, KeyError, RuntimeError):
            return None  # missing (superseded meanwhile) or unreadable

    def publish(self, caches: Caches) -> None:
        """Write a generation's caches to their own folder, then point the stamp at them."""
        if not isinstance(caches.vectors, FaissVectorIndex) or not isinstance(
            caches.lexical, Bm25sLexicalIndex
        ):
            raise TypeError("local snapshots hold FAISS and bm25s indexes")
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
