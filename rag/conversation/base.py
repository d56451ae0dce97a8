"""What a rewriter is: a follow-up and the turns before it in, a standalone question out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from rag.types import Turn


class Rewriter(Protocol):
    """Makes a follow-up question stand alone, for retrieval and the composer.

    Without history, and for a question that already stands alone, the question itself is
    returned unchanged: single questions are searched exactly as before.
    """

    def condense(self, question: str, history: Sequence[Turn]) -> str: ...
