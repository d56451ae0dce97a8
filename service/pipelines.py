"""The open pipelines of the service, one per collection, leased to the requests using them.

`default` is the pipeline loaded at start-up and stays open. Another collection is opened on
its first request and kept among the `capacity` most recently used; one pushed out, or whose
collection is removed, is closed once the last request leasing it has finished, so a query
running while its collection goes away ends on the files it had open.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from embeddings.base import Embedder
from rag.collections import DEFAULT, Collections, NoSuchCollection
from rag.pipeline import Pipeline, open_pipeline
from service.settings import ServiceSettings

log = logging.getLogger("rag.service")

MakeEmbedder = Callable[[str], Embedder]


class CollectionUnavailable(RuntimeError):
    """A collection this service cannot open: the embedder it was built with does not load."""


@dataclass
class Lease:
    """An open pipeline and the requests using it."""

    pipeline: Pipeline
    identity: tuple[int, int]  # (device, inode) of its directory when opened
    leases: int = 0
    retired: bool = False  # out of the cache: close when the last lease ends


class Pipelines:
    """Pipelines by collection name, opened on demand, at most `capacity` besides default.

    Args:
        settings: The service's settings (the root of the collections).
        default: The default collection's pipeline, already open.
        make_embedder: Builds an embedder a collection was created with that is not the
            default pipeline's (loaded once, then shared).
    """

    def __init__(
        self,
        settings: ServiceSettings,
        default: Pipeline,
        make_embedder: MakeEmbedder,
    ) -> None:
        self.settings = settings
        self.collections = Collections.of(settings)
        self.default = default
        self.capacity = settings.open_collections
        self._make_embedder = make_embedder
        self._embedders: dict[str, Embedder] = {default.embedder.name: default.embedder}
        self._open: OrderedDict[str, Lease] = OrderedDict()
        # Never in `_open`, so never retired: default stays open for the process's life.
        self._default = Lease(default, (0, 0))
        self._lock = threading.Lock()  # guards _open, leases and _embedders
        self._opening = threading.Lock()  # one collection opened at a time

    def settings_for(self, name: str) -> ServiceSettings:
        """The settings collection `name` is opened with (its recorded config, its uploads)."""
        settings = self.collections.settings_for(name, self.settings)
        if name != DEFAULT and self.settings.upload_dir is not None:
            # One upload folder per collection, so that two never share a file name.
            uploads = self.settings.upload_dir / "collections" / name
            settings = settings.model_copy(update={"upload_dir": uploads})
        return settings

    def acquire(self, name: str) -> Lease:
        """A lease on the open pipeline of existing collection `name`; `release` it after.

        May open the collection (and load its embedder): call it off the event loop.

        Raises:
            NoSuchCollection: There is none (removed meanwhile, perhaps by another process).
            CollectionUnavailable: Its embedder does not load in this process.
        """
        if name == DEFAULT:
            with self._lock:
                self._default.leases += 1
            return self._default
        return self._acquire(name)

    def release(self, lease: Lease) -> None:
        with self._lock:
            lease.leases -= 1
            close = lease.retired and lease.leases == 0
        if close:
            lease.pipeline.close()

    @contextmanager
    def lease(self, name: str) -> Iterator[Pipeline]:
        """The open pipeline of collection `name` for the block (see `acquire`)."""
        lease = self.acquire(name)
        try:
            yield lease.pipeline
        finally:
            self.release(lease)

    def retire(self, name: str) -> None:
        """Forget `name`'s pipeline (its collection is gone); closed once no request uses it."""
        with self._lock:
            entry = self._open.pop(name, None)
            if entry is not None:
                self._retire(entry)

    def open_names(self) -> list[str]:
        with self._lock:
            return [DEFAULT, *self._open]

    def counts(self) -> dict[str, dict[str, int]]:
        """Documents and passages of each open collection, for the metrics."""
        with self._lock:
            pipelines = {DEFAULT: self.default} | {n: e.pipeline for n, e in self._open.items()}
        counts = {}
        for name, pipeline in pipelines.items():
            try:
                counts[name] = pipeline.counts()
            except Exception:  # closed or removed meanwhile: no figure this scrape
                continue
        return counts

    def close(self) -> None:
        with self._lock:
            entries = list(self._open.values())
            self._open.clear()
        for entry in entries:
            entry.pipeline.close()

    # -- inside ---------------------------------------------------------------------------

    def _acquire(self, name: str) -> Lease:
        try:
            identity = _identity(self.collections.require(name))
        except NoSuchCollection:
            self.retire(name)  # removed by another process: let its files go
            raise
        with self._lock:
            entry = self._open.get(name)
            if entry is not None and entry.identity == identity:
                self._open.move_to_end(name)
                entry.leases += 1
                return entry
        with self._opening:
            with self._lock:  # opened by another request while this one waited?
                entry = self._open.get(name)
                if entry is not None and entry.identity == identity:
                    self._open.move_to_end(name)
                    entry.leases += 1
                    return entry
                if entry is not None:  # removed and created again: a different collection
                    self._retire(self._open.pop(name))
            entry = Lease(self._open_pipeline(name), identity, leases=1)
            with self._lock:
                self._open[name] = entry
                while len(self._open) > self.capacity:
                    _, oldest = self._open.popitem(last=False)
                    self._retire(oldest)
            log.info("opened collection %s: %d passages", name, len(entry.pipeline))
            return entry

    def embedder(self, name: str) -> Embedder:
        """The embedder called `name`, loaded once and shared by the collections using it.

        Raises:
            ValueError: No such embedder. ImportError: its extra is not installed.
        """
        with self._lock:
            embedder = self._embedders.get(name)
        if embedder is None:
            embedder = self._make_embedder(name)
            with self._lock:
                embedder = self._embedders.setdefault(name, embedder)
        return embedder

    def _open_pipeline(self, name: str) -> Pipeline:
        settings = self.settings_for(name)
        try:
            embedder = self.embedder(settings.embedder)
        except (ValueError, ImportError, RuntimeError, OSError) as err:
            # Created elsewhere (`rag collections create --embedder`) with a model or an
            # extra this process lacks: the client is told which, not "internal error".
            raise CollectionUnavailable(
                f"collection {name!r} was built with the embedder {settings.embedder!r}, "
                f"which this service cannot load: {err}"
            ) from err
        if not self.collections.exists(name):  # removed while the model loaded
            raise NoSuchCollection(f"no collection {name!r}")
        return open_pipeline(settings, embedder)

    def _retire(self, entry: Lease) -> None:
        """Mark `entry` out of the cache (under `_lock`); close it now if no one leases it."""
        entry.retired = True
        if entry.leases == 0:
            entry.pipeline.close()


def _identity(location: Path) -> tuple[int, int]:
    try:
        stat = location.stat()
    except FileNotFoundError:
        raise NoSuchCollection(f"no collection {location.name!r}") from None
    return stat.st_dev, stat.st_ino
