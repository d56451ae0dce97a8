"""Collections (knowledge bases): their names, where each one lives, list, create, remove.

The one place that maps a collection name to a location; everything else asks here. On the
local backend `default` is the index directory itself (`settings.index_dir`), so an index
built before collections existed is the default collection, unchanged, and any other
collection is `settings.index_dir / "collections" / NAME`: an index directory of its own,
with its own recorded config (embedder, tokenizer, chunk size, deduplication).

Creating and removing are crash-safe. A collection is built under a hidden name and renamed
into place whole; it is removed by renaming it, under its write lock, to a hidden trash name
(atomic: it is either listed whole or gone) and then deleting that. `sweep`, run when the
service starts, finishes what a crash interrupted. An entry whose name is not a valid
collection name (all hidden ones) is never listed. A build is write-locked until it is renamed
into place, so that a sweep by another process leaves one still in progress alone.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from rag.index.config import IndexConfig
from rag.index.index import Index
from rag.settings import Settings
from rag.store.factory import make_backend
from rag.store.location import Location
from rag.store.lock import WriteLock
from rag.store.sqlite import STORE_FILE, SQLiteStore

DEFAULT = "default"
NAME_RULE = "1 to 64 characters among a-z, 0-9, '_' and '-'"
NAME_PATTERN = re.compile(r"[a-z0-9_-]{1,64}")
MAX_NAME_CHARS = 64
SUBDIRECTORY = "collections"
# Hidden prefixes: never a valid name, so never listed, and found again by `sweep`.
TRASH_PREFIX = ".trash-"
NEW_PREFIX = ".new-"
# Not a name to create: OpenAI clients of the service name the default collection "rag" (the
# `model` they sent before collections existed), so a collection "rag" could not be reached
# through chat completions, and `GET /v1/models` would list an id answering from `default`.
RESERVED = frozenset({"rag"})

S = TypeVar("S", bound=Settings)


class InvalidCollectionName(ValueError):
    """A name that breaks the naming rule; the message states the rule."""


class NoSuchCollection(LookupError):
    """No collection has this name."""


class CollectionExists(ValueError):
    """A collection of this name already exists."""


def check_name(name: str) -> str:
    """`name` if it is a valid collection name, else InvalidCollectionName naming the rule.

    The rule keeps a name a single, portable path component: no '/', no '..', no dot at
    all (so no hidden or trash name), bounded in length.
    """
    if NAME_PATTERN.fullmatch(name):
        return name
    long = len(name) > MAX_NAME_CHARS
    shown = f"a name of {len(name)} characters" if long else repr(name)
    raise InvalidCollectionName(
        f"{shown} is not a valid collection name: a name is {NAME_RULE} "
        "(no '/', '.', spaces or capitals)"
    )


@dataclass(frozen=True)
class Collections:
    """The collections under one root (the default collection's index directory).

    Args:
        root: `settings.index_dir`.
        backend: The backend a new collection is built with (`settings.backend`).
        lock_timeout: Seconds a removal waits for a write running on the collection.
    """

    root: Path
    backend: str = "local"
    lock_timeout: float = 600.0

    @classmethod
    def of(cls, settings: Settings) -> Collections:
        return cls(settings.index_dir, settings.backend, settings.lock_timeout)

    @property
    def parent(self) -> Path:
        """Where the collections other than `default` live."""
        return self.root / SUBDIRECTORY

    def location(self, name: str) -> Path:
        """The index directory of collection `name`, whether or not it exists yet.

        Raises:
            InvalidCollectionName: A bad name, or a collection other than `default` asked
                of a backend that does not keep them yet (Milvus).
        """
        check_name(name)
        if name == DEFAULT:
            return self.root
        if self.backend != "local":
            # Each collection is a directory of its own; on Milvus it would be its own
            # Milvus collections (`Location.collection`), not wired through here yet.
            raise InvalidCollectionName(
                f"collection {name!r}: collections other than 'default' need the local "
                f"backend for now (this index uses {self.backend!r}); on Milvus, give each "
                "corpus its own RAG_MILVUS_PREFIX"
            )
        return self.parent / name

    def exists(self, name: str) -> bool:
        """`default` always exists; another collection once it has been created whole."""
        if name == DEFAULT:
            return True
        return make_backend(self.backend).store_exists(Location.local(self.location(name)))

    def require(self, name: str) -> Path:
        """The location of an existing collection, or NoSuchCollection."""
        location = self.location(name)
        if not self.exists(name):
            raise NoSuchCollection(f"no collection {name!r}")
        return location

    def names(self) -> list[str]:
        """Every collection, `default` first, then by name."""
        found: list[str] = []
        if self.parent.is_dir():
            for entry in self.parent.iterdir():
                name = entry.name
                if NAME_PATTERN.fullmatch(name) and name != DEFAULT and self.exists(name):
                    found.append(name)
        return [DEFAULT, *sorted(found)]

    def config(self, name: str) -> IndexConfig | None:
        """What collection `name` was built with; None for a default index not built yet."""
        location = self.require(name)
        path = location / STORE_FILE
        if not path.is_file():
            return None
        store = SQLiteStore(path, readonly=True)
        try:
            return IndexConfig.from_store(store)
        finally:
            store.close()

    def settings_for(self, name: str, settings: S) -> S:
        """`settings` for opening collection `name`: its location and recorded config.

        A collection other than `default` is opened with what it was created with, so each
        keeps its own embedder, tokenizer and chunking whatever the process is configured
        with. `default` is `settings` unchanged: it is checked against them as before.
        """
        if name == DEFAULT:
            return settings
        config = self.config(name)
        update: dict[str, object] = {"index_dir": self.location(name)}
        if config is not None:
            update |= {
                "embedder": config.embedder,
                "tokenizer": config.tokenizer,
                "chunk_size": config.chunk_size,
                "dedupe_threshold": config.dedupe_threshold,
                "shingle_size": config.shingle_size,
                "minhash_perm": config.minhash_perm,
                "backend": config.backend,
            }
        return settings.model_copy(update=update)

    def create(self, name: str, config: IndexConfig) -> Path:
        """Create collection `name`, built with `config`, and return its location.

        Built whole under a hidden name, then renamed into place: a crash leaves either no
        collection or a complete empty one (and a hidden leftover for `sweep`).

        Raises:
            InvalidCollectionName, CollectionExists; IndexBusyError if a writer left of a
            removed collection of that name is still writing after `lock_timeout`.
        """
        location = self.location(name)
        if name in RESERVED:
            raise InvalidCollectionName(
                f"{name!r} is reserved: chat completions read the model {name!r} as the "
                "default collection; choose another name"
            )
        if self.exists(name):
            raise CollectionExists(f"collection {name!r} already exists")
        building = self.parent / f"{NEW_PREFIX}{name}-{uuid.uuid4().hex}"
        building.mkdir(parents=True)
        # Held until the rename: a `sweep` in another process (a service starting, `rag
        # collections list`) then passes over this build instead of deleting it midway.
        lock = WriteLock(building, self.lock_timeout)
        try:
            with lock():
                Index(building, config, self.lock_timeout, lock=lock).close()
                try:
                    self._drop_leftover(location)
                    # rename(2) onto a collection fails: one created meanwhile stays.
                    os.rename(building, location)
                    lock.directory = location  # moved with it: released there
                except OSError:
                    raise CollectionExists(f"collection {name!r} already exists") from None
        finally:
            shutil.rmtree(building, ignore_errors=True)
        return location

    def remove(self, name: str, on_wait: Callable[[str], None] | None = None) -> None:
        """Remove collection `name` and everything of it.

        Takes the collection's write lock (waiting for a running ingest or delete, up to
        `lock_timeout`; `on_wait` is told who holds it), renames the directory to a trash
        name, then deletes it. A query already running on it keeps its open files until it
        ends.

        Raises:
            NoSuchCollection; ValueError for `default`; IndexBusyError.
        """
        if name == DEFAULT:
            raise ValueError(
                "the default collection cannot be removed; remove its documents instead"
            )
        location = self.require(name)
        trash = self.parent / f"{TRASH_PREFIX}{name}-{uuid.uuid4().hex}"
        with WriteLock(location, self.lock_timeout, on_wait)():
            os.rename(location, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def _drop_leftover(self, location: Path) -> None:
        """Delete what writers left at `location` of a removed collection, if anything.

        A writer that had the collection open when it was removed (an upload job, a document
        deletion) writes on, and its lock file and caches make the directory again, without
        a store: no collection, yet in the way of the one being created.
        """
        if not location.is_dir():
            return
        trash = self.parent / f"{TRASH_PREFIX}{location.name}-{uuid.uuid4().hex}"
        with WriteLock(location, self.lock_timeout)():  # that writer may still be at it
            if make_backend(self.backend).store_exists(Location.local(location)):
                return  # a collection, created meanwhile by another process
            os.rename(location, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def sweep(self) -> list[str]:
        """Delete what interrupted creations and removals left; the names of what was."""
        swept: list[str] = []
        if not self.parent.is_dir():
            return swept
        for entry in self.parent.iterdir():
            if entry.name.startswith(TRASH_PREFIX):
                shutil.rmtree(entry, ignore_errors=True)
            elif not (entry.name.startswith(NEW_PREFIX) and _drop_abandoned_build(entry)):
                continue
            swept.append(entry.name)
        return swept


def _drop_abandoned_build(building: Path) -> bool:
    """Delete `building` unless a `create` is still at it; whether it was deleted.

    A `create` holds its build's write lock until the rename, and the kernel releases it if
    that process dies. Deleted under the lock, so a `create` that took the directory's name
    just now waits, then builds in a directory of that name made again by its lock.
    """
    lock = WriteLock(building, 0)
    try:
        if not lock.try_acquire():
            return False
    except OSError:  # renamed into place or deleted meanwhile, or not a directory
        return False
    try:
        shutil.rmtree(building, ignore_errors=True)
    finally:
        lock.release()
    return True
