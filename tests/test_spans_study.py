"""The span scorer study: each dev set weighs the same in a joint fit, and a half is measured
only by weights that never saw its articles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from eval.studies import spans
from eval.studies.spans import Item, by_halves, fit
from rag.answer.spans.features import NAMES


def _items(marker: int, n: int, seed: int, article: int = 0) -> list[Item]:
    """`n` questions of four candidates whose right one has the highest feature `marker`;
    the two first features vary, the others are 0."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x = np.zeros((4, len(NAMES)))
        x[:, :2] = rng.normal(size=(4, 2))
        y = np.zeros(4)
        y[int(np.argmax(x[:, marker]))] = 1.0
        out.append(Item("who", article + i, "", [(0, 1)] * 4, x, y, ("",)))
    return out


def test_each_group_weighs_the_same_whatever_its_size() -> None:
    # Two sets marking their answers differently (feature 0 against feature 1).
    small, large = _items(0, 30, seed=1), _items(1, 30, seed=2)
    balanced = fit([small, large], steps=60)
    assert fit([small, large * 3], steps=60) == balanced
    # As one pool, the set with more questions pulls the weights its way.
    pooled = fit([small + large * 3], steps=60)
    assert pooled != balanced
    assert pooled[NAMES[1]] - pooled[NAMES[0]] > balanced[NAMES[1]] - balanced[NAMES[0]]


def test_a_half_is_measured_only_by_weights_fit_without_its_articles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target, other = _items(0, 12, seed=3), _items(0, 5, seed=4, article=100)
    seen: list[set[int]] = []

    def recording_fit(groups: Sequence[Sequence[Item]], **_: Any) -> dict[str, float]:
        seen.append({i.article for g in groups for i in g})
        return {"marker": len(seen)}  # names the fit, so `measure` knows which it got

    def checking_measure(items: Sequence[Item], weights: dict[str, float]) -> dict[str, Any]:
        if "marker" in weights:
            assert not {i.article for i in items} & seen[int(weights["marker"]) - 1]
        return {"questions": len(items), "em": 1.0, "f1": 1.0, "spans_given": 1.0}

    monkeypatch.setattr(spans, "fit", recording_fit)
    monkeypatch.setattr(spans, "measure", checking_measure)
    report = by_halves(target, other, l2=1e-3)
    assert len(seen) == 4  # joint and own set, for each half
    assert {a for s in seen for a in s} == {i.article for i in target + other}
    assert report["joint"]["questions"] == report["own set"]["questions"] == len(target)
