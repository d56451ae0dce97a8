"""`rag collections list|create|rm`: the knowledge bases under one index directory."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from cli.common import (
    IndexOption,
    JsonOption,
    busy,
    console,
    create_collection,
    print_error,
    print_json,
    waiting,
)
from rag.collections import Collections, InvalidCollectionName, NoSuchCollection
from rag.settings import get_settings
from rag.store.lock import IndexBusyError
from rag.text.tokenize import TokenizerName

NameArgument = Annotated[str, typer.Argument(help="Collection name: [a-z0-9_-]{1,64}")]


def collections_list(index: IndexOption = None, as_json: JsonOption = False) -> None:
    """List collections with what each was built with."""
    collections = _collections(index)
    rows = []
    for name in collections.names():
        try:
            config = collections.config(name)
        except NoSuchCollection:
            continue  # removed by another process while listing
        rows.append(
            {
                "name": name,
                "location": str(collections.location(name)),
                "embedder": config.embedder if config else None,
                "tokenizer": config.tokenizer if config else None,
                "chunk_size": config.chunk_size if config else None,
            }
        )
    if as_json:
        print_json(rows)
        return
    table = Table("name", "embedder", "tokenizer", "chunk size", "location")
    for row in rows:
        table.add_row(
            *(str(row[k] or "-") for k in ("name", "embedder", "tokenizer")),
            str(row["chunk_size"] or "-"),
            Text(str(row["location"])),  # as it is: a cell string is rich markup
        )
    console.print(table)


def collections_create(
    name: NameArgument,
    index: IndexOption = None,
    embedder: Annotated[str | None, typer.Option(help="Embedder [default: $RAG_EMBEDDER]")] = None,
    tokenizer: Annotated[
        TokenizerName | None,
        typer.Option(help="Lexical tokenizer [default: $RAG_TOKENIZER, else bigram2]"),
    ] = None,
    chunk_size: Annotated[
        int | None,
        typer.Option("--chunk-size", min=50, max=4000, help="Characters per passage"),
    ] = None,
) -> None:
    """Create an empty collection, recording the settings it is built with."""
    overrides = {
        k: v
        for k, v in (("embedder", embedder), ("tokenizer", tokenizer), ("chunk_size", chunk_size))
        if v is not None
    }
    settings = get_settings().model_copy(update=overrides)
    location = create_collection(index, name, settings)
    console.print(f"created collection {name} at {location}", highlight=False, markup=False)


def collections_rm(
    name: NameArgument,
    index: IndexOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
) -> None:
    """Remove a collection: every document, passage and vector of it."""
    collections = _collections(index)
    try:
        collections.require(name)
        if not yes:
            typer.confirm(f"remove collection {name} and all its documents?", abort=True)
        collections.remove(name, on_wait=waiting)
    except IndexBusyError as err:
        raise busy(err) from err
    except (InvalidCollectionName, NoSuchCollection, ValueError) as err:
        print_error(err.args[0] if err.args else err)
        raise typer.Exit(2) from err
    console.print(f"removed collection {name}")


def _collections(index: IndexOption) -> Collections:
    settings = get_settings()
    if index is not None:
        settings = settings.model_copy(update={"index_dir": index})
    collections = Collections.of(settings)
    collections.sweep()  # finish a removal a crash interrupted
    return collections
