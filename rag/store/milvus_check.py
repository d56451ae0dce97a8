"""What `rag check` verifies inside a Milvus index: the invariants its readers rely on."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from rag.store.milvus_schema import encode_tokens
from rag.text.identity import content_hash
from rag.text.tokenize import LEGACY_TOKENIZER, get_tokenizer

if TYPE_CHECKING:
    from rag.store.milvus import MilvusStore


def integrity_problems(store: MilvusStore, dim: int) -> list[str]:
    """What is wrong inside the index; empty when it is sound.

    Every passage has a source in a current document version, a vector of the index's
    width and the lexical tokens of its folded text (what BM25 indexes); every source
    belongs to a current version and cites one of its paragraphs; every current version
    has its document row, as many paragraph rows as it says, and the passage count of its
    sources; every passage shows its first current source's text. An interrupted write's
    leftovers are not damage (`store.dirty`): `rag check` reports them apart.
    """
    files = store.query("files", "", ["file", "doc_id"])
    current = {int(r["doc_id"]): str(r["file"]) for r in files}
    rows = store.query("documents", "", ["id", "paragraphs", "passages"])
    documents = {int(r["id"]): int(r["paragraphs"]) for r in rows}
    counts = {int(r["id"]): int(r["passages"]) for r in rows}
    sources = store.query("sources", "", ["id", "passage_id", "doc_id", "paragraph", "text"])
    passages = store.query("passages", "", ["id", "text", "hash", "folded", "lexical", "dense"])
    tokenize = get_tokenizer(store.get_meta("tokenizer") or LEGACY_TOKENIZER)
    found: dict[str, list[str]] = {}

    def note(what: str, item: object) -> None:
        found.setdefault(what, []).append(str(item))

    passage_ids = {int(p["id"]) for p in passages}
    live = {int(s["passage_id"]) for s in sources if int(s["doc_id"]) in current}
    first: dict[int, tuple[int, str]] = {}  # passage -> its first current source: id, text
    for s in sources:
        pid, sid = int(s["passage_id"]), int(s["id"])
        if int(s["doc_id"]) in current and (pid not in first or sid < first[pid][0]):
            first[pid] = (sid, str(s["text"]))
    numbers: dict[int, set[int]] = {}
    held: dict[int, set[int]] = {}  # version -> the passages it holds
    for s in sources:
        held.setdefault(int(s["doc_id"]), set()).add(int(s["passage_id"]))
    for doc_id in current:
        if doc_id not in documents:
            note("current versions without a document row", doc_id)
            continue
        data = store._blob(doc_id, "paragraphs")
        paragraphs: list[list[object]] = json.loads(data) if data else []
        numbers[doc_id] = {int(str(p[0])) for p in paragraphs}
        if len(paragraphs) != documents[doc_id]:
            note("documents whose paragraph rows do not match their count", current[doc_id])
        # Stored, where SQLite counts when asked: `rag docs ls` and the API show it.
        if len(held.get(doc_id, ())) != counts[doc_id]:
            note("documents whose passage count disagrees with their sources", current[doc_id])
    for s in sources:
        pid, doc_id = int(s["passage_id"]), int(s["doc_id"])
        if pid not in passage_ids:
            note("sources of missing passages", pid)
        if doc_id not in current:
            note("sources of versions that are not current", doc_id)
        elif doc_id in numbers and int(s["paragraph"]) not in numbers[doc_id]:
            note("sources citing a missing paragraph", pid)
    for p in passages:
        pid = int(p["id"])
        if pid not in live:
            note("passages without a source", pid)
        vector = np.asarray(p["dense"], dtype=np.float32)
        if vector.shape != (dim,) or not np.isfinite(vector).all() or not vector.any():
            note(f"passages without a {dim}-dimension vector", pid)
        if p["lexical"] != encode_tokens(tokenize(str(p["folded"]))):
            note("passages whose lexical tokens disagree with their text", pid)
        if content_hash(str(p["text"])) != p["hash"]:
            note("passages whose content hash is not their text's", pid)
        if pid in first and p["text"] != first[pid][1]:
            # A removal killed after upserting the passage as its next source's text, before
            # its flip: the first source is still current, the whole row is the next one's.
            note("passages showing a text that is not their first source's", pid)
    return [
        f"{what}: {', '.join(items[:5])}{', ...' if len(items) > 5 else ''}"
        for what, items in found.items()
    ]
