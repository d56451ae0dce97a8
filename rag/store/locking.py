"""Which write lock an index takes: the interface, and the factory that picks one.

Every writer of an index (ingest, delete, cache rebuild) holds its write lock. Without Redis
it is the index directory's file lock (`rag.store.lock`), as it always was. With
`RAG_REDIS_URL` it is a lock in Redis (`rag.store.redis_lock`), which replicas on other
machines see too, layered over the file lock for an index that lives in a directory, so
that a writer started without `RAG_REDIS_URL` on the same machine is still kept out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

from rag.settings import Settings
from rag.store.lock import WriteLock


class IndexLock(Protocol):
    """One writer at a time per index, across processes; reentrant within a thread."""

    @property
    def held(self) -> bool:
        """Whether this process holds it."""
        ...

    def try_acquire(self) -> bool:
        """Take it if it is free right now."""
        ...

    def acquire(self, timeout: float | None = None) -> None:
        """Take it, waiting up to `timeout` (default: the lock's own); `IndexBusyError`."""
        ...

    def release(self) -> None: ...

    def __call__(self, timeout: float | None = None) -> AbstractContextManager[None]:
        """Hold it for a block."""
        ...


class LayeredLock:
    """Two locks taken as one: `outer` first, released last (one order, so no deadlock).

    A writer that knows only `inner` (the file lock) still excludes and is excluded.
    """

    def __init__(self, outer: IndexLock, inner: IndexLock) -> None:
        self.outer = outer
        self.inner = inner

    @property
    def held(self) -> bool:
        return self.outer.held and self.inner.held

    def try_acquire(self) -> bool:
        if not self.outer.try_acquire():
            return False
        if not self.inner.try_acquire():
            self.outer.release()
            return False
        return True

    def acquire(self, timeout: float | None = None) -> None:
        self.outer.acquire(timeout)
        try:
            self.inner.acquire(timeout)
        except BaseException:
            self.outer.release()
            raise

    def release(self) -> None:
        try:
            self.inner.release()
        finally:
            self.outer.release()

    @contextmanager
    def __call__(self, timeout: float | None = None) -> Iterator[None]:
        self.acquire(timeout)
        try:
            yield
        finally:
            self.release()


def lock_key(prefix: str, index: str) -> str:
    """The Redis key of an index's write lock; `index` names it (a path, a collection)."""
    return f"{prefix}:write-lock:{index}"


def make_write_lock(
    settings: Settings, directory: Path, on_wait: Callable[[str], None] | None = None
) -> IndexLock:
    """The write lock of the index in `directory`, as `settings` configure it."""
    file_lock = WriteLock(directory, settings.lock_timeout, on_wait)
    if not settings.redis_url:
        return file_lock
    from rag.store.redis_lock import RedisWriteLock

    name = lock_key(settings.redis_prefix, str(directory.resolve()))
    shared = RedisWriteLock.from_url(settings.redis_url, name, settings.lock_timeout, on_wait)
    return LayeredLock(shared, file_lock)
