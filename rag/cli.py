"""The `rag` command line: ingest files, ask and search, list and remove documents."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from eval.cli import bench_command, bench_load_command, eval_command
from rag.check import CheckReport, check_index, repair_index
from rag.index import Index, IndexMismatchError, NoIndexError, open_index
from rag.loaders import iter_files
from rag.lock import IndexBusyError
from rag.payload import answer_payload, passage_payload
from rag.pipeline import Pipeline, open_pipeline
from rag.settings import get_settings

app = typer.Typer(help="Question answering over Chinese documents, with cited answers.")
docs_app = typer.Typer(help="List or remove ingested documents.")
app.add_typer(docs_app, name="docs")
# Batch evaluation lives in eval/ (its heavy imports wait until the command runs).
app.command("eval")(eval_command)
app.command("bench")(bench_command)
app.command("bench-load")(bench_load_command)

console = Console()
errors = Console(stderr=True)

IndexOption = Annotated[
    Path | None,
    typer.Option("--index", help="Index directory [default: $RAG_INDEX_DIR or .rag-index]"),
]
TopKOption = Annotated[
    int | None, typer.Option("--top-k", min=1, max=50, help="Passages to retrieve")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text")]


def _open(index: Path | None) -> Pipeline:
    settings = get_settings()
    from embeddings.factory import make_embedder

    try:
        return open_pipeline(
            settings,
            make_embedder(settings.embedder, settings.embedder_options()),
            index,
            on_wait=_waiting,
        )
    except (IndexMismatchError, ValueError, ImportError, IndexBusyError) as err:
        errors.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err


def _open_index(index: Path | None) -> Index:
    """The index as it was built, without loading the model: enough to list or remove."""
    settings = get_settings()
    try:
        return open_index(index or settings.index_dir, settings.lock_timeout, _waiting)
    except (NoIndexError, ValueError, IndexBusyError) as err:
        errors.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err


def _waiting(holder: str) -> None:
    errors.print(f"[yellow]waiting:[/yellow] the index is being written by {holder}")


def _busy(err: IndexBusyError) -> typer.Exit:
    errors.print(f"[red]error:[/red] {err}")
    return typer.Exit(3)


def _print_json(data: Any) -> None:
    # Plain print, not rich: the output must be exactly the JSON, unwrapped and uncoloured.
    print(json.dumps(data, ensure_ascii=False, indent=2))


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (searched recursively)")],
    index: IndexOption = None,
) -> None:
    """Ingest files into the index; unchanged files are skipped, changed ones replaced."""
    missing = [p for p in paths if not p.exists()]
    if missing:
        errors.print(f"[red]error:[/red] no such file or folder: {', '.join(map(str, missing))}")
        raise typer.Exit(2)
    pipeline = _open(index)
    total = sum(1 for _ in iter_files(paths))
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[file]}"),
        console=errors,
        transient=True,
    ) as progress:
        task = progress.add_task("ingesting", total=total, file="")
        seen = 0

        def on_file(name: str) -> None:
            nonlocal seen
            progress.update(task, completed=seen, file=name)
            seen += 1

        try:
            report = pipeline.ingest(paths, on_file=on_file)
        except IndexBusyError as err:
            raise _busy(err) from err
        progress.update(task, completed=total)
    table = Table(title=f"Ingested into {pipeline.index.directory}", show_header=False)
    rows = [
        ("files read", report.files),
        ("unchanged (skipped)", report.unchanged),
        ("paragraphs", report.paragraphs),
        ("passages (chunks)", report.chunks),
        ("new passages indexed", report.new_passages),
        ("vectors reused (edited files)", report.reused_vectors),
        (
            "duplicates merged",
            f"{report.duplicates_merged} "
            f"({report.exact_duplicates} exact, {report.near_duplicates} near)",
        ),
        ("files skipped", len(report.skipped)),
        ("time", f"{report.seconds:.1f} s (embedding {report.embed_seconds:.1f} s)"),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)
    for skipped in report.skipped:
        errors.print(f"[yellow]skipped[/yellow] {skipped.path}: {skipped.reason}")
    if report.ignored:
        reasons = Counter(item.reason for item in report.ignored)
        summary = "; ".join(f"{reason} ×{n}" for reason, n in reasons.most_common())
        errors.print(f"[dim]ignored {len(report.ignored)} entries: {summary}[/dim]")


@app.command()
def ask(
    question: Annotated[
        str, typer.Argument(help="The question, in simplified or traditional Chinese")
    ],
    index: IndexOption = None,
    top_k: TopKOption = None,
    as_json: JsonOption = False,
) -> None:
    """Answer a question with cited sentences from the documents."""
    answer = _open(index).ask(question, top_k)
    if as_json:
        _print_json(answer_payload(answer))
        return
    console.print(answer.answer, highlight=False)
    for c in answer.citations:
        console.print(
            f"  [{c.n}] {c.file} ¶{c.paragraph} "
            f"(line {c.line_start}, chars {c.char_start}-{c.char_end})",
            highlight=False,
        )
    for sentence in answer.unsupported:
        console.print(f"  [yellow]unsupported[/yellow] {sentence}", highlight=False)
    if answer.note:
        errors.print(f"[yellow]note[/yellow] {answer.note}", highlight=False)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="Search text")],
    index: IndexOption = None,
    top_k: TopKOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the passages retrieved for a query, with their fused 0-1 scores."""
    pipeline = _open(index)
    retrieval = pipeline.retriever.search(query, top_k or pipeline.settings.top_k)
    if as_json:
        _print_json({"passages": [passage_payload(p) for p in retrieval.passages]})
        return
    for i, p in enumerate(retrieval.passages, 1):
        where = "; ".join(f"{s.file} ¶{s.paragraph}" for s in p.passage.sources)
        console.print(f"[bold]{i}. {p.score:.3f}[/bold] {where}", highlight=False)
        console.print(f"   {p.passage.text[:160]}", highlight=False)


@docs_app.command("list")
def docs_list(index: IndexOption = None, as_json: JsonOption = False) -> None:
    """List ingested documents."""
    rows = _open_index(index).documents()
    if as_json:
        _print_json([row.__dict__ for row in rows])
        return
    table = Table("id", "file", "paragraphs", "passages", "encoding", "ingested at")
    for r in rows:
        table.add_row(
            str(r.id), r.file, str(r.paragraphs), str(r.passages), r.encoding, r.ingested_at
        )
    console.print(table)


@docs_app.command("rm")
def docs_rm(
    files: Annotated[list[str], typer.Argument(help="Files as `rag docs list` names them")],
    index: IndexOption = None,
) -> None:
    """Remove documents: their passages, vectors and lexical postings."""
    opened = _open_index(index)
    try:
        missing = [f for f in files if not opened.remove(f)]
    except IndexBusyError as err:
        raise _busy(err) from err
    for f in files:
        if f not in missing:
            console.print(f"removed {f}")
    if missing:
        errors.print(f"[red]error:[/red] not in the index: {', '.join(missing)}")
        raise typer.Exit(1)


@app.command()
def check(
    index: IndexOption = None,
    repair: Annotated[
        bool, typer.Option("--repair", help="Rebuild the caches from the store first")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Verify that every stored passage has its vector and lexical entry, and vice versa.

    Exits 0 when the index is sound, 1 when something is wrong, 2 when there is no index.
    """
    settings = get_settings()
    directory = index or settings.index_dir
    try:
        if repair:
            report = repair_index(directory, settings.lock_timeout)
        else:
            report = check_index(directory)
    except (NoIndexError, ValueError) as err:
        errors.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err
    except IndexBusyError as err:
        raise _busy(err) from err
    if as_json:
        _print_json({**report.__dict__, "stale": report.stale, "ok": report.ok})
    else:
        _print_check(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_check(report: CheckReport) -> None:
    console.print(
        f"{report.directory}: generation {report.generation}, {report.documents} documents, "
        f"{report.passages} passages; caches: {report.vectors} vectors, "
        f"{report.lexical} lexical entries",
        highlight=False,
    )
    if report.stale:
        errors.print(
            f"[yellow]stale caches:[/yellow] published generation {report.published}, store "
            f"{report.generation}: a write is running or was interrupted before publishing; "
            "the next write or `rag check --repair` rebuilds them from the store"
        )
    for problem in report.problems:
        errors.print(f"[red]problem:[/red] {problem}")
    console.print("ok" if report.ok else f"{len(report.problems)} problems found")


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address [default: $RAG_HOST or 127.0.0.1]")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: $RAG_PORT or 8000]")] = None,
    index: IndexOption = None,
) -> None:
    """Serve the HTTP API, the demo page and the chat widget (see docs/api.md)."""
    import uvicorn

    from service.app import create_app

    settings = get_settings()
    if index is not None:
        settings = settings.model_copy(update={"index_dir": index})
    host = host or settings.host
    if settings.open_access and host not in {"127.0.0.1", "localhost", "::1"}:
        errors.print(
            f"[yellow]warning:[/yellow] no API keys configured (RAG_ADMIN_KEYS, RAG_QUERY_KEYS, "
            f"RAG_PUBLISHABLE_KEYS): serving on 127.0.0.1, not {host}"
        )
        host = "127.0.0.1"
    port = settings.port if port is None else port
    errors.print(f"serving {settings.index_dir} at http://{host}:{port}/ (API docs at /docs)")
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="info",
        # A connection backstop behind admission control (RAG_MAX_CONNECTIONS; 0: none).
        limit_concurrency=settings.max_connections or None,
    )
