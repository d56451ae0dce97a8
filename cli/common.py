"""What every `rag` command shares: the consoles, the options, opening an index."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from rag.index.config import IndexMismatchError, NoIndexError
from rag.index.index import Index, open_index
from rag.pipeline import Pipeline, open_pipeline
from rag.settings import get_settings
from rag.store.lock import IndexBusyError

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


def open_pipeline_at(index: Path | None) -> Pipeline:
    settings = get_settings()
    from embeddings.factory import make_embedder

    try:
        return open_pipeline(
            settings,
            make_embedder(settings.embedder, settings.embedder_options()),
            index,
            on_wait=waiting,
        )
    except IndexBusyError as err:  # creating a new index waits for the write lock
        raise busy(err) from err
    except (IndexMismatchError, ValueError, ImportError) as err:
        errors.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err


def open_index_at(index: Path | None) -> Index:
    """The index as it was built, without loading the model: enough to list or remove."""
    settings = get_settings()
    try:
        return open_index(index or settings.index_dir, settings.lock_timeout, waiting)
    except IndexBusyError as err:
        raise busy(err) from err
    except (NoIndexError, ValueError) as err:
        errors.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err


def waiting(holder: str) -> None:
    errors.print(f"[yellow]waiting:[/yellow] the index is being written by {holder}")


def busy(err: IndexBusyError) -> typer.Exit:
    errors.print(f"[red]error:[/red] {err}")
    return typer.Exit(3)


def print_json(data: Any) -> None:
    # Plain print, not rich: the output must be exactly the JSON, unwrapped and uncoloured.
    print(json.dumps(data, ensure_ascii=False, indent=2))
