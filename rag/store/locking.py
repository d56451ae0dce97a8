"""The write lock shared by replicas: a Redis lock, layered over the index's own lock.

Every writer of an index (ingest, delete, cache rebuild) holds its write lock. Without
`RAG_REDIS_URL` that is the backend's own (the index directory's file lock), as it always
was. With it, writers also take a lock in Redis (`rag.store.redis_lock`), which replicas on
other machines see too. The Redis lock is taken first and the index's own second, so that a
writer started without `RAG_REDIS_URL` on the same machine is still kept out; an index with
no lock of its own that every writer sees (a Milvus server) takes the Redis lock alone.
`Index(lock=...)` and `open_pipeline(lock=...)` take the result.
"""

from __future__ import annotations

from collections.abc import Callable

from rag.settings import Settings
from rag.store.lock import BlockLock, IndexLock


class LayeredLock(BlockLock):
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


def lock_key(prefix: str, index: str) -> str:
    """The Redis key of an index's write lock; `index` names it (a path, a collection)."""
    return f"{prefix}:write-lock:{index}"


def shared_write_lock(
    settings: Settings,
    index: str,
    own: IndexLock | None,
    on_wait: Callable[[str], None] | None = None,
) -> IndexLock | None:
    """The write lock every replica sees, or None without `RAG_REDIS_URL`.

    Args:
        settings: `redis_url`, `redis_prefix` and `lock_timeout`.
        index: What names the index the same way on every replica (its resolved
            directory; for Milvus, its target and collection).
        own: The index's own lock, taken inside the Redis one; None if it has none that
            every writer sees.
        on_wait: Told who holds the lock when a write has to wait.
    """
    if not settings.redis_url:
        return None
    from rag.store.redis_lock import RedisWriteLock

    name = lock_key(settings.redis_prefix, index)
    shared = RedisWriteLock.from_url(settings.redis_url, name, settings.lock_timeout, on_wait)
    return shared if own is None else LayeredLock(shared, own)
