"""The HTML evaluation report: self-contained, escaped, and showing what the report dict holds."""

from __future__ import annotations

import copy
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from eval.plots import DASH
from eval.report import HEADLINE, compare, highlight, render_html, write_html
from eval.versions import SCORING_VERSION
from tests.conftest import visible_text

XSS = "<script>alert(1)</script>"


def make_report(**changes: Any) -> dict[str, Any]:
    """A small report of the shape `rag eval --out` writes; `changes` replace top-level keys."""
    stages = {"fold": 0.08, "embed": 21.0, "lexical": 6.2, "dense_search": 0.9, "compose": 8.3}
    latency = {s: {"p50": ms, "p95": 2 * ms, "max": 5 * ms} for s, ms in stages.items()}
    latency["total"] = {"p50": 35.6, "p95": 68.8, "max": 1180.0}
    metrics: dict[str, Any] = {
        "questions": 421,
        "answerable": 381,
        "unanswerable": 40,
        "errors": 1,
        "hit@1": 0.874,
        "hit@3": 0.941,
        "hit@5": 0.962,
        "hit@10": None,
        "mrr@10": 0.9123,
        "answer_hit": 0.781,
        "citation_accuracy": 0.853,
        "quotes_valid": 1.0,
        "duplicate_rate": 0.004,
        "abstention_precision": 0.72,
        "abstention_recall": 0.65,
        "answer_chars_median": 58,
        "latency_ms": latency,
    }
    kind_metrics = {k: v for k, v in metrics.items() if k != "latency_ms"}
    report: dict[str, Any] = {
        "run": {
            "pipeline": "ours",
            "inputs": ["../shared/datasets/cmrc2018_dev.json"],
            "index": "/tmp/index",
            "url": None,
            "script": "original",
            "top_k": 5,
            "questions": 421,
            "sampled": {"n": 500, "seed": 0},
            "limit": None,
            "started_at": "2026-11-21T16:00:00+00:00",
            "seconds": 812.4,
            "interrupted": False,
            "scoring_version": SCORING_VERSION,
            "settings": {"RAG_ABSTAIN_BELOW": 0.35},
        },
        "metrics": metrics,
        "hit_curve": {"1": 0.874, "2": 0.91, "3": 0.941, "4": 0.95, "5": 0.962},
        "latencies_ms": [30.0 + (i % 17) for i in range(400)] + [1180.0],
        "by_kind": {"factoid": {**kind_metrics, "questions": 300}},
        "failures": [
            failure(
                question="质检总局局长是谁？",
                answer="局长是支树平。[1]",
                answers=["支树平"],
                evidence="质检总局局长、党组书记支树平出席会议并讲话。",
            )
        ],
    }
    report.update(changes)
    return report


def failure(
    question: str, answer: str, answers: list[str], evidence: str | None, **changes: Any
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": "DEV_1_QUERY_0",
        "question": question,
        "asked": question,
        "kind": "factoid",
        "reasons": ["passage_miss", "citation_wrong"],
        "gold": {"file": "cmrc2018_dev/0001_x.txt", "paragraph": 3, "answers": answers},
        "answer": answer,
        "abstained": False,
        "error": None,
        "citations": [
            {
                "n": 1,
                "file": "cmrc2018_dev/0009_y.txt",
                "paragraph": 2,
                "quote": answer,
                "char_start": 1,
                "char_end": 9,
            }
        ],
        "rank": None,
    }
    item["gold"]["evidence"] = evidence
    item.update(changes)
    return item


class _Rows(HTMLParser):
    """Text of each row of the tables with a given class: first cell -> the other cells."""

    def __init__(self, css_class: str) -> None:
        super().__init__()
        self.css_class, self.depth = css_class, 0
        self.rows: dict[str, list[str]] = {}
        self.row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and self.css_class in (dict(attrs).get("class") or "").split():
            self.depth = 1
        elif self.depth and tag == "tr":
            self.row = []
        elif self.depth and self.row is not None and tag in ("td", "th"):
            self.row.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.depth = 0
        elif tag == "tr" and self.row:
            self.rows[self.row[0]] = [cell.strip() for cell in self.row[1:]]
            self.row = None

    def handle_data(self, data: str) -> None:
        if self.row:
            self.row[-1] += data


def headline_rows(html: str) -> dict[str, list[str]]:
    parser = _Rows("headline")
    parser.feed(html)
    return parser.rows


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(make_report())


# -- self-contained -----------------------------------------------------------------------------


def test_the_page_loads_nothing_from_the_network(page: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, flags=re.I)
    assert not re.search(r"<link\b", page, flags=re.I)
    assert not re.search(r"<script\b[^>]*\bsrc\s*=", page, flags=re.I)
    assert "@import" not in page
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page)


def test_both_plots_are_inline_svg_without_xml_prologue(page: str) -> None:
    assert page.count("<svg") == 2
    assert 'aria-label="hit@k curve"' in page
    assert 'aria-label="latency histogram"' in page
    assert "<?xml" not in page
    assert "<!DOCTYPE svg" not in page


def test_the_title_names_the_pipeline_and_the_inputs(page: str) -> None:
    title = re.search(r"<title>(.*?)</title>", page, flags=re.S)
    assert title is not None
    assert "ours" in title.group(1)
    assert "cmrc2018_dev.json" in title.group(1)


# -- numbers ------------------------------------------------------------------------------------


def test_headline_numbers_are_formatted(page: str) -> None:
    rows = headline_rows(page)
    assert rows["hit@1"] == ["87.4%"]
    assert rows["hit@5"] == ["96.2%"]
    assert rows["MRR@5"] == ["0.912"]  # the report's top_k is 5: its old-style mrr@10
    assert rows["quotes valid"] == ["100.0%"]
    assert rows["median answer length (chars)"] == ["58"]
    assert rows["latency p50"] == ["35.6 ms"]
    assert rows["latency p95"] == ["68.8 ms"]


def test_every_headline_metric_has_a_row(page: str) -> None:
    assert set(headline_rows(page)) >= {m.label for m in HEADLINE}


def test_null_metrics_render_as_a_dash() -> None:
    report = make_report()
    report["metrics"] |= {"abstention_precision": None, "abstention_recall": None}
    rows = headline_rows(render_html(report))
    assert rows["abstention precision"] == [DASH]
    assert rows["abstention recall"] == [DASH]
    assert rows["hit@10"] == [DASH]


def test_latency_stages_are_whatever_the_pipeline_reports() -> None:
    report = make_report()
    report["metrics"]["latency_ms"] = {
        "retrieve": {"p50": 120.0, "p95": 300.0, "max": 900.0},
        "generate": {"p50": 1500.0, "p95": 2500.0, "max": 4000.0},
        "total": {"p50": 1650.0, "p95": 2800.0, "max": 4900.0},
    }
    text = visible_text(render_html(report))
    assert "retrieve 120 ms 300 ms 900 ms" in text
    assert "generate 1.50 s 2.50 s 4.00 s" in text
    assert "total 1.65 s 2.80 s 4.90 s" in text


def test_the_run_facts_are_shown(page: str) -> None:
    text = visible_text(page)
    assert "500 sampled (seed 0)" in text
    assert "13 min 32 s" in text
    assert "2026-11-21 16:00:00+00:00" in text
    assert "../shared/datasets/cmrc2018_dev.json" in text


def test_per_kind_rows_are_shown(page: str) -> None:
    text = visible_text(page)
    assert "By kind of question" in text
    assert "factoid 300 87.4%" in text


# -- untrusted text -----------------------------------------------------------------------------


def test_script_in_any_report_text_is_escaped() -> None:
    hostile = failure(
        question=f"问题{XSS}",
        answer=f"回答{XSS}",
        answers=["支树平"],
        evidence=f"证据{XSS}支树平",
        asked=f"問題{XSS}",
        kind=XSS,
        id=XSS,
        error=XSS,
    )
    hostile["citations"][0] |= {"file": XSS, "quote": XSS}
    hostile["gold"]["file"] = XSS
    report = make_report(failures=[hostile])
    report["run"]["inputs"] = [XSS]
    report["run"]["settings"] = {XSS: XSS}
    html = render_html(report)
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_gold_answer_that_looks_like_markup_is_marked_and_escaped() -> None:
    item = failure(
        "问题", "答案有<b>标签</b>。", ["<b>标签</b>"], "网页带着<b>标签</b>一起被抓取。"
    )
    html = render_html(make_report(failures=[item]))
    assert "<b>标签</b>" not in html
    assert "<mark>&lt;b&gt;标签&lt;/b&gt;</mark>" in html


# -- failures -----------------------------------------------------------------------------------


def test_the_gold_answer_is_marked_in_the_evidence_and_in_our_answer(page: str) -> None:
    assert "党组书记<mark>支树平</mark>出席会议" in page
    assert "局长是<mark>支树平</mark>。[1]" in page


def test_the_gold_answer_is_marked_across_scripts() -> None:
    item = failure(
        "質量工作座談會在哪裡？", "在北京。[1]", ["質量"], "召开全国质量技术监督工作座谈会。"
    )
    html = render_html(make_report(failures=[item]))
    assert "召开全国<mark>质量</mark>技术监督" in html


def test_a_failure_shows_reasons_citations_and_gold_side_by_side(page: str) -> None:
    text = visible_text(page)
    assert "passage miss" in text
    assert "citation wrong" in text
    assert "[1] cmrc2018_dev/0009_y.txt ¶2" in text
    assert "cmrc2018_dev/0001_x.txt ¶3" in text
    assert "gold passage not in the top 5" in text
    assert re.search(r'class="side ours".*?class="side gold"', page, flags=re.S)


def test_the_asked_text_is_shown_only_when_it_differs_from_the_question() -> None:
    same = render_html(make_report())
    converted = failure("範廷頌是誰？", "答案", ["范廷颂"], None, asked="范廷颂是谁？")
    differs = render_html(make_report(failures=[converted]))
    assert "asked as" not in visible_text(same)
    assert "asked as 范廷颂是谁？" in visible_text(differs)


def test_an_error_shows_its_message_instead_of_an_answer() -> None:
    item = failure("问题", "", ["答案"], None, reasons=["error"], error="ReadTimeout", citations=[])
    text = visible_text(render_html(make_report(failures=[item])))
    assert "ReadTimeout" in text
    assert "no citations" not in text


def test_the_reason_filter_is_optional_and_every_failure_is_visible_without_js() -> None:
    items = [
        failure("一", "a", ["x"], None, id="Q1", reasons=["answer_miss"]),
        failure("二", "b", ["y"], None, id="Q2", reasons=["should_abstain"]),
    ]
    html = render_html(make_report(failures=items))
    assert re.search(r'<div class="filter" id="filter" hidden>', html)
    cards = re.findall(r'<article class="failure"([^>]*)>', html)
    assert cards == [' data-reasons="answer_miss"', ' data-reasons="should_abstain"']


# -- partial runs and comparisons ---------------------------------------------------------------


def test_an_interrupted_run_says_the_report_is_partial() -> None:
    report = make_report()
    report["run"] |= {"interrupted": True, "questions": 500}
    assert "Partial report: interrupted after 421 of 500 questions" in visible_text(
        render_html(report)
    )


def test_failed_questions_are_announced_as_misses_in_both_runs() -> None:
    # Only a count in the facts told that the ratios covered fewer questions than asked.
    baseline = make_report()
    baseline["metrics"] = baseline["metrics"] | {"errors": 7}
    text = visible_text(render_html(make_report(), baseline=baseline))
    assert "1 of 421 questions failed: an error instead of an answer" in text
    assert "counts as a miss in every rate of success" in text
    assert "7 of 421 questions of the baseline run failed with an error" in text
    report = make_report()
    report["metrics"] = report["metrics"] | {"errors": 0}
    assert "questions failed" not in visible_text(render_html(report))


def test_a_complete_run_has_no_partial_banner(page: str) -> None:
    assert "Partial report" not in page


def test_a_baseline_is_compared_side_by_side() -> None:
    baseline = copy.deepcopy(make_report())
    baseline["run"]["pipeline"] = "langchain-baseline"
    baseline["metrics"] |= {"hit@1": 0.814, "duplicate_rate": 0.019}
    baseline["metrics"]["latency_ms"]["total"]["p50"] = 99.68
    baseline["hit_curve"] = {"1": 0.814, "2": 0.85, "3": 0.87, "4": 0.88, "5": 0.89}
    html = render_html(make_report(), baseline=baseline)
    rows = headline_rows(html)
    assert rows["metric"] == ["ours", "langchain-baseline", "difference"]
    assert rows["hit@1"] == ["87.4%", "81.4%", "+6.0 pp"]
    assert rows["duplicate rate (top-k)"] == ["0.4%", "1.9%", "-1.5 pp"]
    assert rows["latency p50"] == ["35.6 ms", "99.7 ms", "2.8× faster"]
    assert rows["hit@10"] == [DASH, DASH, ""]
    curve = html[html.index('aria-label="hit@k curve"') :]
    curve = curve[: curve.index("</svg>")]
    assert "ours" in curve
    assert "langchain-baseline" in curve


def test_mrr_under_10_is_shown_by_its_name_beside_a_baseline_mrr_at_10() -> None:
    # A --top-k 5 run's MRR@5 sat in the MRR@10 row and was compared with real MRR@10.
    report = make_report()
    report["metrics"] = {**report["metrics"], "mrr@10": None, "mrr@5": 0.9123}
    report["by_kind"]["factoid"] |= {"mrr@10": None, "mrr@5": 0.9}
    baseline = make_report()
    baseline["run"]["top_k"] = 10
    rows = headline_rows(render_html(report, baseline=baseline))
    assert rows["MRR@10"] == [DASH, "0.912", ""]
    assert rows["MRR@5"] == ["0.912", DASH, ""]
    assert "MRR@5" in render_html(report).split('id="kinds"')[-1]


def test_an_older_report_at_top_k_under_10_shows_its_mrr_under_its_true_name() -> None:
    # Written before MRR was named by its ranks: its "mrr@10" at --top-k 5 is MRR@5.
    older = make_report()  # top_k 5, with "mrr@10": 0.9123
    rows = headline_rows(render_html(older, baseline=make_report()))
    assert rows["MRR@10"] == [DASH, DASH, ""]
    assert rows["MRR@5"] == ["0.912", "0.912", "±0.000"]


def test_a_difference_is_better_in_the_direction_the_metric_prefers() -> None:
    by_key = {m.key: m for m in HEADLINE}
    assert compare(by_key["hit@1"], 0.9, 0.8) == ("+10.0 pp", "better")
    assert compare(by_key["duplicate_rate"], 0.02, 0.01) == ("+1.0 pp", "worse")
    assert compare(by_key["latency.p50"], 40.0, 20.0) == ("2.0× slower", "worse")
    assert compare(by_key["latency.p50"], 40.0, 50.0) == ("1.25× faster", "better")
    assert compare(by_key["answer_chars_median"], 70, 58) == ("+12", "")
    assert compare(by_key["quotes_valid"], 1.0, 1.0) == ("±0.0 pp", "")
    assert compare(by_key["hit@1"], None, 0.8) == ("", "")


# -- empty parts --------------------------------------------------------------------------------


def test_a_report_without_failures_kinds_curve_or_latencies_still_renders() -> None:
    report = make_report(failures=[], by_kind={}, hit_curve={}, latencies_ms=[])
    report["metrics"]["latency_ms"] = {}
    html = render_html(report)
    text = visible_text(html)
    assert "No failed questions." in text
    assert "By kind of question" not in text
    assert "No latencies recorded." in text
    assert "No retrieval data" in text
    assert "<svg" not in html
    assert headline_rows(html)["latency p50"] == [DASH]


def test_a_minimal_report_renders() -> None:
    html = render_html({"run": {}, "metrics": {}})
    assert "<html" in html
    assert "No failed questions." in visible_text(html)


def test_write_html_writes_utf8(tmp_path: Path) -> None:
    path = write_html(make_report(), tmp_path / "report.html")
    assert "<mark>支树平</mark>" in path.read_text(encoding="utf-8")


# -- highlighting -------------------------------------------------------------------------------


def test_highlight_splits_text_without_losing_any() -> None:
    text = "甲乙丙甲乙"
    segments = highlight(text, ["甲乙", "乙丙"])
    assert "".join(part for part, _ in segments) == text
    assert segments == [("甲乙丙甲乙", True)]


def test_highlight_marks_every_occurrence_and_ignores_empty_answers() -> None:
    assert highlight("a1b1", ["1", "", "  "]) == [
        ("a", False),
        ("1", True),
        ("b", False),
        ("1", True),
    ]
    assert highlight(None, ["x"]) == []
    assert highlight("abc", []) == [("abc", False)]


def test_a_report_written_before_scoring_versions_still_renders() -> None:
    # Reports of before the version keep loading: the page says what it cannot know.
    old = make_report()
    del old["run"]["scoring_version"]
    text = visible_text(render_html(old, baseline=make_report()))
    assert "scoring not recorded" in text
    assert "its rates below may leave them out" in text  # its 1 error
    assert "The baseline's rates may not be scored as this run's" in text
    assert "this run has no scoring version and 1 of its 421 questions failed" in text
    assert f"scoring version {SCORING_VERSION}" in text  # the baseline's, in the facts
