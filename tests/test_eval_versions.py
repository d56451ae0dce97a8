"""The scoring version of reports: when two reports' rates compare, and what is said when not."""

from __future__ import annotations

from typing import Any

import pytest

from eval.versions import SCORING_VERSION, against_this_run, compare_scoring


def report(version: int | None, errors: int, questions: int = 50) -> dict[str, Any]:
    """A report's parts the comparison reads; `version` None as reports before it had."""
    run: dict[str, Any] = {"pipeline": "langchain-baseline"}
    if version is not None:
        run["scoring_version"] = version
    return {"run": run, "metrics": {"questions": questions, "errors": errors}}


def test_reports_of_one_version_compare_without_a_note() -> None:
    compared = against_this_run(report(SCORING_VERSION, errors=3), "old.json")
    assert (compared.comparable, compared.note) == (True, None)
    assert compared.scoring_version == SCORING_VERSION


def test_an_unversioned_report_with_failed_questions_is_flagged_not_recomputed() -> None:
    # It may have left its 3 failed questions out of every rate (the rule before they
    # counted as misses): 47 answered of 50 read as if they were all.
    compared = against_this_run(report(None, errors=3), "runs/old.json")

    assert compared.comparable is False and compared.scoring_version is None
    assert compared.note is not None
    assert "runs/old.json has no scoring version and 3 of its 50 questions failed" in compared.note
    assert "left out of every rate" in compared.note
    assert "too little per question to recompute them" in compared.note


@pytest.mark.parametrize("version", [None, 1])
def test_an_old_report_without_failed_questions_has_the_current_rates(
    version: int | None,
) -> None:
    # The rules differ only in how a failed question counts: with none, nothing changes.
    compared = against_this_run(report(version, errors=0), "runs/old.json")

    assert compared.comparable is True
    assert compared.note is not None and "nothing to recompute" in compared.note


def test_a_version_1_report_with_failed_questions_is_flagged() -> None:
    compared = against_this_run(report(1, errors=2), "v1.json")
    assert compared.comparable is False
    assert (
        compared.note is not None
        and "v1.json was scored under version 1 and 2 of its 50" in compared.note
    )


def test_a_report_of_a_newer_version_is_flagged() -> None:
    compared = against_this_run(report(SCORING_VERSION + 1, errors=0), "new.json")
    assert compared.comparable is False
    assert compared.note is not None
    assert f"version {SCORING_VERSION + 1}, which this rag eval does not know" in compared.note


def test_two_unversioned_reports_compare_only_without_failed_questions() -> None:
    # The page re-rendered from two old reports: each may follow either rule.
    assert compare_scoring(report(None, 0), report(None, 0), "b.json").comparable is True
    flagged = compare_scoring(report(None, 4), report(None, 0), "b.json")
    assert flagged.comparable is False
    assert flagged.note is not None and flagged.note.startswith("this run has no scoring")
