"""What a rewriter is: a follow-up and the turns before it in, a standalone question out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from rag.types import Turn


class Rewriter(Protocol):
    """Makes a follow-up question stand alone, for retrieval and the composer.

    Without history, and for a question that already stands alone, the question itself is
    returned unchanged: single questions are searched exactly as before. `deadline` (a
    `time.monotonic()` time, or None): when a rewriter that waits on a model must be done,
    the question's time limit for its model calls; a rewriter that waits on nothing ignores it.
    """

    def condense(
        self, question: str, history: Sequence[Turn], deadline: float | None = None
    ) -> str: ...
