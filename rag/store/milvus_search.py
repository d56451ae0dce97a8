"""Search in Milvus: dense and BM25 views over the passage collection, and its snapshots.

The passage collection is both the store and the index, so these views hold no state of
their own: a write to the store is what they search next (Milvus's strong consistency).
BM25 is Milvus's built-in function over our own tokens (script-folded character bigrams,
hex-encoded so its analyzer keeps them whole), with bm25s's parameters: the same scores as
the local backend (docs/benchmarks.md, "Milvus backend").
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from rag.store.milvus_schema import BM25_PARAMS, chunks, encode_tokens
from rag.store.snapshot import Caches

if TYPE_CHECKING:
    from rag.store.milvus import MilvusStore

SEARCH_WINDOW = 16384  # Milvus's largest `limit`
BM25_K1, BM25_B = BM25_PARAMS["bm25_k1"], BM25_PARAMS["bm25_b"]


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

    def replace(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        self._store.set_vectors(ids, vectors)  # an upsert of the `dense` field

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


@dataclass
class _Query:
    terms: list[str]  # each query term once (bm25s counts a query term once)
    idf: dict[str, float] = field(default_factory=dict)
    mean_length: float = 0.0
    words: list[str] = field(default_factory=list)  # `terms` as stored (hex-encoded)


@dataclass(frozen=True)
class _Frequencies:
    """How many passages hold each token, for one state of the passages collection."""

    key: tuple[int, int, int]  # generation, passage count, token total
    counts: Counter[str]  # hex-encoded token -> passages holding it


class MilvusLexicalIndex:
    """BM25 over the passages' `lexical` tokens: Milvus's BM25 picks, exact BM25 scores.

    Milvus's built-in BM25 function finds the top passages in the engine. Its statistics
    (passage count, mean length, document frequencies) lag behind deletions, and so would
    scores and answers (measured: docs/benchmarks.md, "Milvus backend"); so the candidates
    are scored again here with bm25s's formula (Lucene IDF, k1 = 1.5, b = 0.75) over the
    live collection: the count of passages, each query term's document frequency and the
    token total kept in `meta`. Both backends then score every passage alike.

    Document frequencies are counted here from every passage's tokens, once per state of
    the collection, rather than by a `TEXT_MATCH` count per query term: in Milvus Lite each
    such count scans the collection in this process (0.23 s of CPU at 3,099 passages, some
    16 terms a question), while one read of all tokens costs about half a second and serves
    every question until a write changes the generation, the passage count or the token
    total (docs/benchmarks.md, "Milvus backend", "Query cost").
    """

    # False scores with Milvus's own BM25 (bench/milvus.py measures what that costs).
    exact = True

    def __init__(self, store: MilvusStore) -> None:
        self._store = store
        self._frequencies: _Frequencies | None = None

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
        if not terms:
            return None
        query = _Query(terms, words=[encode_tokens([t]) for t in terms])
        n, total = len(self), self._store.token_total()
        query.idf = self._idf(terms, n, total)
        query.mean_length = total / n if n else 0.0
        return query

    def top(self, scores: _Query | None, k: int) -> list[tuple[int, float]]:
        if scores is None or k <= 0:
            return []
        hits = self._store.client.search(
            self._store.names["passages"],
            data=[encode_tokens(scores.terms)],
            anns_field="sparse",
            limit=min(k, SEARCH_WINDOW),
            search_params={"metric_type": "BM25"},
            output_fields=["lexical"],
        )[0]
        if self.exact:
            found = {int(h["id"]): self._score(scores, str(h["entity"]["lexical"])) for h in hits}
        else:  # Lite reports BM25 as a negated distance
            found = {int(h["id"]): abs(float(h["distance"])) for h in hits}
        ranked = sorted(found.items(), key=lambda h: (-h[1], h[0]))
        return [(pid, s) for pid, s in ranked if s > 0]

    def score_of(self, scores: _Query | None, ids: Iterable[int]) -> dict[int, float]:
        if scores is None:
            return {}
        if not self.exact:
            return self._milvus_scores(scores, ids)
        rows = self._store.query_ids("passages", "id", ids, ["id", "lexical"])
        out = {int(r["id"]): self._score(scores, str(r["lexical"])) for r in rows}
        return {pid: s for pid, s in out.items() if s > 0}

    def search(self, tokens: Sequence[str], k: int) -> list[tuple[int, float]]:
        return self.top(self.scores(tokens), k)

    def _milvus_scores(self, query: _Query, ids: Iterable[int]) -> dict[int, float]:
        out: dict[int, float] = {}
        for chunk in chunks(sorted(set(ids))):
            hits = self._store.client.search(
                self._store.names["passages"],
                data=[encode_tokens(query.terms)],
                anns_field="sparse",
                limit=len(chunk),
                filter=f"id in {chunk}",
                search_params={"metric_type": "BM25"},
            )[0]
            out.update({int(h["id"]): abs(float(h["distance"])) for h in hits})
        return {pid: s for pid, s in out.items() if s > 0}

    def idf(self, tokens: Iterable[str]) -> dict[str, float]:
        """bm25s's IDF, with document frequencies over the live passages."""
        return self._idf(list(dict.fromkeys(tokens)), len(self), self._store.token_total())

    def _idf(self, terms: Sequence[str], n: int, tokens: int) -> dict[str, float]:
        counts = self._document_frequencies(n, tokens)
        out: dict[str, float] = {}
        for t in terms:
            d = counts.get(encode_tokens([t]), 0)
            out[t] = math.log(1 + (n - d + 0.5) / (d + 0.5))
        return out

    def _document_frequencies(self, n: int, tokens: int) -> Counter[str]:
        """Passages holding each token, counted again only when the collection changed.

        Every write moves the generation or the passage count (a removal outside a batch
        moves the count), and a batch sets the token total: a state whose three agree with
        the cached one holds the same passages. A read that races a write (its row count
        not `n`) serves its own question and is not kept.
        """
        key = (self._store.generation(), n, tokens)
        cached = self._frequencies
        if cached is not None and cached.key == key:
            return cached.counts
        rows = self._store.query("passages", "", ["lexical"])
        counts: Counter[str] = Counter()
        for row in rows:
            counts.update(set(str(row["lexical"]).split()))
        if len(rows) == n:
            self._frequencies = _Frequencies(key, counts)
        return counts

    @staticmethod
    def _score(query: _Query, lexical: str) -> float:
        words = lexical.split()
        if not words or query.mean_length <= 0:
            return 0.0
        counts = Counter(words)
        norm = BM25_K1 * (1 - BM25_B + BM25_B * len(words) / query.mean_length)
        score = 0.0
        for t, word in zip(query.terms, query.words, strict=True):
            tf = counts.get(word, 0)
            if tf:
                score += query.idf[t] * tf / (tf + norm)
        return score


class MilvusSnapshots:
    """Nothing to copy: readers search the collections themselves. A write that was killed
    leaves the index unpublished (`dirty`) until a writer collects what it left."""

    def __init__(self, store: MilvusStore) -> None:
        self._store = store

    def published(self) -> int | None:
        return None if self._store.dirty else self._store.generation()

    def stamp_signature(self) -> tuple[int, int, int] | None:
        return None  # never a snapshot to adopt: every query searches the live collection

    def load(self, generation: int) -> Caches | None:
        return live_caches(self._store, generation)

    def publish(self, caches: Caches) -> None:
        """Seal what was written: Milvus's BM25 keeps a growing segment's statistics apart,
        and its candidates are best picked over sealed segments. Called with the write
        lock held: what an interrupted write left is collected first."""
        if self._store.dirty:
            self._store.collect_garbage()
        self._store.client.flush(self._store.names["passages"])


def live_caches(store: MilvusStore, generation: int) -> Caches:
    return Caches(MilvusVectorIndex(store), MilvusLexicalIndex(store), generation)
