"""`rag ingest`, `rag docs list|rm` and `rag check`: writing and verifying an index."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.common import (
    IndexOption,
    JsonOption,
    busy,
    console,
    errors,
    open_index_at,
    open_pipeline_at,
    print_json,
)
from rag.index.check import CheckReport, check_index, repair_index
from rag.index.config import NoIndexError
from rag.loaders.walk import iter_files
from rag.settings import get_settings
from rag.store.lock import IndexBusyError


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (searched recursively)")],
    index: IndexOption = None,
) -> None:
    """Ingest files into the index; unchanged files are skipped, changed ones replaced."""
    missing = [p for p in paths if not p.exists()]
    if missing:
        errors.print(f"[red]error:[/red] no such file or folder: {', '.join(map(str, missing))}")
        raise typer.Exit(2)
    pipeline = open_pipeline_at(index)
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
            raise busy(err) from err
        progress.update(task, completed=total)
    table = Table(title=f"Ingested into {pipeline.directory}", show_header=False)
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
    for noted in report.notes:
        errors.print(f"[yellow]note[/yellow] {noted.path}: {noted.reason}")
    if report.ignored:
        reasons = Counter(item.reason for item in report.ignored)
        summary = "; ".join(f"{reason} ×{n}" for reason, n in reasons.most_common())
        errors.print(f"[dim]ignored {len(report.ignored)} entries: {summary}[/dim]")


def docs_list(index: IndexOption = None, as_json: JsonOption = False) -> None:
    """List ingested documents."""
    rows = open_index_at(index).documents()
    if as_json:
        print_json([row.__dict__ for row in rows])
        return
    table = Table("id", "file", "paragraphs", "passages", "encoding", "ingested at")
    for r in rows:
        table.add_row(
            str(r.id), r.file, str(r.paragraphs), str(r.passages), r.encoding, r.ingested_at
        )
    console.print(table)


def docs_rm(
    files: Annotated[list[str], typer.Argument(help="Files as `rag docs list` names them")],
    index: IndexOption = None,
) -> None:
    """Remove documents: their passages, vectors and lexical postings."""
    opened = open_index_at(index)
    try:
        missing = [f for f in files if not opened.remove(f)]
    except IndexBusyError as err:
        raise busy(err) from err
    for f in files:
        if f not in missing:
            console.print(f"removed {f}")
    if missing:
        errors.print(f"[red]error:[/red] not in the index: {', '.join(missing)}")
        raise typer.Exit(1)


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
        raise busy(err) from err
    if as_json:
        print_json({**report.__dict__, "stale": report.stale, "ok": report.ok})
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
