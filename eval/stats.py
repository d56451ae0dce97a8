"""The one percentile definition of the evaluator and the benchmarks."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank `q`th percentile (0-100) of `values`: a value that occurred.

    Raises:
        ValueError: No values.
    """
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def percentiles(
    values: Sequence[float], tails: Iterable[int] = (95,), digits: int = 3
) -> dict[str, float]:
    """`p50` (the median), each tail percentile (`p95`, ...) and `max`, rounded."""
    out = {"p50": round(statistics.median(values), digits)}
    for q in tails:
        out[f"p{q}"] = round(percentile(values, q), digits)
    out["max"] = round(max(values), digits)
    return out
