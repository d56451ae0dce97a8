"""`rag reindex`: re-embed an index's stored passages with the configured embedder, or
re-tokenize them with another tokenizer (`--tokenizer`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.common import (
    CollectionOption,
    IndexOption,
    JsonOption,
    busy,
    collection_settings,
    console,
    errors,
    print_error,
    print_json,
    waiting,
)
from rag.collections import DEFAULT
from rag.index.config import IndexMismatchError, NoIndexError
from rag.pipeline import reindex as reindex_index
from rag.pipeline import retokenize
from rag.settings import get_settings
from rag.store.lock import IndexBusyError
from rag.text.tokenize import TokenizerName


def reindex(
    index: IndexOption = None,
    collection: CollectionOption = DEFAULT,
    tokenizer: Annotated[
        TokenizerName | None,
        typer.Option(
            help="Re-tokenize instead: make this the index's lexical tokenizer (e.g. bigram2 "
            "for an index built with bigram); vectors are kept, no model is loaded"
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Re-embed every stored passage with the configured embedder (RAG_EMBEDDER,
    RAG_E5_BACKEND) and record it in the index; no source file is read again.

    Readers keep answering with the old vectors until the new ones replace them all at
    once; an interrupted run leaves the old index whole, and running it again finishes.
    With --tokenizer, the passages' stored text is tokenized again instead and the new
    lexical index replaces the old at once (on Milvus: every passage's tokens, rewritten
    into a copy of its collection that is swapped in; a killed run is finished by the
    next). Processes that had the index open keep their last snapshot (Milvus: none, they
    split questions with the old tokenizer), and cannot write to it, until restarted.
    Exits 2 when there is no index, 3 when another writer keeps the index busy.
    """
    if tokenizer is not None:
        _retokenize(index, collection, tokenizer, as_json)
        return
    from embeddings.factory import make_embedder

    # The collection's location and build settings, but the embedder configured now: a
    # collection otherwise opens with the embedder it was built with.
    configured = get_settings()
    settings = collection_settings(index, collection).model_copy(
        update={
            "embedder": configured.embedder,
            "e5_backend": configured.e5_backend,
            "device": configured.device,
        }
    )
    try:
        embedder = make_embedder(settings.embedder, settings.embedder_options())
        with Progress(
            TextColumn("re-embedding"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=errors,
            transient=True,
            disable=as_json,
        ) as progress:
            task = progress.add_task("passages", total=None)

            def on_progress(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            report = reindex_index(settings, embedder, on_wait=waiting, on_progress=on_progress)
    except IndexBusyError as err:
        raise busy(err) from err
    except (NoIndexError, IndexMismatchError, ValueError, ImportError, ConnectionError) as err:
        print_error(err)
        raise typer.Exit(2) from err
    if as_json:
        print_json(report.__dict__)
        return
    console.print(
        f"re-embedded {report.passages} passages: {report.old_embedder} -> "
        f"{report.new_embedder} in {report.seconds:.1f} s",
        highlight=False,
    )


def _retokenize(index: IndexOption, collection: str, tokenizer: str, as_json: bool) -> None:
    settings = collection_settings(index, collection)
    try:
        report = retokenize(settings, tokenizer, on_wait=waiting)
    except IndexBusyError as err:
        raise busy(err) from err
    except (NoIndexError, IndexMismatchError, ValueError, ConnectionError) as err:
        print_error(err)
        raise typer.Exit(2) from err
    if as_json:
        print_json(report.__dict__)
        return
    if report.old_tokenizer == report.new_tokenizer:
        console.print(f"the index is already tokenized with {tokenizer}", highlight=False)
        return
    console.print(
        f"re-tokenized {report.passages} passages: {report.old_tokenizer} -> "
        f"{report.new_tokenizer} in {report.seconds:.1f} s",
        highlight=False,
    )
