"""A total time limit on a blocking call or a stream, however the other side trickles."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable
from typing import TypeVar, cast

T = TypeVar("T")


class DeadlineExceeded(TimeoutError):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"no complete answer within {seconds:g} s")
        self.seconds = seconds


def seconds_left(timeout: float, deadline: float | None) -> float:
    """What a model call may take: `timeout`, or less when `deadline` (a `time.monotonic()`
    time shared by one question's calls) comes first; 0 or less once it has passed."""
    if deadline is None:
        return timeout
    return min(timeout, deadline - time.monotonic())


def within_deadline(produce: Callable[[], Iterable[T]], seconds: float) -> Generator[T, None, None]:
    """The items of `produce()` as they come, until `seconds` have passed in all.

    An HTTP client's timeout bounds each read, not the whole answer: a model that sends a
    token every few seconds never trips it. So `produce` runs in a worker thread and the
    caller waits on a queue with the time left; past the deadline it raises
    `DeadlineExceeded` at once. The worker is told to stop and closes its iterator after its
    next item; a read blocked in the client ends at the client's own timeout. With no time
    at all (`seconds` <= 0) `produce` is not called: nobody would wait for its answer.

    Raises:
        DeadlineExceeded: the items did not all arrive in time.
        Exception: whatever `produce` raised, in the caller's thread.
    """
    if seconds <= 0:
        raise DeadlineExceeded(0)
    items: queue.SimpleQueue[tuple[bool, T | BaseException | None]] = queue.SimpleQueue()
    stop = threading.Event()
    done = (True, None)

    def work() -> None:
        try:
            iterator = iter(produce())
            try:
                for item in iterator:
                    if stop.is_set():
                        break
                    items.put((False, item))
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()  # a streamed HTTP response is released here
            items.put(done)
        except BaseException as err:  # handed to the caller, who decides
            items.put((True, err))

    threading.Thread(target=work, name="llm-call", daemon=True).start()
    deadline = time.monotonic() + seconds
    try:
        while True:
            try:
                finished, value = items.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                raise DeadlineExceeded(seconds) from None
            if finished:
                if isinstance(value, BaseException):
                    raise value
                return
            yield cast(T, value)
    finally:
        stop.set()
