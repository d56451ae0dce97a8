"""One writer per index, across processes: the `IndexLock` protocol and its file lock.

Two `rag ingest` runs, or the service and the CLI, may point at one index. SQLite alone
would serialise their transactions, but each writer also holds in-memory state (the working
FAISS copy, the MinHash index) and publishes cache files; two of them interleaving would
stamp caches that miss the other's passages. So a writer holds `write.lock` for the whole of
an ingest or delete. The kernel drops the lock when its process dies, even by SIGKILL, so a
crashed writer never wedges the index.

The lock is pluggable (`IndexLock`): the local backend uses `WriteLock` in the index
directory, Milvus Lite the same file lock beside its database file, and writers on several
machines sharing a Milvus server need a lock they all see (a Redis lock implementing
`IndexLock`, passed to `rag.index.Index`). Without one, `RefusingLock` refuses to write
rather than let two writers interleave.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

from filelock import FileLock, Timeout

LOCK_FILE = "write.lock"
OWNER_FILE = "write.owner"  # who holds the lock, for the message a waiting writer prints


class IndexBusyError(RuntimeError):
    """Another writer held the index for longer than we were willing to wait."""


class WritesRefusedError(IndexBusyError):
    """The index has no write lock shared by every writer, so it refuses to be written.

    An `IndexBusyError`, so every caller that reports a busy index reports this too (with
    its own message, which says what to configure).
    """


class IndexLock(Protocol):
    """The index's write lock: one writer at a time across processes, reentrant per thread."""

    @property
    def held(self) -> bool: ...

    def try_acquire(self) -> bool:
        """Take the lock if it is free right now (for work that may be skipped)."""
        ...

    def acquire(self, timeout: float | None = None) -> None:
        """Wait up to `timeout` (default: the lock's) or raise `IndexBusyError`."""
        ...

    def release(self) -> None: ...

    def __call__(self, timeout: float | None = None) -> AbstractContextManager[None]:
        """Hold the lock for a block."""
        ...


class BlockLock:
    """`with lock():` for the locks below: acquire (waiting up to `timeout`), run, release."""

    def acquire(self, timeout: float | None = None) -> None:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    @contextmanager
    def __call__(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the lock for a block; `timeout` overrides the default wait."""
        self.acquire(timeout)
        try:
            yield
        finally:
            self.release()


class RefusingLock:
    """A lock that never grants writing: reads work, every write fails with `reason`."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    @property
    def held(self) -> bool:
        return False

    def try_acquire(self) -> bool:
        return False

    def acquire(self, timeout: float | None = None) -> None:
        raise WritesRefusedError(self.reason)

    def release(self) -> None:
        raise RuntimeError("release of a lock never held")

    @contextmanager
    def __call__(self, timeout: float | None = None) -> Iterator[None]:
        self.acquire(timeout)
        yield


class WriteLock(BlockLock):
    """A file lock in a directory (the index's, or a Milvus Lite file's); reentrant per thread.

    Args:
        directory: The index directory.
        timeout: Seconds to wait for another writer; 0 refuses at once.
        on_wait: Called once, with a description of the holder, if the lock is busy.
        prefix: Prepended to the lock and owner file names (several locks in one folder).
    """

    def __init__(
        self,
        directory: Path,
        timeout: float,
        on_wait: Callable[[str], None] | None = None,
        prefix: str = "",
    ) -> None:
        self.directory = directory
        self.timeout = timeout
        self.on_wait = on_wait
        self._owner = f"{prefix}{OWNER_FILE}"
        self._lock = FileLock(directory / f"{prefix}{LOCK_FILE}")

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def try_acquire(self) -> bool:
        """Take the lock if it is free right now (for work that may be skipped)."""
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        self._claim()
        return True

    def release(self) -> None:
        if self._lock.lock_counter == 1:
            (self.directory / self._owner).unlink(missing_ok=True)
        self._lock.release()

    def acquire(self, timeout: float | None = None) -> None:
        if self.try_acquire():
            return
        wait = self.timeout if timeout is None else timeout
        holder = describe_holder(self.directory, self._owner)
        if self.on_wait is not None and wait > 0:
            self.on_wait(holder)
        try:
            self._lock.acquire(timeout=wait)
        except Timeout:
            raise IndexBusyError(
                f"index at {self.directory} is being written by {holder}; "
                f"gave up after {wait:g} s (RAG_LOCK_TIMEOUT). "
                "Wait for it to finish, or stop it, and try again."
            ) from None
        self._claim()

    def _claim(self) -> None:
        if self._lock.lock_counter > 1:
            return  # reentrant: the outer acquisition already wrote the owner
        owner = {"pid": os.getpid(), "command": " ".join(sys.argv[:3]), "since": time.time()}
        tmp = self.directory / f"{self._owner}.tmp"
        tmp.write_text(json.dumps(owner))
        os.replace(tmp, self.directory / self._owner)


def describe_holder(directory: Path, owner_file: str = OWNER_FILE) -> str:
    try:
        owner = json.loads((directory / owner_file).read_text())
        since = time.time() - float(owner["since"])
        return f"another process (pid {owner['pid']}, `{owner['command']}`, for {since:.0f} s)"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
