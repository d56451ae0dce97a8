"""Which scoring rule a report's rates follow, and whether two reports' rates compare.

A report records it as `run.scoring_version`. Reports written before that carry none: they
may follow either rule below, and keep too little per question (their failed questions
only, at most 300) for their rates to be recomputed under another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

# Raised whenever `eval.scoring.summarise` changes what a rate means for the same answers.
SCORING_VERSION = 2
SCORING_RULES = {
    1: "a failed question is left out of every rate",
    2: "a failed question counts as a miss in every rate of success",
}
# What a report that records no version may have been scored under.
UNRECORDED = (1, 2)


@dataclass(frozen=True)
class ScoringComparison:
    """The scoring of a compared report beside this run's, as the report and page say it."""

    report: str  # the compared report, as --compare named it
    scoring_version: int | None  # the compared report's; None when it records none
    comparable: bool  # its rates mean what this run's do
    note: str | None  # what differs and whether it matters; None when nothing differs

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def scoring_version(report: Mapping[str, Any]) -> int | None:
    """The report's `run.scoring_version`, None for a report written before it was recorded."""
    version = (report.get("run") or {}).get("scoring_version")
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def _errors(report: Mapping[str, Any]) -> tuple[object, object]:
    metrics = report.get("metrics") or {}
    return metrics.get("errors"), metrics.get("questions")


def _as_current(report: Mapping[str, Any]) -> bool:
    """Whether the report's rates are what the current rule gives for its answers.

    The rules differ only in how a failed question counts: with none failed, a report of
    version 1, or of no recorded version, has the rates version 2 gives.
    """
    version = scoring_version(report)
    if version == SCORING_VERSION:
        return True
    return version in (None, *UNRECORDED) and _errors(report)[0] == 0


def _has(label: str, version: int | None) -> str:
    said = "no scoring version" if version is None else f"scoring version {version}"
    return f"{label} has {said}"


def _why_not(label: str, report: Mapping[str, Any]) -> str:
    """Why the rates of `report` may not be what the current rule gives its answers."""
    version = scoring_version(report)
    if version not in (None, *UNRECORDED):
        return f"{label} was scored under version {version}, which this rag eval does not know"
    errors, asked = _errors(report)
    failed = (
        f"{errors} of its {asked} questions failed"
        if errors is not None
        else "it does not say how many of its questions failed"
    )
    rule = f"{SCORING_RULES[1]}, which reads higher for the same answers"
    if version is None:
        return (
            f"{label} has no scoring version and {failed}: it may be from before failed "
            f"questions counted as misses, when {rule}"
        )
    return f"{label} was scored under version 1 and {failed}: {rule}"


def against_this_run(theirs: Mapping[str, Any], name: str) -> ScoringComparison:
    """`compare_scoring` of the report `name` with a run scored now."""
    return compare_scoring({"run": {"scoring_version": SCORING_VERSION}}, theirs, name)


def compare_scoring(
    ours: Mapping[str, Any], theirs: Mapping[str, Any], name: str
) -> ScoringComparison:
    """Whether the rates of `theirs` (the report `name`) compare with those of `ours`.

    They do when both record one version, or when each has the rates the current rule gives
    its answers; else the note says why not, and that the rates cannot be recomputed.
    """
    mine, other = scoring_version(ours), scoring_version(theirs)
    if mine is not None and mine == other:
        return ScoringComparison(name, other, True, None)
    if _as_current(ours) and _as_current(theirs):
        old = [
            (label, v) for label, v in (("this run", mine), (name, other)) if v != SCORING_VERSION
        ]
        said = " and ".join(_has(label, v) for label, v in old)
        note = (
            f"{said}, but no question of {'it' if len(old) == 1 else 'either'} failed: the "
            f"rates are the same under scoring {SCORING_VERSION} "
            f"({SCORING_RULES[SCORING_VERSION]}), with nothing to recompute"
        )
        return ScoringComparison(name, other, True, note)
    why = "; ".join(
        _why_not(label, report)
        for label, report in (("this run", ours), (name, theirs))
        if not _as_current(report)
    )
    note = (
        f"{why}. The two reports' rates may be computed differently, and a report holds too "
        "little per question to recompute them: compare them with care"
    )
    return ScoringComparison(name, other, False, note)
