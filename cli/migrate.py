"""`rag migrate`: copy a local index into Milvus without re-embedding."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from cli.common import busy, console, print_error
from rag.index.config import IndexMismatchError, NoIndexError
from rag.index.migrate import migrate as migrate_index
from rag.pipeline import write_lock
from rag.settings import get_settings
from rag.store.location import DEFAULT_COLLECTION, Location, parse_milvus_url
from rag.store.lock import IndexBusyError


def migrate(
    source: Annotated[Path, typer.Option("--from", help="The local index directory to copy")],
    target: Annotated[
        str,
        typer.Option(
            "--to",
            help="milvus://host:19530[/db] (a server), or a file path (Milvus Lite)",
        ),
    ],
    collection: Annotated[
        str, typer.Option("--collection", help="Collection name in the target")
    ] = DEFAULT_COLLECTION,
) -> None:
    """Copy a local index (documents, passages, vectors, sources) into Milvus.

    Nothing is re-embedded. Documents already copied with the same content are skipped, so
    an interrupted migration is finished by running it again. Then use the copy with
    RAG_BACKEND=milvus and RAG_MILVUS_URI set to the target.
    """
    settings = get_settings()
    token = settings.milvus_token.get_secret_value() if settings.milvus_token else None
    try:
        milvus = parse_milvus_url(target, token, settings.milvus_db, settings.milvus_prefix)
        home = milvus.lite_path.parent if milvus.lite else Path.cwd()  # no directory on a server
        location = Location("milvus", home, milvus, collection)
        # The lock every writer of the target takes (in Redis for a Milvus server).
        lock = write_lock(settings, location, None)
        report = migrate_index(source, location, settings.lock_timeout, lock=lock)
    except IndexBusyError as err:
        raise busy(err) from err
    except (NoIndexError, IndexMismatchError, ValueError, ImportError, ConnectionError) as err:
        print_error(err)
        raise typer.Exit(2) from err
    console.print(
        f"copied {report.documents} documents ({report.skipped} already there), "
        f"{report.passages} passages, {report.sources} sources to {escape(location.describe())}",
        highlight=False,
    )
