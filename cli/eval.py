"""`rag eval`, `rag bench` and `rag bench-load` (registered on the `rag` app); heavy imports
wait for the call."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Annotated, Any, get_args

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cli.common import print_error
from eval.checks import EvalError, writable_output
from eval.evaluate import EvalOptions, PipelineName, ScriptName, evaluate
from eval.runner import Outcome
from eval.scoring import mrr_key

errors = Console(stderr=True)

HEADLINE = (
    "hit@1",
    "hit@5",
    "mrr@10",
    "answer_hit",
    "short_em",
    "short_f1",
    "citation_accuracy",
    "quotes_valid",
    "duplicate_rate",
    "abstention_precision",
    "abstention_recall",
    "answer_chars_median",
)


def _log(message: str) -> None:
    # The evaluator's lines name paths, which rich would read as markup.
    errors.print(message, markup=False, highlight=False)


def eval_command(
    inputs: Annotated[
        list[Path],
        typer.Argument(help="SQuAD .json files (CMRC 2018, DRCD) or JSONL question sets"),
    ],
    pipeline: Annotated[
        str, typer.Option(help="ours | langchain-baseline (the stock LangChain recipe)")
    ] = "ours",
    index: Annotated[
        Path | None, typer.Option(help="Index directory to use, or to build and keep")
    ] = None,
    docs: Annotated[
        Path | None, typer.Option(help="Documents of a JSONL set, indexed before asking")
    ] = None,
    url: Annotated[str | None, typer.Option(help="Ask a running service instead")] = None,
    key: Annotated[str | None, typer.Option(help="API key for --url")] = None,
    predictions: Annotated[
        Path | None, typer.Option(help="Write one JSON line per question: id, question, answer")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the JSON report here")] = None,
    html: Annotated[Path | None, typer.Option(help="Write the HTML report here")] = None,
    compare: Annotated[
        Path | None,
        typer.Option(help="JSON report of another run (say the baseline's) to show beside"),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="First N questions")] = None,
    sample: Annotated[int | None, typer.Option(min=1, help="N questions at random")] = None,
    seed: Annotated[int, typer.Option(help="Seed of --sample")] = 0,
    script: Annotated[
        str, typer.Option(help="original | hans | hant: convert questions to one script")
    ] = "original",
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=50)] = 10,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Questions in parallel")] = 1,
    collection: Annotated[
        str | None,
        typer.Option(
            "--collection",
            "-c",
            help="Collection to evaluate (under --index or RAG_INDEX_DIR; built from --docs "
            "if missing), or to ask with --url",
        ),
    ] = None,
) -> None:
    """Evaluate retrieval, answers and citations on a question set; JSON summary on stdout."""
    if pipeline not in get_args(PipelineName):
        raise typer.BadParameter(f"{pipeline!r}; valid: ours, langchain-baseline")
    if script not in get_args(ScriptName):
        raise typer.BadParameter(f"{script!r}; valid: original, hans, hant")
    missing = [p for p in inputs if not p.exists()]
    if missing:
        print_error(f"no such file: {', '.join(map(str, missing))}")
        raise typer.Exit(2)
    options = EvalOptions(
        inputs=inputs,
        pipeline=pipeline,  # type: ignore[arg-type]  # checked above
        index=index,
        docs=docs,
        url=url,
        key=key,
        predictions=predictions,
        out=out,
        html=html,
        compare=compare,
        limit=limit,
        sample=sample,
        seed=seed,
        script=script,  # type: ignore[arg-type]  # checked above
        top_k=top_k,
        workers=workers,
        collection=collection,
    )
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=errors,
    ) as bar:

        def progress(total: int) -> Any:
            task = bar.add_task("asking", total=total, rate="")

            def tick(_: Outcome) -> None:
                bar.advance(task)
                speed = bar.tasks[task].speed
                bar.update(task, rate=f"{speed:.1f} q/s" if speed else "")

            return tick

        # `kill` (SIGTERM) stops a run like Ctrl-C: with a valid, partial report. Set back
        # afterwards: the caller's handler (a test runner's, an embedding program's) stays.
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            report = evaluate(options, log=_log, progress=progress)
        except EvalError as err:
            print_error(err)
            raise typer.Exit(2) from err
        except KeyboardInterrupt as err:
            # Before the first answer (while indexing or loading): nothing to report. It
            # ended in click's bare "Aborted!".
            print_error("interrupted before any question was answered: no report written")
            raise typer.Exit(130) from err
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    if report["run"]["interrupted"]:
        errors.print(
            f"[yellow]interrupted:[/yellow] partial report of {report['metrics']['questions']} "
            f"of {report['run']['questions']} questions"
        )
    summary = {"run": report["run"], "metrics": report["metrics"], "by_kind": report["by_kind"]}
    if "compared" in report:
        summary["compared"] = report["compared"]
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    shown = [mrr_key(top_k) if k == "mrr@10" else k for k in HEADLINE]
    line = "  ".join(f"{k} {report['metrics'][k]}" for k in shown)
    errors.print(line, highlight=False)
    failed, asked = report["metrics"]["errors"], report["metrics"]["questions"]
    if failed:
        # Not left to the JSON's `errors`: every ratio above counts these as misses.
        errors.print(
            f"[yellow]{failed} of {asked} questions failed[/yellow] (an error instead of an "
            "answer): each counts as a miss in every ratio above",
            highlight=False,
        )
    compared = report.get("compared") or {}
    if compared.get("note"):
        # Beside the figures: the warning logged before the run has scrolled away by now.
        label = "note:" if compared["comparable"] else "[yellow]warning:[/yellow]"
        errors.print(f"{label} --compare: {escape(compared['note'])}", highlight=False)
    if report["run"]["interrupted"]:
        # 130, as a shell reports Ctrl-C: the report is valid but partial, and a script
        # that publishes it on success must not take it for a whole run.
        raise typer.Exit(130)
    metrics = report["metrics"]
    if metrics["questions"] and metrics["errors"] == metrics["questions"]:
        # A service that is down or refuses the key fails every question: that is a failed
        # run, not a report of zeros to publish.
        first = next((f["error"] for f in report["failures"] if f["error"]), None)
        print_error(f"not one question was answered; the first error: {first}")
        raise typer.Exit(1)


def bench_command(
    datasets: Annotated[
        Path, typer.Argument(help="Folder with cmrc2018_dev.json and drcd_dev.json")
    ],
    contexts: Annotated[int, typer.Option(min=1, help="Contexts taken from each dataset")] = 60,
    questions: Annotated[int, typer.Option(min=1, help="Questions asked (sampled)")] = 300,
    clients: Annotated[int, typer.Option(min=1, max=64, help="Concurrent clients")] = 8,
    seconds: Annotated[float, typer.Option(min=1, help="Time bound of each load phase")] = 60,
    saved_baseline: Annotated[
        Path | None,
        typer.Option(help="A saved full-corpus baseline (<rag eval --index>/baseline)"),
    ] = None,
) -> None:
    """Ours against the LangChain baseline in one run: ingest, latency, load, memory."""
    from bench.compare import check_inputs, run

    try:
        check_inputs(datasets, saved_baseline)
    except ValueError as err:
        print_error(err)
        raise typer.Exit(2) from err
    result = run(datasets, contexts, questions, clients, seconds, saved_baseline)
    print(json.dumps(result, ensure_ascii=False, indent=2))


def bench_load_command(
    clients: Annotated[int, typer.Option(min=1, max=1000, help="Target concurrency")] = 8,
    seconds: Annotated[float, typer.Option(min=0.5, help="Length of the target phase")] = 20,
    overload_clients: Annotated[
        int, typer.Option(min=0, max=1000, help="Clients of the overload phase (0: none)")
    ] = 64,
    overload_seconds: Annotated[
        float | None, typer.Option(min=0.5, help="Length of the overload phase [--seconds]")
    ] = None,
    recovery_clients: Annotated[int, typer.Option(min=1, max=1000)] = 2,
    recovery_seconds: Annotated[float, typer.Option(min=0.5)] = 5,
    max_requests: Annotated[int, typer.Option(min=1, help="Bound of each phase")] = 20_000,
    mix: Annotated[
        str, typer.Option(help="Weights of the routes: ask, search, stream, chat")
    ] = "ask=4,search=3,stream=2,chat=1",
    questions: Annotated[
        Path | None,
        typer.Option(help="JSONL with a `question` per line [default: demo questions]"),
    ] = None,
    timeout: Annotated[float, typer.Option(min=0.1, help="Client timeout, seconds")] = 30,
    url: Annotated[
        str | None, typer.Option(help="Load a running service instead of starting one")
    ] = None,
    key: Annotated[str | None, typer.Option(help="API key (admin, for /metrics)")] = None,
    index: Annotated[
        Path | None, typer.Option(help="Index to serve [default: the demo corpus, ingested]")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the JSON report here")] = None,
) -> None:
    """Load test: mixed traffic at a target concurrency, then overload and recovery."""
    from bench.http import QUESTIONS
    from bench.load import LoadOptions, parse_mix, print_report, run

    try:
        weights = parse_mix(mix)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--mix") from err
    if url is not None and index is not None:  # the running service serves its own index
        print_error("--index: not used with --url, which loads the running service")
        raise typer.Exit(2)
    if index is not None and not index.is_dir():
        print_error(f"--index {index}: no such folder; build an index with `rag ingest`")
        raise typer.Exit(2)
    asked = _load_questions(questions) if questions else []
    try:  # before the load test, not after it: the report would be lost
        writable_output(out)
    except EvalError as err:
        print_error(f"--out: {err}")
        raise typer.Exit(2) from err
    options = LoadOptions(
        clients=clients,
        seconds=seconds,
        overload_clients=overload_clients,
        overload_seconds=overload_seconds,
        recovery_clients=recovery_clients,
        recovery_seconds=recovery_seconds,
        max_requests=max_requests,
        mix=weights,
        timeout_s=timeout,
        key=key,
        questions=asked or QUESTIONS,
    )
    report = run(options, url=url, index=index, log=errors.print)
    if out is not None:
        out.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    print_report(report, Console())
    if not report["passed"]:
        raise typer.Exit(1)


def _load_questions(path: Path) -> list[str]:
    """The questions of `--questions`; a file that holds none is refused, not replaced by
    the demo questions."""
    from eval.datasets import load_jsonl

    try:
        asked = [q.question for q in load_jsonl(path)]
    except (ValueError, UnicodeDecodeError) as err:
        print_error(f"--questions: {err}")
        raise typer.Exit(2) from err
    except OSError as err:
        print_error(f"--questions: cannot read {path}: {err.strerror}")
        raise typer.Exit(2) from err
    if not asked:
        print_error(f"--questions: no questions in {path}")
        raise typer.Exit(2)
    return asked
