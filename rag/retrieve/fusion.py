"""Fusion of lexical and dense rankings into one relevance score in [0, 1]."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Fused:
    id: int
    score: float
    dense: float
    lexical: float


def fuse_rankings(
    dense: Mapping[int, float],
    lexical: Mapping[int, float],
    dense_weight: float,
    dense_floor: float,
) -> list[Fused]:
    """Convex combination of normalised scores, best first.

    Plain reciprocal-rank fusion throws the score gaps away and loses to BM25 alone on DRCD;
    a weighted sum of normalised scores keeps them (Bruch et al., "An Analysis of Fusion
    Functions for Hybrid Retrieval", 2023). Both inputs must score every candidate:

    - dense cosine is mapped from `[dense_floor, 1]` to `[0, 1]` (clipped): a fixed, absolute
      scale, since multilingual-e5 puts unrelated text around 0.75 rather than 0;
    - BM25 is divided by the best BM25 score of the query, which makes it relative to the
      best lexical match and bounded by 1.

    Args:
        dense: candidate id -> cosine similarity.
        lexical: candidate id -> BM25 score (0 when no query term matches).
        dense_weight: weight of the dense part, the lexical part gets `1 - dense_weight`.
        dense_floor: cosine similarity that counts as no relevance at all.

    Returns:
        Every candidate in either mapping with its fused score, best first.
    """
    best_lexical = max(lexical.values(), default=0.0)
    span = max(1.0 - dense_floor, 1e-6)
    fused = []
    for pid in dense.keys() | lexical.keys():
        d = min(max((dense.get(pid, dense_floor) - dense_floor) / span, 0.0), 1.0)
        lex = lexical.get(pid, 0.0) / best_lexical if best_lexical > 0 else 0.0
        fused.append(Fused(pid, dense_weight * d + (1 - dense_weight) * lex, d, lex))
    fused.sort(key=lambda f: (-f.score, f.id))
    return fused
