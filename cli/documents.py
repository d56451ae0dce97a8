"""`rag ingest`, `rag docs list|rm` and `rag check`: writing and verifying an index."""

from __future__ import annotations

import functools
import time
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from cli.common import (
    CollectionOption,
    IndexOption,
    JsonOption,
    busy,
    collection_settings,
    console,
    embed_on_demand,
    errors,
    open_index_at,
    open_pipeline_at,
    print_error,
    print_json,
    waiting,
)
from rag.collections import DEFAULT
from rag.distributed.ray_ingest import connect, disconnect, ingest_on_ray
from rag.index.check import CheckReport, check_index, repair_index
from rag.index.config import NoIndexError
from rag.loaders.walk import iter_files
from rag.pipeline import IngestReport, Pipeline, write_lock
from rag.store.location import location_from_settings
from rag.store.lock import IndexBusyError

RayOption = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="[ADDRESS]",
        help="Ingest on a Ray cluster: parse in tasks, embed in actors, write here. ADDRESS: "
        "host:port of its head, 'auto' (the cluster `ray start` runs on this machine), or "
        "none (Ray's default: $RAY_ADDRESS, else a new cluster of this machine). Needs the "
        "'ray' extra; the files must be readable at the same paths on every node.",
    ),
]
# `--ray` standing alone (typer options cannot have an optional value: `main` fills it in).
RAY_DEFAULT = "default"


def ray_argv(argv: list[str]) -> list[str]:
    """`argv` with Ray's default address after a `--ray` that has none: one followed by
    nothing, another option, or a path that exists (a file or folder to ingest)."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        out.append(arg)
        after = argv[i + 1] if i + 1 < len(argv) else None
        if arg == "--ray" and (after is None or after.startswith("-") or Path(after).exists()):
            out.append(RAY_DEFAULT)
    return out


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (searched recursively)")],
    index: IndexOption = None,
    ray: RayOption = None,
    collection: CollectionOption = DEFAULT,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune",
            help="Then remove the indexed documents that are not among these files "
            "(deleted or renamed since): the index holds exactly them",
        ),
    ] = False,
    reread: Annotated[
        bool,
        typer.Option(
            "--reread",
            help="Read unchanged files again too, after an upgrade that reads their formats "
            "better; passages whose text is unchanged keep their vectors",
        ),
    ] = False,
) -> None:
    """Ingest files into the index; unchanged files are skipped, changed ones replaced."""
    missing = [p for p in paths if not p.exists()]
    if missing:
        names = escape(", ".join(map(str, missing)))
        errors.print(f"[red]error:[/red] no such file or folder: {names}")
        raise typer.Exit(2)
    if ray is not None and Path(ray).exists():
        print_error(f"--ray takes a cluster address, not a path ({ray})")
        raise typer.Exit(2)
    pipeline = open_pipeline_at(index, collection, create=True)
    total = sum(1 for _ in iter_files(paths))
    if ray is not None:
        address = None if ray == RAY_DEFAULT else ray
        _ingest_on_ray(pipeline, paths, address, total, prune, reread)
        return
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[file]}", markup=False),  # a file name, as it is
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
            report = pipeline.ingest(paths, on_file=on_file, prune=prune, reread=reread)
        except IndexBusyError as err:
            raise busy(err) from err
        except ValueError as err:  # pruning after a run that found no file
            errors.print(f"[red]error:[/red] {escape(str(err))}")
            raise typer.Exit(2) from err
        progress.update(task, completed=total)
    _print_report(report, pipeline.directory)
    _exit_if_nothing_read(report)


def _ingest_on_ray(
    pipeline: Pipeline,
    paths: list[Path],
    address: str | None,
    total: int,
    prune: bool,
    reread: bool,
) -> None:
    """`rag ingest --ray`: the same report, with what the cluster did."""
    from embeddings.factory import make_embedder

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rates]}"),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
    ) as progress:
        task = progress.add_task("ingesting on Ray", total=total, rates="")
        started, files, passages = time.perf_counter(), 0, 0

        def on_file(_: str, chunks: int) -> None:
            nonlocal files, passages
            files, passages = files + 1, passages + chunks
            seconds = max(time.perf_counter() - started, 1e-9)
            rates = f"{files / seconds:.2f} files/s, {passages / seconds:.1f} passages/s"
            progress.update(task, completed=files, rates=rates)

        try:
            connect(address)
            result = ingest_on_ray(
                pipeline,
                paths,
                functools.partial(
                    make_embedder,
                    pipeline.settings.embedder,
                    pipeline.settings.embedder_options(),
                ),
                on_file=on_file,
                prune=prune,
                reread=reread,
            )
        except IndexBusyError as err:
            raise busy(err) from err
        except (ImportError, ValueError, ConnectionError) as err:
            print_error(err)
            raise typer.Exit(2) from err
        finally:
            disconnect()
    plan = result.plan
    _print_report(
        result.report,
        pipeline.directory,
        [
            (
                "Ray cluster",
                f"{result.nodes} nodes; {plan.actors} embedding actors "
                f"({plan.cpus:g} CPU, {plan.gpus:g} GPU each)",
            ),
            (
                "embedded on the cluster",
                f"{result.embedded} passages on {len(result.actor_nodes)} nodes "
                f"({result.actor_seconds:.1f} actor-seconds)",
            ),
        ],
    )
    _exit_if_nothing_read(result.report)


def _exit_if_nothing_read(report: IngestReport) -> None:
    """Exit 1 when not one of the files could be read: a script must not take such a run for
    a success. When some were read it is one (0), the others listed as skipped."""
    if report.skipped and report.files == 0:
        raise typer.Exit(1)


def _print_report(
    report: IngestReport, directory: Path, extra: list[tuple[str, str]] | None = None
) -> None:
    table = Table(title=f"Ingested into {escape(str(directory))}", show_header=False)
    rows: list[tuple[str, object]] = [
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
        *([("documents removed", len(report.removed))] if report.removed else []),
        ("time", f"{report.seconds:.1f} s (embedding {report.embed_seconds:.1f} s)"),
        *(extra or []),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)
    for skipped in report.skipped:
        errors.print(f"[yellow]skipped[/yellow] {escape(skipped.path)}: {escape(skipped.reason)}")
    for removed in report.removed:
        errors.print(f"[yellow]removed[/yellow] {escape(removed.path)}: {escape(removed.reason)}")
    for noted in report.notes:
        errors.print(f"[yellow]note[/yellow] {escape(noted.path)}: {escape(noted.reason)}")
    if report.ignored:
        reasons = Counter(item.reason for item in report.ignored)
        summary = "; ".join(f"{reason} ×{n}" for reason, n in reasons.most_common())
        errors.print(f"[dim]ignored {len(report.ignored)} entries: {escape(summary)}[/dim]")


def docs_list(
    index: IndexOption = None, collection: CollectionOption = DEFAULT, as_json: JsonOption = False
) -> None:
    """List ingested documents."""
    rows = open_index_at(index, collection).documents()
    if as_json:
        print_json([row.__dict__ for row in rows])
        return
    table = Table("id", "file", "paragraphs", "passages", "encoding", "ingested at")
    for r in rows:
        table.add_row(
            str(r.id), Text(r.file), str(r.paragraphs), str(r.passages), r.encoding, r.ingested_at
        )
    console.print(table)


def docs_rm(
    files: Annotated[list[str], typer.Argument(help="Files as `rag docs list` names them")],
    index: IndexOption = None,
    collection: CollectionOption = DEFAULT,
) -> None:
    """Remove documents: their passages, vectors and lexical postings."""
    opened = open_index_at(index, collection)
    embed = embed_on_demand(opened, index, collection)
    try:
        missing = [f for f in files if not opened.remove(f, embed)]
    except IndexBusyError as err:
        raise busy(err) from err
    except (ValueError, ImportError) as err:  # the model a merged passage needed
        print_error(err)
        raise typer.Exit(2) from err
    for f in files:
        if f not in missing:
            console.print(f"removed {escape(f)}")
    if missing:
        errors.print(f"[red]error:[/red] not in the index: {escape(', '.join(missing))}")
        raise typer.Exit(1)


def check(
    index: IndexOption = None,
    collection: CollectionOption = DEFAULT,
    repair: Annotated[
        bool, typer.Option("--repair", help="Rebuild the caches from the store first")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Verify that every stored passage has its vector and lexical entry, and vice versa.

    Exits 0 when the index is sound, 1 when something is wrong, 2 when there is no index.
    """
    settings = collection_settings(index, collection)
    try:
        location = location_from_settings(settings, settings.index_dir, collection)
        repaired = None
        if repair:
            lock = write_lock(settings, location, waiting)
            repaired = repair_index(location, settings.lock_timeout, lock)
        report = repaired or check_index(location)
    except (NoIndexError, ValueError, ImportError, ConnectionError) as err:
        print_error(err)
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
        f"{escape(report.directory)}: generation {report.generation}, "
        f"{report.documents} documents, "
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
        errors.print(f"[red]problem:[/red] {escape(problem)}")
    console.print("ok" if report.ok else f"{len(report.problems)} problems found")
