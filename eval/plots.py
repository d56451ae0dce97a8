"""The report's two plots, drawn with matplotlib and inlined as SVG: hit@k and latency."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from markupsafe import Markup, escape
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter, PercentFormatter

from eval.stats import percentile

DASH = "–"  # a metric that does not apply (null in the report)


def format_ms(ms: float | None) -> str:
    if ms is None:
        return DASH
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms" if ms >= 10 else f"{ms:.2f} ms"


def _label(text: str) -> str:
    # A "$" pair would start matplotlib's math mode.
    return text.replace("$", r"\$")


def _svg(fig: Figure, description: str) -> Markup:
    """The figure as inline SVG, without the XML prologue and DOCTYPE."""
    buffer = io.StringIO()
    fig.savefig(
        buffer,
        format="svg",
        metadata=dict.fromkeys(("Date", "Creator", "Format", "Type")),
    )
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    # matplotlib's own markup, carrying only our labels (which it escapes): safe to inline.
    return Markup(svg.replace("<svg ", f'<svg role="img" aria-label="{escape(description)}" ', 1))


def _figure() -> Figure:
    # Figure, not pyplot: no global figure registry or GUI backend, nothing left open.
    fig = Figure(figsize=(5.6, 3.2))
    # Fixed margins, not a layout engine: the labels are ours and short, and it draws once.
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.15, top=0.96)
    return fig


def hit_curve_svg(curves: Sequence[tuple[str, Mapping[str, float]]]) -> Markup | None:
    """Passage hit@k against k, one line per run; None when no run has a curve."""
    curves = [(name, curve) for name, curve in curves if curve]
    if not curves:
        return None
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "hit-curve"}):
        fig = _figure()
        ax = fig.add_subplot()
        lowest = 1.0
        for (name, curve), style in zip(curves, ("-o", "--s"), strict=False):
            ks = sorted(int(k) for k in curve)
            values = [float(curve[str(k)]) for k in ks]
            lowest = min(lowest, *values)
            ax.plot(ks, values, style, label=_label(name), markersize=4)
        ax.set_ylim(max(0.0, math.floor((lowest - 0.05) * 10) / 10), 1.0)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 5, 10]))  # whole percents
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("k (passages retrieved)")
        ax.set_ylabel("questions with gold in top k")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        return _svg(fig, "hit@k curve")


def latency_svg(latencies: Sequence[float], p50: float | None, p95: float | None) -> Markup | None:
    """Histogram of per-question total latency with p50 and p95 marked; None without data."""
    values = np.asarray([v for v in latencies if v is not None], dtype=float)
    if values.size == 0:
        return None
    p50 = float(np.median(values)) if p50 is None else p50
    p95 = percentile(values.tolist(), 95) if p95 is None else p95
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "latency"}):
        fig = _figure()
        ax = fig.add_subplot()
        low, high = float(values.min()), float(values.max())
        # Long tails (the first question loads jieba) squash a linear axis: go logarithmic.
        if low > 0 and high / low > 30:
            ax.hist(values, bins=list(np.geomspace(low, high, 40)), color="#4c78a8")
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 100, not 10²
            ax.xaxis.set_minor_formatter(NullFormatter())
        else:
            ax.hist(values, bins=40, color="#4c78a8")
        ax.axvline(p50, color="#222222", linewidth=1.2, label=f"p50 {format_ms(p50)}")
        ax.axvline(
            p95, color="#d62728", linestyle="--", linewidth=1.2, label=f"p95 {format_ms(p95)}"
        )
        ax.set_xlabel("total latency per question (ms)")
        ax.set_ylabel("questions")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3, axis="y")
        ax.legend(loc="upper right")
        return _svg(fig, "latency histogram")
