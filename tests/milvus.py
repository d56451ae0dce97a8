"""Helpers for tests against real Milvus Lite: whether it can run, and small stores."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

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


@contextmanager
def killed_between_swap_renames(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A Milvus whole-index swap (`finish_replace`, of `rag reindex` and `--tokenizer`) whose
    process "dies" between its two renames: the live collection gone, the new one not yet in
    its place, the config unchanged. The block must raise the SystemExit; after it, the
    store swaps normally again."""
    from rag.store.milvus import MilvusStore

    original = MilvusStore.finish_replace

    def die_after_first_rename(self: MilvusStore) -> None:
        client = self.client
        rename = client.rename_collection

        def once(old: str, new: str) -> None:
            rename(old, new)
            monkeypatch.setattr(client, "rename_collection", rename)
            raise SystemExit("killed")

        monkeypatch.setattr(client, "rename_collection", once)
        original(self)

    monkeypatch.setattr(MilvusStore, "finish_replace", die_after_first_rename)
    with pytest.raises(SystemExit):
        yield
    monkeypatch.setattr(MilvusStore, "finish_replace", original)
