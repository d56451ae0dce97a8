"""One writer per index across machines: a lease in Redis, renewed while it is held.

The file lock (`rag.store.lock`) serialises the writers of one machine; replicas of the
service on several machines, writing one shared index (Milvus), need a lock they all see.
This is redis-py's `Lock`: `SET name token NX PX lease` to take it, a compare-and-delete
script to release it, so only the holder's token frees it. The token is a small JSON record
of the holder (pid, host, command, since), which is what a waiting writer is told.

The lease (30 s) is renewed every 10 s by a thread while the lock is held, so a write may
last as long as it needs; a holder that dies stops renewing, and its lease runs out within
30 s. What a lease cannot do (any Redis lock, without fencing tokens in the store): a holder
frozen for longer than the lease (SIGSTOP, a suspended VM) loses the lock while it still
believes it holds it. The renewal thread logs an error when that happens.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from rag.store.lock import BlockLock, IndexBusyError

if TYPE_CHECKING:
    import redis
    from redis.lock import Lock

log = logging.getLogger("rag.store")

LEASE_S = 30.0
# How often a waiting writer asks again; each ask is one SET NX.
POLL_S = 0.1


class LockUnavailableError(IndexBusyError):
    """Redis could not be asked for the lock: no write is safe, so none is made."""


class RedisWriteLock(BlockLock):
    """The write lock of one index, in Redis; reentrant within a thread.

    The same interface as the file lock (`rag.store.lock.WriteLock`), so an `Index` takes
    either (`rag.store.locking.shared_write_lock` layers it over the index's own).

    Args:
        client: A redis-py client.
        name: The key; one per index (see `rag.store.locking.lock_key`).
        timeout: Seconds to wait for another writer; 0 refuses at once.
        on_wait: Called once, with a description of the holder, if the lock is busy.
        lease_s: Seconds the lock outlives a holder that stopped renewing it.
    """

    def __init__(
        self,
        client: redis.Redis,
        name: str,
        timeout: float,
        on_wait: Callable[[str], None] | None = None,
        lease_s: float = LEASE_S,
    ) -> None:
        self.name = name
        self.timeout = timeout
        self.on_wait = on_wait
        self.lease_s = lease_s
        self._client = client
        # Not thread-local: the renewal thread extends the token the writing thread took.
        self._lock: Lock = client.lock(name, timeout=lease_s, sleep=POLL_S, thread_local=False)
        # Threads of this process take turns here before asking Redis: one token per process.
        self._threads = threading.RLock()
        self._depth = 0
        self._stop_renewing: threading.Event | None = None
        self._renewer: threading.Thread | None = None

    @classmethod
    def from_url(
        cls, url: str, name: str, timeout: float, on_wait: Callable[[str], None] | None = None
    ) -> RedisWriteLock:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=10)
        return cls(client, name, timeout, on_wait)

    @property
    def held(self) -> bool:
        return self._depth > 0

    def try_acquire(self) -> bool:
        """Take the lock if it is free right now (for work that may be skipped)."""
        return self._acquire(0.0)

    def acquire(self, timeout: float | None = None) -> None:
        wait = self.timeout if timeout is None else timeout
        if self._acquire(0.0):
            return
        holder = self.describe_holder()
        if self.on_wait is not None and wait > 0:
            self.on_wait(holder)
        if not self._acquire(wait):
            raise IndexBusyError(
                f"index is being written by {holder} (lock {self.name} in Redis); "
                f"gave up after {wait:g} s (RAG_LOCK_TIMEOUT). "
                "Wait for it to finish, or stop it, and try again."
            )

    def release(self) -> None:
        self._depth -= 1
        try:
            if self._depth == 0:
                self._stop_renewal()
                self._give_back()
        finally:
            self._threads.release()

    def describe_holder(self) -> str:
        try:
            owner = json.loads(self._client.get(self.name) or "null")
            since = time.time() - float(owner["since"])
            return (
                f"another process (pid {owner['pid']} on {owner['host']}, "
                f"`{owner['command']}`, for {since:.0f} s)"
            )
        except Exception:  # a description only: never let it fail the wait
            return "another process"

    # -- inside -------------------------------------------------------------------------

    def _acquire(self, wait: float) -> bool:
        started = time.monotonic()
        if wait <= 0:
            if not self._threads.acquire(blocking=False):
                return False
        elif not self._threads.acquire(timeout=wait):
            return False
        if self._depth > 0:  # reentrant: this thread holds it already
            self._depth += 1
            return True
        left = max(0.0, wait - (time.monotonic() - started))
        try:
            taken = self._lock.acquire(
                blocking=left > 0, blocking_timeout=left or None, token=_owner_token()
            )
        except Exception as err:
            self._threads.release()
            if _is_redis_error(err):
                raise LockUnavailableError(
                    f"cannot take the index's write lock {self.name}: Redis did not answer "
                    f"({type(err).__name__}: {err}); no write was made"
                ) from err
            raise
        if not taken:
            self._threads.release()
            return False
        self._depth = 1
        self._start_renewal()
        return True

    def _start_renewal(self) -> None:
        stop = threading.Event()
        self._stop_renewing = stop
        self._renewer = threading.Thread(
            target=self._renew, args=(stop,), name="write-lock-renewal", daemon=True
        )
        self._renewer.start()

    def _renew(self, stop: threading.Event) -> None:
        while not stop.wait(self.lease_s / 3):
            try:
                self._lock.reacquire()
            except Exception as err:
                if not _is_redis_error(err):
                    raise
                if type(err).__name__ == "LockNotOwnedError":
                    log.error(
                        "lost the index's write lock %s (the lease ran out before it was "
                        "renewed): another writer may start before this write ends",
                        self.name,
                    )
                    return
                log.warning("could not renew the write lock %s: %s; retrying", self.name, err)

    def _stop_renewal(self) -> None:
        if self._stop_renewing is not None and self._renewer is not None:
            self._stop_renewing.set()
            self._renewer.join()
        self._stop_renewing = self._renewer = None

    def _give_back(self) -> None:
        try:
            self._lock.release()
        except Exception as err:
            if not _is_redis_error(err):
                raise
            # Not ours any more, or Redis is away: either way the lease ends it.
            log.warning(
                "could not release the write lock %s (%s); it expires within %g s",
                self.name,
                err,
                self.lease_s,
            )


def _owner_token() -> str:
    """The lock's token: unique to this acquisition, and saying who holds it."""
    return json.dumps(
        {
            "id": uuid.uuid4().hex,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join(sys.argv[:3]),
            "since": time.time(),
        }
    )


def _is_redis_error(err: Exception) -> bool:
    import redis

    return isinstance(err, redis.RedisError)
