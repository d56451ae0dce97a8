"""Admission control: a bound on concurrent query work, shedding the excess with 503.

Two cores and one model thread are saturated by a few concurrent queries: more in flight
only lengthens every answer, and an unbounded backlog turns into client timeouts and
memory held by waiting requests. So at most `max_inflight` queries run, at most
`max_queue` wait (first come, first served), each for at most `queue_timeout_s`; any other
is refused at once with `Overloaded`, which the service turns into 503 + Retry-After.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import StrEnum

import anyio

# Queries take tens of milliseconds here, so a full queue drains in about a second: the
# earliest retry that is likely to be admitted.
RETRY_AFTER_S = 1


class ShedReason(StrEnum):
    QUEUE_FULL = "queue_full"  # every slot busy and the queue at its bound
    QUEUE_TIMEOUT = "queue_timeout"  # waited `queue_timeout_s` without a slot


class Overloaded(Exception):
    """The request is refused: the client should retry after `retry_after_s`."""

    def __init__(self, reason: ShedReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.retry_after_s = RETRY_AFTER_S


class Admission:
    """Slots for query work: `async with admission.slot(): ...` runs within the bounds.

    `acquire()` and `release()` are the same in two steps, for a caller (a FastAPI
    dependency) that must answer a refusal before it holds the slot. For the event loop's
    tasks only: it is not thread-safe, and needs no lock for that reason.

    Args:
        max_inflight: requests holding a slot at once.
        max_queue: requests waiting for a slot at once (0: none wait).
        queue_timeout_s: the longest a request waits for a slot.
    """

    def __init__(self, max_inflight: int, max_queue: int, queue_timeout_s: float) -> None:
        if max_inflight < 1 or max_queue < 0 or queue_timeout_s <= 0:
            raise ValueError(
                "admission needs max_inflight >= 1, max_queue >= 0 and queue_timeout_s > 0, "
                f"not {max_inflight}, {max_queue}, {queue_timeout_s}"
            )
        self.max_inflight = max_inflight
        self.max_queue = max_queue
        self.queue_timeout_s = queue_timeout_s
        # A semaphore rather than a CapacityLimiter: a FastAPI dependency may enter and
        # leave the slot in different tasks, and a limiter ties each token to its task.
        # Its release hands the slot straight to the oldest waiter, so newcomers never
        # overtake the queue.
        self._slots = anyio.Semaphore(max_inflight, max_value=max_inflight)
        self._waiting = 0

    @property
    def inflight(self) -> int:
        return self.max_inflight - self._slots.value

    @property
    def waiting(self) -> int:
        return self._waiting

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a slot for the body of the `async with`, or raise `Overloaded`."""
        await self.acquire()
        try:
            yield
        finally:
            self.release()

    async def acquire(self) -> None:
        """Take a slot, waiting in the queue if need be; `Overloaded` if refused."""
        try:
            self._slots.acquire_nowait()
            return
        except anyio.WouldBlock:
            pass
        # No await between this check and joining the queue: the bound is exact.
        if self._waiting >= self.max_queue:
            raise Overloaded(
                ShedReason.QUEUE_FULL,
                f"the service is at capacity ({self.max_inflight} queries running, "
                f"{self._waiting} waiting); retry in {RETRY_AFTER_S} s",
            )
        self._waiting += 1
        try:
            with anyio.fail_after(self.queue_timeout_s):
                await self._slots.acquire()
        except TimeoutError:
            raise Overloaded(
                ShedReason.QUEUE_TIMEOUT,
                f"no query slot came free within {self.queue_timeout_s:g} s; "
                f"retry in {RETRY_AFTER_S} s",
            ) from None
        finally:
            self._waiting -= 1

    def release(self) -> None:
        """Give back a slot taken by `acquire()`: to the oldest waiter, if any."""
        self._slots.release()
