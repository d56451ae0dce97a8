"""What every composer is: the `Composer` protocols, what they may ask of the index, and the
text of an abstention. Neutral ground, so that no composer imports another's module."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol, runtime_checkable

from rag.types import Answer, ScoredPassage

# What an answer says when the documents do not answer (in the question's script for an LLM).
ABSTAIN_TEXT = "文档中没有找到这个问题的答案。"


class Composer(Protocol):
    """Turns a question and its retrieved passages into an answer; swappable (e.g. an LLM).

    `deadline` (a `time.monotonic()` time, or None) is when a composer that waits on a model
    must have its answer: the question's model calls share one time limit. A composer that
    waits on nothing ignores it.
    """

    def compose(
        self, question: str, passages: Sequence[ScoredPassage], deadline: float | None = None
    ) -> Answer: ...


@runtime_checkable
class StreamingComposer(Composer, Protocol):
    """A composer whose text arrives piece by piece (an LLM writing it).

    `stream_compose` yields the text as it is written, then exactly one `Answer`: the
    checked final text, which may differ from the pieces (a citation removed, or the
    extractive answer when the model failed midway).
    """

    def stream_compose(
        self, question: str, passages: Sequence[ScoredPassage], deadline: float | None = None
    ) -> Iterator[str | Answer]: ...


class Lexicon(Protocol):
    """How the index splits folded text into terms, and how rare each term is."""

    def tokenize(self, folded: str) -> list[str]: ...

    def idf(self, tokens: Iterable[str]) -> dict[str, float]: ...
