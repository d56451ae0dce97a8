"""Fusion of dense and lexical scores into one 0-1 score."""

from __future__ import annotations

import pytest

from rag.retrieve.fusion import fuse_rankings

DENSE = {1: 0.95, 2: 0.80, 3: 0.70}
LEXICAL = {1: 2.0, 2: 10.0, 3: 0.0}


def test_weight_one_ranks_by_dense_and_zero_by_lexical() -> None:
    assert [f.id for f in fuse_rankings(DENSE, LEXICAL, 1.0, 0.6)] == [1, 2, 3]
    assert [f.id for f in fuse_rankings(DENSE, LEXICAL, 0.0, 0.6)] == [2, 1, 3]


def test_scores_are_a_convex_combination_in_zero_to_one() -> None:
    fused = {f.id: f for f in fuse_rankings(DENSE, LEXICAL, 0.5, 0.6)}
    assert fused[2].lexical == 1.0  # the best lexical match
    assert fused[1].dense == pytest.approx((0.95 - 0.6) / 0.4)
    assert fused[1].score == pytest.approx(0.5 * fused[1].dense + 0.5 * 0.2)
    assert all(0.0 <= f.score <= 1.0 for f in fused.values())


def test_cosine_below_the_floor_counts_as_nothing() -> None:
    fused = {f.id: f for f in fuse_rankings({1: 0.5}, {}, 1.0, 0.75)}
    assert fused[1].score == 0.0


def test_candidates_from_either_side_are_kept() -> None:
    ids = {f.id for f in fuse_rankings({1: 0.9}, {2: 3.0}, 0.5, 0.6)}
    assert ids == {1, 2}
