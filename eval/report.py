"""The evaluation report as one self-contained HTML page: tables, inline SVG plots, failures."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import jinja2

from eval.plots import DASH, format_ms, hit_curve_svg, latency_svg
from eval.versions import SCORING_RULES, compare_scoring, scoring_version
from rag.text.script import fold_script

TEMPLATES = Path(__file__).parent / "templates"

Unit = Literal["ratio", "score", "count", "chars", "ms"]
Tone = Literal["better", "worse", ""]
Segments = list[tuple[str, bool]]  # (text, is a gold answer)

REASONS = {
    "error": "error",
    "passage_miss": "passage miss",
    "answer_miss": "answer miss",
    "citation_wrong": "citation wrong",
    "quote_invalid": "quote invalid",
    "should_abstain": "should abstain",
    "should_answer": "should answer",
}


# Keys the template reads, for reports written before a key existed.
RUN = dict.fromkeys(("pipeline", "inputs", "index", "url", "script", "top_k", "questions"))
RUN |= dict.fromkeys(("sampled", "limit", "started_at", "seconds", "interrupted", "settings"))
RUN |= dict.fromkeys(("scoring_version",))
COUNTS = dict.fromkeys(("questions", "answerable", "unanswerable", "errors"), 0)
CITATION = dict.fromkeys(("n", "file", "paragraph", "quote", "char_start", "char_end"))


@dataclass(frozen=True)
class Metric:
    key: str  # in report["metrics"]; "latency.p50" reads metrics["latency_ms"]["total"]["p50"]
    label: str
    unit: Unit
    higher_is_better: bool | None  # None: neither direction is better
    short: str = ""  # column header where space is tight


HEADLINE = (
    Metric("hit@1", "hit@1", "ratio", True),
    Metric("hit@3", "hit@3", "ratio", True),
    Metric("hit@5", "hit@5", "ratio", True),
    Metric("hit@10", "hit@10", "ratio", True),
    Metric("mrr@10", "MRR@10", "score", True),
    Metric("answer_hit", "answer hit", "ratio", True, "answer hit"),
    Metric("short_em", "short answer exact match", "ratio", True, "short EM"),
    Metric("short_f1", "short answer F1 (chars)", "ratio", True, "short F1"),
    Metric("short_valid", "short answers inside their quote", "ratio", True, "short valid"),
    Metric("citation_accuracy", "citation accuracy", "ratio", True, "citation acc."),
    Metric("quotes_valid", "quotes valid", "ratio", True, "quotes valid"),
    Metric("duplicate_rate", "duplicate rate (top-k)", "ratio", False, "dup. rate"),
    Metric("abstention_precision", "abstention precision", "ratio", True, "abst. P"),
    Metric("abstention_recall", "abstention recall", "ratio", True, "abst. R"),
    Metric("answer_chars_median", "median answer length (chars)", "chars", None, "median chars"),
    Metric("errors", "errors", "count", False),
    Metric("latency.p50", "latency p50", "ms", False),
    Metric("latency.p95", "latency p95", "ms", False),
)
TILES = ("hit@5", "answer_hit", "citation_accuracy", "latency.p50")
# Narrow enough to print: the duplicate rate is about the index more than the question kind.
KIND_COLUMNS = tuple(
    m
    for m in HEADLINE
    if m.key not in ("hit@3", "hit@10", "duplicate_rate", "latency.p50", "latency.p95")
)


def with_mrr_at(columns: Sequence[Metric], *metrics: Mapping[str, Any] | None) -> list[Metric]:
    """`columns` with a row for each MRR@k under 10 the reports measured (a run with
    --top-k below 10), beside MRR@10, which such a run did not measure."""
    ks = sorted(
        {
            int(key.removeprefix("mrr@"))
            for values in metrics
            for key in values or {}
            if key.startswith("mrr@") and key.removeprefix("mrr@").isdigit()
        }
        - {10}
    )
    out: list[Metric] = []
    for metric in columns:
        out.append(metric)
        if metric.key == "mrr@10":
            out += [Metric(f"mrr@{k}", f"MRR@{k}", "score", True) for k in ks]
    return out


def named_mrr(metrics: Mapping[str, Any], top_k: object) -> dict[str, Any]:
    """`metrics` with the MRR of a report written before MRR was named by its ranks: with
    --top-k K below 10 its `mrr@10` was MRR@K, shown as such (and MRR@10 as not measured)."""
    value = metrics.get("mrr@10")
    if not isinstance(top_k, int) or not 0 < top_k < 10 or value is None:
        return dict(metrics)
    return {**metrics, "mrr@10": None, f"mrr@{top_k}": metrics.get(f"mrr@{top_k}", value)}


@dataclass(frozen=True)
class Cell:
    """A metric of this run, and of the baseline with the difference when there is one."""

    metric: Metric
    ours: str
    baseline: str | None = None
    delta: str = ""
    tone: Tone = ""


def format_value(value: float | None, unit: Unit) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if unit == "ratio":
        return f"{value * 100:.1f}%"
    if unit == "score":
        return f"{value:.3f}"
    if unit == "ms":
        return format_ms(value)
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {rest} s"


def metric_value(metrics: Mapping[str, Any], key: str) -> float | None:
    if key.startswith("latency."):
        total = (metrics.get("latency_ms") or {}).get("total") or {}
        value = total.get(key.removeprefix("latency."))
    else:
        value = metrics.get(key)
    return None if value is None else float(value)


def compare(metric: Metric, ours: float | None, base: float | None) -> tuple[str, Tone]:
    """The difference between two runs, and whether it is for the better."""
    if ours is None or base is None:
        return "", ""
    if metric.unit == "ms":
        if ours <= 0 or base <= 0 or math.isclose(ours, base, rel_tol=0.005):
            return "same", ""
        faster = ours < base
        times = base / ours if faster else ours / base
        shown = f"{times:.2f}" if times < 2 else f"{times:.1f}" if times < 10 else f"{times:.0f}"
        return f"{shown}× {'faster' if faster else 'slower'}", "better" if faster else "worse"
    diff = ours - base
    if metric.unit == "ratio":
        diff, text = round(diff * 100, 1), f"{diff * 100:+.1f} pp"
    elif metric.unit == "score":
        diff, text = round(diff, 3), f"{diff:+.3f}"
    else:
        text = f"{diff:+,.0f}" if float(diff).is_integer() else f"{diff:+,.1f}"
    if diff == 0:
        return text.replace("+", "±").replace("-", "±"), ""
    if metric.higher_is_better is None:
        return text, ""
    return text, "better" if (diff > 0) == metric.higher_is_better else "worse"


def cells(
    metrics: Mapping[str, Any], base: Mapping[str, Any] | None, columns: Sequence[Metric]
) -> list[Cell]:
    out = []
    for metric in columns:
        ours = metric_value(metrics, metric.key)
        if base is None:
            out.append(Cell(metric, format_value(ours, metric.unit)))
            continue
        theirs = metric_value(base, metric.key)
        delta, tone = compare(metric, ours, theirs)
        out.append(
            Cell(
                metric,
                format_value(ours, metric.unit),
                format_value(theirs, metric.unit),
                delta,
                tone,
            )
        )
    return out


# -- gold highlighting ------------------------------------------------------------------------


def highlight(text: str | None, answers: Sequence[str]) -> Segments:
    """`text` split into runs, each flagged if it is a gold answer.

    Matched script-folded (a traditional answer marks simplified text) when folding keeps the
    text's length, so offsets in the folded text are offsets in the text; else matched as is.
    The template escapes every run: marking never inserts markup into untrusted text.
    """
    if not text:
        return []
    folded = fold_script(text)
    same_length = len(folded) == len(text)
    haystack = folded if same_length else text
    spans: list[tuple[int, int]] = []
    for answer in answers:
        needle = (fold_script(answer) if same_length else answer).strip()
        start = haystack.find(needle) if needle else -1
        while start != -1:
            spans.append((start, start + len(needle)))
            start = haystack.find(needle, start + len(needle))
    segments: Segments = []
    position = 0
    for start, end in sorted(spans):
        if end <= position:
            continue
        start = max(start, position)
        if start > position:
            segments.append((text[position:start], False))
        if segments and segments[-1][1] and start == position:
            segments[-1] = (segments[-1][0] + text[start:end], True)  # overlapping answers
        else:
            segments.append((text[start:end], True))
        position = end
    if position < len(text):
        segments.append((text[position:], False))
    return segments


def failure_view(failure: Mapping[str, Any]) -> dict[str, Any]:
    """One failed question as the template shows it, gold answers marked in every text."""
    gold = {"file": None, "paragraph": None, **(failure.get("gold") or {})}
    answers = [a for a in gold.get("answers") or [] if a]
    question, asked = failure.get("question") or "", failure.get("asked") or ""
    codes = list(failure.get("reasons") or [])
    return {
        "id": failure.get("id"),
        "kind": failure.get("kind"),
        "rank": failure.get("rank"),
        "codes": codes,
        "reasons": [(code, REASONS.get(code, code)) for code in codes],
        "question": question,
        "asked": asked if asked and asked != question else None,
        "answer": highlight(failure.get("answer"), answers),
        "abstained": bool(failure.get("abstained")),
        "error": failure.get("error"),
        "citations": [
            {**CITATION, **c, "quote": highlight(c.get("quote"), answers)}
            for c in failure.get("citations") or []
        ],
        "gold": {**gold, "answers": answers, "evidence": highlight(gold.get("evidence"), answers)},
    }


# -- page -------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    # autoescape=True, not select_autoescape: the template's name ends in .j2, not .html.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ms"] = format_ms
    env.filters["seconds"] = format_seconds
    env.filters["count"] = lambda v: DASH if v is None else f"{v:,}"
    return env


def stage_rows(
    report: Mapping[str, Any], baseline: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Per-stage latency, this run's stages first then the baseline's others, total last."""
    ours = report["metrics"].get("latency_ms") or {}
    theirs = (baseline or {}).get("metrics", {}).get("latency_ms") or {}
    names = [s for s in ours if s != "total"] + [
        s for s in theirs if s not in ours and s != "total"
    ]
    names += ["total"] if "total" in ours or "total" in theirs else []
    scale = (ours.get("total") or {}).get("p50") or max(
        (s.get("p50", 0) for s in ours.values()), default=0
    )
    return [
        {
            "name": name,
            "ours": ours.get(name),
            "baseline": theirs.get(name),
            "share": min(100.0, 100 * ours[name]["p50"] / scale) if name in ours and scale else 0.0,
        }
        for name in names
    ]


def render_html(report: Mapping[str, Any], baseline: Mapping[str, Any] | None = None) -> str:
    """The report as a self-contained HTML page (inline CSS, SVG and JS; no network).

    Args:
        report: what `rag eval --out` writes: run, metrics, hit_curve, latencies_ms, by_kind,
            failures.
        baseline: another report over the same questions (e.g. `--pipeline
            langchain-baseline`); the headline table then compares the two.

    Returns:
        The HTML text.
    """
    run = {**RUN, **report["run"]}
    metrics = named_mrr({**COUNTS, **report["metrics"]}, run["top_k"])
    base_run = {**RUN, **baseline["run"]} if baseline else None
    base_metrics = (
        named_mrr({**COUNTS, **baseline["metrics"]}, base_run["top_k"])
        if baseline and base_run
        else None
    )
    headline = cells(metrics, base_metrics, with_mrr_at(HEADLINE, metrics, base_metrics))
    total = (metrics.get("latency_ms") or {}).get("total") or {}
    base_kinds = {
        kind: named_mrr(values, base_run["top_k"])
        for kind, values in ((baseline or {}).get("by_kind") or {}).items()
        if base_run
    }
    our_kinds = {
        kind: named_mrr(values, run["top_k"])
        for kind, values in (report.get("by_kind") or {}).items()
    }
    curves = [(run.get("pipeline") or "this run", report.get("hit_curve") or {})]
    if baseline and base_run:
        curves.append((base_run["pipeline"] or "baseline", baseline.get("hit_curve") or {}))
    kind_columns = with_mrr_at(KIND_COLUMNS, metrics, base_metrics, *our_kinds.values())
    # Said on the page too: two reports scored by other rules put rates side by side that
    # do not mean the same.
    named = (report.get("compared") or {}).get("report") or "the baseline report"
    scoring = compare_scoring(report, baseline, named) if baseline else None
    failures = [failure_view(f) for f in report.get("failures") or []]
    codes = [code for failure in failures for code in failure["codes"]]
    order = [*REASONS, *sorted(set(codes) - set(REASONS))]
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            run=run,
            metrics=metrics,
            inputs=[Path(p).name for p in run.get("inputs") or []],
            baseline_run=base_run,
            baseline_questions=base_metrics.get("questions") if base_metrics else None,
            baseline_errors=base_metrics.get("errors") if base_metrics else None,
            scoring_rule=SCORING_RULES.get(scoring_version(report) or 0),
            baseline_scoring=scoring_version(baseline) if baseline else None,
            scoring=scoring,
            headline=headline,
            tiles=[c for key in TILES for c in headline if c.metric.key == key],
            hit_curve=hit_curve_svg(curves),
            latency_plot=latency_svg(
                report.get("latencies_ms") or [], total.get("p50"), total.get("p95")
            ),
            stages=stage_rows(report, baseline),
            kind_columns=kind_columns,
            kinds=[
                (kind, values.get("questions"), cells(values, base_kinds.get(kind), kind_columns))
                for kind, values in our_kinds.items()
            ],
            failures=failures,
            reasons=[(c, REASONS.get(c, c), codes.count(c)) for c in order if c in codes],
            dash=DASH,
        )
    )


def write_html(
    report: Mapping[str, Any], path: str | Path, baseline: Mapping[str, Any] | None = None
) -> Path:
    """Render the report (see `render_html`) to `path` as UTF-8; returns the path."""
    path = Path(path)
    path.write_text(render_html(report, baseline), encoding="utf-8")
    return path
