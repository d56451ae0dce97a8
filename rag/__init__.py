"""rag-zh: cited answers over Chinese documents, as a library.

    import rag

    p = rag.open("./index")          # created if missing; RAG_* settings apply
    p.ingest(["docs/"])
    answer = p.ask("质检总局局长是谁？")
    print(answer.answer, answer.citations[0].file)
    for hit in p.search("质量提升").passages:
        print(hit.score, hit.passage.text[:40])

`rag.open` returns a `rag.pipeline.Pipeline`, the one door to an index. Importing `rag`
loads nothing heavy: the model and the index load when `open` is called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from embeddings.base import Embedder
    from rag.pipeline import Pipeline
    from rag.settings import Settings

__all__ = ["open"]


def open(  # `rag.open(path)`, as `sqlite3.connect` or `zarr.open`
    directory: str | Path | None = None,
    *,
    settings: Settings | None = None,
    embedder: Embedder | None = None,
    **overrides: Any,
) -> Pipeline:
    """Open (or create) the index at `directory` as a pipeline.

    Args:
        directory: The index directory; default `settings.index_dir` (`RAG_INDEX_DIR`).
        settings: The settings to use; default the `RAG_*` environment (and `.env`).
        embedder: The embedding model; default the one `settings.embedder` names.
        **overrides: Settings fields to change, e.g. `top_k=3, answerer="llm"`.

    Returns:
        The pipeline: `ask`, `ask_stream`, `search`, `ingest`, `remove`, `documents`,
        `paragraph`, `close` (also a context manager).

    Raises:
        IndexMismatchError: The index was built with other settings (say another model).
        ValueError: An unknown embedder, answerer or backend name.
    """
    from embeddings.factory import make_embedder
    from rag.pipeline import open_pipeline
    from rag.settings import Settings

    base = settings.model_dump() if settings is not None else {}
    chosen = Settings(**{**base, **overrides})
    if embedder is None:
        embedder = make_embedder(chosen.embedder, chosen.embedder_options())
    return open_pipeline(chosen, embedder, Path(directory) if directory is not None else None)
