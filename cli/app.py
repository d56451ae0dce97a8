"""The `rag` command: wires the core (`rag`), the service and the evaluator together.

Only this package imports all three; `rag/` imports neither `service` nor `eval`. Each
command lives in its own module; this one registers them.
"""

from __future__ import annotations

import sqlite3
import sys

import typer
from pydantic import ValidationError

from cli.collections import collections_create, collections_list, collections_rm
from cli.common import errors, print_error
from cli.documents import check, docs_list, docs_rm, ingest, ray_argv
from cli.eval import bench_command, bench_load_command, eval_command
from cli.migrate import migrate
from cli.query import ask, search
from cli.reindex import reindex
from cli.serve import serve
from rag.store.base import StoreUnavailableError

app = typer.Typer(help="Question answering over Chinese documents, with cited answers.")
docs_app = typer.Typer(help="List or remove ingested documents.")
app.add_typer(docs_app, name="docs")
collections_app = typer.Typer(help="List, create or remove collections (knowledge bases).")
app.add_typer(collections_app, name="collections")
app.command()(ingest)
app.command()(ask)
app.command()(search)
docs_app.command("list")(docs_list)
docs_app.command("rm")(docs_rm)
app.command()(check)
collections_app.command("list")(collections_list)
collections_app.command("create")(collections_create)
collections_app.command("rm")(collections_rm)
app.command()(serve)
app.command()(migrate)
app.command()(reindex)
# Batch evaluation lives in eval/ (its heavy imports wait until the command runs).
app.command("eval")(eval_command)
app.command("bench")(bench_command)
app.command("bench-load")(bench_load_command)


def main() -> None:
    """The `rag` command: a bad setting or a failing store is a sentence, never a traceback.

    Writers take turns through the index's write lock, so SQLite refusing a connection now
    means the file itself is in trouble (disk full or read-only, a damaged file).
    """
    try:
        app(args=ray_argv(sys.argv[1:]))
    except ValidationError as err:  # a bad RAG_* variable: name it, and what it accepts
        if not err.title.endswith("Settings"):
            raise
        for problem in err.errors():
            field = ".".join(str(part) for part in problem["loc"])
            errors.print(
                f"[red]error:[/red] setting RAG_{field.upper()} = {problem.get('input')!r}: "
                f"{problem['msg']}"
            )
        raise SystemExit(2) from None
    except (sqlite3.Error, StoreUnavailableError) as err:  # SQLite's file, or a Milvus server
        print_error(f"the index store failed: {err}")
        raise SystemExit(1) from None


if __name__ == "__main__":  # `python -m cli.app`, as the `rag` command
    main()
