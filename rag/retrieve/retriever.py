"""Hybrid retrieval: fold the query, search lexical and dense indexes, fuse, load passages."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from embeddings.base import Embedder
from rag.index.reader import IndexReader
from rag.retrieve.fusion import fuse_rankings
from rag.text.script import fold_script
from rag.types import ScoredPassage


@dataclass(frozen=True)
class RetrievalConfig:
    candidates: int = 50
    dense_weight: float = 0.7
    dense_floor: float = 0.8


@dataclass
class Retrieval:
    query: str
    folded: str
    passages: list[ScoredPassage]
    timings_ms: dict[str, float] = field(default_factory=dict)


class Retriever:
    """Searches one index with one embedder; shared by the CLI, the service and the evaluator."""

    def __init__(self, index: IndexReader, embedder: Embedder, config: RetrievalConfig) -> None:
        self.index = index
        self.embedder = embedder
        self.config = config

    def search(self, query: str, top_k: int) -> Retrieval:
        # Another process (`rag ingest` beside the service) may have published new caches.
        self.index.refresh()
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[name] = round((now - clock) * 1000, 3)
            clock = now

        folded = fold_script(query)
        lap("fold")
        tokens = self.index.tokenize(folded)
        vector = self.embedder.embed_query(folded)
        lap("embed")
        dense, lexical, search_ms = self.index.hybrid_candidates(
            tokens, vector, self.config.candidates
        )
        timings.update({k: round(v, 3) for k, v in search_ms.items()})
        clock = time.perf_counter()
        fused = fuse_rankings(dense, lexical, self.config.dense_weight, self.config.dense_floor)[
            :top_k
        ]
        lap("fusion")
        stored = self.index.passages([f.id for f in fused])
        passages = [
            ScoredPassage(stored[f.id], round(f.score, 4), round(f.dense, 4), round(f.lexical, 4))
            for f in fused
            if f.id in stored  # a passage deleted since the search is skipped, not an error
        ]
        lap("load")
        return Retrieval(query, folded, passages, timings)
