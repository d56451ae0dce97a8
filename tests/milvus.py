"""Helpers for tests against real Milvus Lite: whether it can run, and small stores."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.store.location import Location, MilvusTarget
from tests.crash import DocumentStates

if TYPE_CHECKING:
    from rag.store.milvus import MilvusStore


def _missing() -> str | None:
    try:
        import milvus_lite  # noqa: F401
        import pymilvus  # noqa: F401
    except ImportError as err:
        return f"milvus-lite cannot be imported ({err}): install the 'milvus' extra"
    return None


# Why Milvus tests are skipped, or None when Milvus Lite runs here.
MILVUS_MISSING = _missing()


def lite_location(directory: Path, collection: str = "default") -> Location:
    """An index in a Milvus Lite file inside `directory` (the backend's default place)."""
    return Location("milvus", directory, MilvusTarget(str(directory / "milvus.db")), collection)


def store_passages(
    directory: Path,
    dim: int,
    ids: Sequence[int],
    vectors: np.ndarray,
    tokens: Sequence[list[str]],
) -> MilvusStore:
    """A Milvus store holding bare passages `ids` (no documents): for index contract tests."""
    from rag.store.factory import BACKENDS
    from rag.store.milvus import MilvusStore
    from rag.store.milvus_schema import encode_tokens

    where = lite_location(directory)
    BACKENDS["milvus"].create_store(where, {"dim": str(dim), "tokenizer": "bigram"})
    store = MilvusStore(where)
    rows = [
        {
            "id": int(pid),
            "hash": str(pid),
            "text": "",
            "folded": "",
            "signature": "",
            "lexical": encode_tokens(words),
            "dense": np.asarray(vectors[i], dtype=np.float32).tolist(),
        }
        for i, (pid, words) in enumerate(zip(ids, tokens, strict=True))
    ]
    if rows:
        store.client.insert(store.names["passages"], rows)
    store.client.flush(store.names["passages"])
    return store


def milvus_document_states(location: Location) -> DocumentStates:
    """Every current document with exactly what it contributes (`tests.crash.DocumentStates`),
    read straight from the collections, as readers follow them."""
    from rag.store.milvus import MilvusStore

    store = MilvusStore(location, readonly=True)
    try:
        states: DocumentStates = {}
        for row in store.documents():
            sources = store.query(
                "sources",
                f"doc_id == {row.id}",
                ["passage_id", "paragraph", "char_start", "char_end"],
            )
            hashes = {
                int(p["id"]): str(p["hash"])
                for p in store.query_ids(
                    "passages", "id", [int(s["passage_id"]) for s in sources], ["id", "hash"]
                )
            }
            held = sorted(
                (
                    int(s["paragraph"]),
                    int(s["char_start"]),
                    int(s["char_end"]),
                    hashes.get(int(s["passage_id"]), "<missing passage>"),
                )
                for s in sources
            )
            states[row.file] = (row.content_hash, tuple(held))
        return states
    finally:
        store.close()
