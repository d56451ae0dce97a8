"""Search in Milvus: dense and BM25 views over the passage collection, and its snapshots.

The passage collection is both the store and the index, so these views hold no state of
their own: a write to the store is what they search next (Milvus's strong consistency).
BM25 is Milvus's built-in function over our own tokens (script-folded character bigrams,
hex-encoded so its analyzer keeps them whole), with bm25s's parameters: the same scores as
the local backend (docs/benchmarks.md, "Milvus backend").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rag.store.milvus_schema import chunks, encode_tokens, literal
from rag.store.snapshot import Caches

if TYPE_CHECKING:
    from rag.store.milvus import MilvusStore

SEARCH_WINDOW = 16384  # Milvus's largest `limit`


class MilvusVectorIndex:
    """Dense search over the passages' `dense` field (inner product on unit vectors)."""

    def __init__(self, store: MilvusStore) -> None:
        self._store = store

    @property
    def dim(self) -> int:
        return self._store.dim

    def __len__(self) -> int:
        return self._store.count("passages")

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        self._store.set_vectors(ids, vectors)  # the store's write (idempotent)

    def remove(self, ids: Sequence[int]) -> None:
        self._store.delete_passages(ids)

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        if k <= 0:
            return []
        q = np.asarray(query, dtype=np.float32).reshape(-1).tolist()
        hits = self._store.client.search(
            self._store.names["passages"],
            data=[q],
            anns_field="dense",
            limit=min(k, SEARCH_WINDOW),
            search_params={"metric_type": "IP"},
            output_fields=[],
        )[0]
        return [(int(h["id"]), float(h["distance"])) for h in hits]

    def similarities(self, query: np.ndarray, ids: Iterable[int]) -> dict[int, float]:
        """Computed here from the stored vectors, exactly as the local backend does."""
        ids = list(ids)
        found = self._fetch(ids)
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        return {pid: float(found[pid] @ q) for pid in ids if pid in found}

    def ids(self) -> np.ndarray:
        rows = self._store.query("passages", "", ["id"])
        return np.asarray(sorted(int(r["id"]) for r in rows), dtype=np.int64)

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        found = self._fetch(ids)
        if not len(ids):
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([found[int(pid)] for pid in ids])

    def _fetch(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        rows = self._store.query_ids("passages", "id", ids, ["id", "dense"])
        return {int(r["id"]): np.asarray(r["dense"], dtype=np.float32) for r in rows}

    def copy(self) -> MilvusVectorIndex:
        return self  # the server's index is the truth: writers write to it through the store


@dataclass(frozen=True)
class _Query:
    text: str  # the encoded query terms, each once (bm25s counts a query term once)


class MilvusLexicalIndex:
    """BM25 by Milvus over the passages' `lexical` tokens."""

    def __init__(self, store: MilvusStore) -> None:
        self._store = store

    def __len__(self) -> int:
        return self._store.count("passages")

    @property
    def ids(self) -> np.ndarray:
        rows = self._store.query("passages", "", ["id"])
        return np.asarray(sorted(int(r["id"]) for r in rows), dtype=np.int64)

    @property
    def matrix_rows(self) -> int:
        return len(self)  # Milvus maintains its BM25 index with the rows

    def scores(self, tokens: Sequence[str]) -> _Query | None:
        terms = list(dict.fromkeys(tokens))
        return _Query(encode_tokens(terms)) if terms else None

    def _search(self, query: _Query, k: int, expr: str = "") -> list[tuple[int, float]]:
        hits = self._store.client.search(
            self._store.names["passages"],
            data=[query.text],
            anns_field="sparse",
            limit=min(k, SEARCH_WINDOW),
            filter=expr,
            search_params={"metric_type": "BM25"},
            output_fields=[],
        )[0]
        # Milvus Lite reports BM25 as a negated distance; a server as the score itself.
        scored = [(int(h["id"]), abs(float(h["distance"]))) for h in hits]
        return [(pid, s) for pid, s in scored if s > 0]

    def top(self, scores: _Query | None, k: int) -> list[tuple[int, float]]:
        if scores is None or k <= 0:
            return []
        return sorted(self._search(scores, k), key=lambda h: (-h[1], h[0]))

    def score_of(self, scores: _Query | None, ids: Iterable[int]) -> dict[int, float]:
        if scores is None:
            return {}
        out: dict[int, float] = {}
        for chunk in chunks(sorted(set(ids))):
            out.update(self._search(scores, len(chunk), f"id in {chunk}"))
        return out

    def search(self, tokens: Sequence[str], k: int) -> list[tuple[int, float]]:
        return self.top(self.scores(tokens), k)

    def idf(self, tokens: Iterable[str]) -> dict[str, float]:
        """bm25s's IDF, with document frequencies counted by Milvus's text match."""
        n = len(self)
        out: dict[str, float] = {}
        for t in dict.fromkeys(tokens):
            rows = self._store.client.query(
                self._store.names["passages"],
                filter=f"TEXT_MATCH(lexical, {literal(encode_tokens([t]))})",
                output_fields=["count(*)"],
            )
            d = int(rows[0]["count(*)"]) if rows else 0
            out[t] = math.log(1 + (n - d + 0.5) / (d + 0.5))
        return out


class MilvusSnapshots:
    """Nothing to publish: readers search the collections themselves."""

    def __init__(self, store: MilvusStore) -> None:
        self._store = store

    def published(self) -> int | None:
        return self._store.generation()

    def stamp_signature(self) -> tuple[int, int, int] | None:
        return None  # never a snapshot to adopt: every query searches the live collection

    def load(self, generation: int) -> Caches | None:
        return live_caches(self._store, generation)

    def publish(self, caches: Caches) -> None:
        """Seal what was written: BM25 over a growing segment uses its own statistics, and
        only sealed segments score exactly as bm25s does (measured: docs/benchmarks.md)."""
        self._store.client.flush(self._store.names["passages"])


def live_caches(store: MilvusStore, generation: int) -> Caches:
    return Caches(MilvusVectorIndex(store), MilvusLexicalIndex(store), generation)
