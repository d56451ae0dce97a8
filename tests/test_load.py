"""The load generator against real `rag serve` processes, short runs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from bench.load import LoadOptions, Sample, parse_mix, run, summarise, verdict
from bench.service import RAG

pytestmark = pytest.mark.reliability


def test_a_short_run_at_low_concurrency_reports_every_route_without_errors(
    live_service: str,
) -> None:
    report = run(LoadOptions(clients=2, seconds=2), url=live_service, log=lambda _: None)

    [target] = report["phases"]
    assert target["name"] == "target" and target["passed"]
    routes = target["routes"]
    assert set(routes) == {"ask", "search", "stream", "chat", "total"}
    total = routes["total"]
    assert total["requests"] > 0 and total["ok"] == total["requests"]
    assert total["errors"] == {} and total["shed"] == 0
    assert total["ok_per_s"] > 0
    assert set(total["latency_ms"]) >= {"p50", "p95", "p99"}
    per_route = sum(routes[name]["requests"] for name in ("ask", "search", "stream", "chat"))
    assert per_route == total["requests"]
    if routes["stream"]["ok"] > 1:
        first, whole = routes["stream"]["first_event_ms"], routes["stream"]["latency_ms"]
        assert 0 < first["p50"] <= whole["p50"]
    if routes["search"]["ok"] > 1:  # the pipeline's own time, as the service reports it
        assert 0 < routes["search"]["service_ms"]["p50"] <= routes["search"]["latency_ms"]["p50"]
    assert report["limits"]["max_inflight"] >= 1  # read from the server's /metrics
    assert report["memory"]["rss_mb_start"] > 0 and report["memory"]["growth_mb"] is not None
    assert report["recovered"] is None  # no overload phase was asked for
    assert report["passed"]


def test_overload_is_shed_with_503_and_the_service_recovers(
    demo_index: Path, tmp_path: Path
) -> None:
    out = tmp_path / "load.json"
    limits = {"RAG_MAX_INFLIGHT": "1", "RAG_MAX_QUEUE": "1"}
    result = subprocess.run(
        [
            str(RAG),
            "bench-load",
            "--index",
            str(demo_index),
            *("--clients", "1", "--seconds", "1"),
            *("--overload-clients", "8", "--overload-seconds", "2"),
            *("--recovery-clients", "1", "--recovery-seconds", "1"),
            *("--out", str(out)),
        ],
        env={**os.environ, **limits},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    target, overload, recovery = report["phases"]
    assert target["passed"]  # one client never waits for the one slot
    assert overload["name"] == "overload"
    shed = overload["routes"]["total"]["shed"]
    assert shed > 0  # eight clients, room for two
    assert overload["routes"]["total"]["errors"] == {}  # no timeouts, no other failures
    assert overload["server"]["shed"] == shed  # every 503 the clients saw was a shed
    assert report["limits"] == {"max_inflight": 1, "max_queue": 1}
    assert recovery["routes"]["total"]["ok"] == recovery["routes"]["total"]["requests"] > 0
    assert report["recovered"] is True
    assert report["memory"]["peak_rss_mb"] > 0
    assert "recovered: yes" in result.stdout


def test_the_verdicts_say_what_each_phase_must_show() -> None:
    clean = {"requests": 10, "ok": 10, "shed": 0, "errors": {}}
    shedding = {"requests": 10, "ok": 6, "shed": 4, "errors": {}}
    timing_out = {"requests": 10, "ok": 6, "shed": 3, "errors": {"timeout": 1}}

    assert verdict("target", clean)[0]
    assert not verdict("target", shedding)[0]  # the target load must not be shed
    assert verdict("overload", shedding)[0]
    assert not verdict("overload", timing_out)[0]
    assert not verdict("recovery", shedding)[0]
    assert not verdict("recovery", {"requests": 0, "ok": 0, "shed": 0, "errors": {}})[0]


def test_a_summary_counts_sheds_and_errors_apart_from_answers() -> None:
    samples = [
        Sample("ask", "ok", 10.0),
        Sample("ask", "ok", 30.0),
        Sample("ask", "shed", 1.0),
        Sample("ask", "timeout", 30000.0),
    ]
    summary = summarise(samples, wall_s=2.0)
    assert summary["requests"] == 4 and summary["ok"] == 2
    assert summary["req_per_s"] == 2.0 and summary["ok_per_s"] == 1.0
    assert summary["shed"] == 1 and summary["errors"] == {"timeout": 1}
    assert summary["latency_ms"]["max"] == 30.0  # answered requests only


def test_a_mix_names_known_routes_with_weights() -> None:
    assert parse_mix("ask=2, stream=1") == {"ask": 2.0, "stream": 1.0}
    for bad in ("ask", "upload=1", "ask=0", ""):
        with pytest.raises(ValueError):
            parse_mix(bad)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('{"question": "甲？"}\nnot json\n', "qs.jsonl:2: not JSON"),
        ('{"q": "甲？"}\n', "qs.jsonl:1: not a question"),
        ("", "no questions in"),
        (None, "cannot read"),
    ],
)
def test_bench_load_refuses_a_bad_questions_file_before_loading(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str | None, said: str
) -> None:
    # A bad line ended `rag bench-load` in a traceback; an empty file silently loaded the
    # service with the demo questions instead.
    from typer.testing import CliRunner

    import bench.load
    from cli.app import app

    monkeypatch.setattr(bench.load, "run", lambda *_, **__: pytest.fail("the load ran"))
    questions = tmp_path / "qs.jsonl"
    if text is not None:
        questions.write_text(text, encoding="utf-8")

    result = CliRunner().invoke(app, ["bench-load", "--questions", str(questions)])

    assert result.exit_code == 2, result.output
    assert said in " ".join(result.output.split())


def test_bench_load_writes_its_report_into_a_folder_made_for_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # `--out runs/load.json` without runs/ ended the finished load test in a traceback,
    # its report lost; a folder as --out was found only then too.
    from typer.testing import CliRunner

    import bench.load
    from cli.app import app

    monkeypatch.setattr(bench.load, "run", lambda *_, **__: {"passed": True})
    monkeypatch.setattr(bench.load, "print_report", lambda *_: None)
    out = tmp_path / "new runs" / "load.json"

    result = CliRunner().invoke(app, ["bench-load", "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text(encoding="utf-8")) == {"passed": True}
    monkeypatch.setattr(bench.load, "run", lambda *_, **__: pytest.fail("the load ran"))
    refused = CliRunner().invoke(app, ["bench-load", "--out", str(tmp_path)])
    assert refused.exit_code == 2
    assert "isadirectory" in "".join(refused.output.split())


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--url", "http://127.0.0.1:9", "--index", "."], "--index: not used with --url"),
        (["--index", "no-such-index"], "no-such-index: no such folder"),
    ],
)
def test_bench_load_refuses_an_index_it_would_not_serve(
    monkeypatch: pytest.MonkeyPatch, args: list[str], said: str
) -> None:
    # With --url the index was ignored (the report measured another one); a missing index
    # started a service over nothing.
    from typer.testing import CliRunner

    import bench.load
    from cli.app import app

    monkeypatch.setattr(bench.load, "run", lambda *_, **__: pytest.fail("the load ran"))

    result = CliRunner().invoke(app, ["bench-load", *args])

    assert result.exit_code == 2, result.output
    assert said in " ".join(result.output.split())
