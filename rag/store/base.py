"""The storage seams: a vector index, a lexical index and a passage store, as protocols.

The local backend implements them with FAISS (`faiss.py`), bm25s (`bm25s.py`) and SQLite
(`sqlite.py`); `factory.py` picks a backend by the name recorded in the index config. How a
committed state becomes visible to readers (copy, save a generation, stamp) is apart, in
`snapshot.py`, so a server-side backend can make it a no-op. The contract tests
(tests/test_store_contracts.py) hold every implementation to these protocols.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from rag.types import Document, Passage, Source


class StoreUnavailableError(ConnectionError):
    """A store on a server (Milvus) failed a call: it is down, unreachable or in trouble.

    The request may succeed once it answers again: the service answers 503, the CLI says so.
    """


@dataclass(frozen=True)
class DocumentRow:
    id: int
    file: str
    path: str
    content_hash: str
    encoding: str
    format: str
    paragraphs: int
    passages: int
    ingested_at: str


@dataclass(frozen=True)
class StoredPassage:
    """What the caches are rebuilt from: id, folded text, MinHash signature and vector."""

    id: int
    folded: str
    signature: bytes
    vector: bytes


@dataclass(frozen=True)
class ParagraphRow:
    number: int
    text: str
    line_start: int
    line_end: int
    char_start: int
    char_end: int
    page: int | None = None
    sheet: str | None = None


class VectorIndex(Protocol):
    """Dense vectors by passage id: inner product over unit vectors (cosine similarity)."""

    @property
    def dim(self) -> int: ...

    def __len__(self) -> int: ...

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None: ...

    def remove(self, ids: Sequence[int]) -> None: ...

    def replace(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        """New vectors for passages already held (one whose text changed)."""
        ...

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Top `k` `(passage id, cosine similarity)` pairs, best first."""
        ...

    def similarities(self, query: np.ndarray, ids: Iterable[int]) -> dict[int, float]:
        """Cosine similarity of the query to given stored passages; unknown ids left out."""
        ...

    def ids(self) -> np.ndarray:
        """Every stored passage id (`rag check` compares them with the store's)."""
        ...

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored vectors of `ids`, in order."""
        ...

    def copy(self) -> VectorIndex:
        """A private working copy for a writer (a server-side index may return itself)."""
        ...


# A lexical index's scores for one query, passed back to it: opaque to callers.
LexicalScores = Any


class LexicalIndex(Protocol):
    """BM25 over tokenised folded passage text, by passage id."""

    def __len__(self) -> int: ...

    @property
    def ids(self) -> np.ndarray: ...

    @property
    def matrix_rows(self) -> int:
        """Passages the scoring structure was built over; equals `len(self)` when sound."""
        ...

    def scores(self, tokens: Sequence[str]) -> LexicalScores:
        """The query's scores of every passage (None when no query term is known)."""
        ...

    def top(self, scores: LexicalScores, k: int) -> list[tuple[int, float]]:
        """Top `k` `(passage id, score)` pairs with a positive score, best first."""
        ...

    def score_of(self, scores: LexicalScores, ids: Iterable[int]) -> dict[int, float]: ...

    def search(self, tokens: Sequence[str], k: int) -> list[tuple[int, float]]: ...

    def idf(self, tokens: Iterable[str]) -> dict[str, float]:
        """Inverse document frequency of each token; unseen tokens get the highest value."""
        ...


class MetaGeneration:
    """`generation()` as the meta key "generation": a base for stores whose meta table holds it.

    A store subclassing it implements `get_meta` and `set_meta`.
    """

    def get_meta(self, key: str) -> str | None:
        raise NotImplementedError

    def set_meta(self, key: str, value: str) -> None:
        raise NotImplementedError

    def generation(self) -> int:
        return int(self.get_meta("generation") or 0)

    def bump_generation(self) -> int:
        gen = self.generation() + 1
        self.set_meta("generation", str(gen))
        return gen


class PassageStore(Protocol):
    """The source of truth: documents, paragraphs, passages with their sources and vectors.

    Writes happen inside `transaction()`; `generation()` counts committed writes.
    """

    def close(self) -> None: ...

    def transaction(self) -> AbstractContextManager[None]: ...

    def snapshot(self) -> AbstractContextManager[None]:
        """A read transaction: every read inside sees one committed state."""
        ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def generation(self) -> int: ...

    def bump_generation(self) -> int: ...

    def documents(self) -> list[DocumentRow]: ...

    def find_document(self, file: str) -> DocumentRow | None: ...

    def insert_document(self, file: str, document: Document) -> int: ...

    def delete_document(self, doc_id: int) -> list[int]:
        """Remove a document and its sources; return the passages left with no source.

        A merged passage that keeps other sources shows its first remaining source's text.
        """
        ...

    def document_passages(self, doc_id: int) -> set[int]:
        """The passages a document holds."""
        ...

    def shown_passages(self, ids: Iterable[int]) -> dict[int, tuple[str, str, str]]:
        """Passage id -> (the text it shows, its stored content hash, its stored folded
        text), as the open transaction sees them; passages no longer stored are left out."""
        ...

    def retext_passage(
        self, passage_id: int, text: str, folded: str, content_hash: str, signature: bytes
    ) -> None:
        """Give a stored passage another text's identity: its vector follows (`set_vectors`)."""
        ...

    def merge_passage(self, passage_id: int, into: int) -> None:
        """Move a passage's sources to `into`, a passage of the same identity, and drop it."""
        ...

    def paragraph_context(
        self, doc_id: int, number: int, context: int
    ) -> tuple[list[ParagraphRow], ParagraphRow | None, list[ParagraphRow]]: ...

    def document_vectors(self, doc_id: int) -> dict[str, np.ndarray]:
        """Folded text -> vector of every passage the document holds: what a vector embeds,
        so a text reused under one content hash but other punctuation is embedded anew."""
        ...

    def document_hashes(self, doc_id: int) -> set[str]:
        """The content hashes of the passages a document holds (the keys of its vectors)."""
        ...

    def passage_id_by_hash(self, content_hash: str) -> int | None: ...

    def insert_passage(
        self, text: str, folded: str, content_hash: str, signature: bytes, vector: np.ndarray
    ) -> int: ...

    def set_vectors(self, ids: Sequence[int], vectors: np.ndarray) -> None: ...

    def replace_vectors(self, ids: Sequence[int], vectors: np.ndarray, meta: dict[str, str]) -> int:
        """Every passage's vector and the config keys `meta` at once (`rag reindex`).

        `ids` must be every stored passage. Readers and a process killed at any moment see
        all the old vectors with the old config or all the new with the new, never a mix.
        Called with the write lock held; returns the new generation.
        """
        ...

    def replace_tokens(self, name: str) -> int:
        """Make tokenizer `name` the index's, with every passage's lexical tokens, at once
        (`rag reindex --tokenizer`); as `replace_vectors`, never a mix of old and new.

        Called with the write lock held; returns the new generation.
        """
        ...

    def replace_pending(self) -> bool:
        """A `replace_vectors` or `replace_tokens` was killed past its point of no return
        (`finish_replace`)."""
        ...

    def finish_replace(self) -> None:
        """Complete an interrupted `replace_vectors`; called with the write lock held."""
        ...

    def insert_source(self, passage_id: int, doc_id: int, source: Source) -> None: ...

    def passages(self, ids: Sequence[int]) -> dict[int, Passage]: ...

    def folded_texts(self) -> tuple[list[int], list[str]]: ...

    def iter_passages(self) -> Iterator[StoredPassage]: ...

    def vectors_by_id(self) -> dict[int, bytes]: ...

    def integrity_problems(self, dim: int) -> list[str]: ...

    def document_text(self, file: str) -> str | None: ...

    def count(self, table: str) -> int: ...
