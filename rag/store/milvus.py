"""The Milvus passage store: documents, sources and passages in Milvus, without transactions.

Milvus has no multi-row transactions, so a write is staged in memory and then applied in an
order that keeps every reader's view whole (`_Batch.apply`):

1. `meta.next_id` moves past the ids the batch uses and `meta.dirty` is set;
2. new document versions, their text, passages (with vectors) and sources are inserted:
   nobody sees them yet, because readers only follow sources of *current* versions;
3. the flip: each file's row in `files` is pointed at its new version (or deleted), one
   upsert per file, so a reader sees a file's old version or its new one, never a mix;
4. the old versions, their sources and the passages left with no source are deleted;
5. `generation` is bumped and `dirty` cleared.

`rag reindex` changes every vector at once, which no per-row order can keep whole: it
fills a second passages collection aside (`replace_vectors`), then swaps it in by renaming,
after a marker in `meta` that makes the swap go forward whoever finishes it.

A writer killed anywhere leaves `dirty` set; the next writer first collects what the dead
one left (`collect_garbage`), and `rag check` reports it as an interrupted write. Writers
are serialised by the index's `IndexLock`, so only one batch is ever applied at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from rag.store.base import DocumentRow, MetaGeneration, ParagraphRow, StoredPassage
from rag.store.location import Location
from rag.store.milvus_check import integrity_problems
from rag.store.milvus_schema import (
    BLOB_CHARS,
    IN_CHUNK,
    PAD,
    acquire_client,
    chunks,
    create_passages,
    encode_tokens,
    literal,
    load_all,
    names,
    release_client,
)
from rag.store.placement import placement_json, read_placement
from rag.text.tokenize import LEGACY_TOKENIZER, Tokenizer, get_tokenizer
from rag.types import Document, Passage, Source

SOURCE_FIELDS = [
    "id",
    "passage_id",
    "doc_id",
    "paragraph",
    "line_start",
    "line_end",
    "char_start",
    "char_end",
    "text",
    "origin",
    "page",
    "sheet",
    "ocr_confidence",
]
# Rows `query_ids` reads in one plain query (more: through the iterator), two chunks' worth.
ROWS_AT_ONCE = 2 * IN_CHUNK
DOCUMENT_FIELDS = [
    "id",
    "file",
    "path",
    "content_hash",
    "encoding",
    "format",
    "paragraphs",
    "passages",
    "ingested_at",
]


@dataclass
class _Batch:
    """A write staged in memory until its transaction ends."""

    next_id: int
    documents: dict[int, dict[str, Any]] = field(default_factory=dict)
    blobs: list[dict[str, Any]] = field(default_factory=list)
    passages: dict[int, dict[str, Any]] = field(default_factory=dict)
    by_hash: dict[str, int] = field(default_factory=dict)
    sources: list[dict[str, Any]] = field(default_factory=list)
    vectors: dict[int, list[float]] = field(default_factory=dict)  # of committed passages
    flips: dict[str, int | None] = field(default_factory=dict)  # file -> version, None: gone
    old_documents: set[int] = field(default_factory=set)
    old_passages: set[int] = field(default_factory=set)
    retext: set[int] = field(default_factory=set)  # merged passages losing a source
    # Committed passages taking their next source's identity (`retext_passage`): whole rows.
    retexted: dict[int, dict[str, Any]] = field(default_factory=dict)
    moved: list[dict[str, Any]] = field(default_factory=list)  # committed sources, whole
    # Committed versions' passage counts that merges lower (`merge_passage`): id -> count.
    counts: dict[int, int] = field(default_factory=dict)
    held: set[tuple[int, int]] = field(default_factory=set)  # (version, passage) staged
    meta: dict[str, str] = field(default_factory=dict)

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    @property
    def empty(self) -> bool:
        return not (
            self.documents
            or self.passages
            or self.flips
            or self.vectors
            or self.retexted
            or self.moved
            or self.counts
            or self.meta
        )


class MilvusStore(MetaGeneration):
    """One index's collections on one Milvus; each process shares one client per Milvus.

    Args:
        location: A `milvus` location.
        readonly: Refuse writes (a reader's store).
    """

    def __init__(self, location: Location, readonly: bool = False) -> None:
        assert location.milvus is not None
        self.location = location
        self.readonly = readonly
        self._client = acquire_client(location.milvus)
        self._closed = False
        self._n = names(location)
        load_all(self._client, location)
        self._batch: _Batch | None = None
        self._paragraphs: dict[int, list[ParagraphRow]] = {}  # versions never change
        self._tokenize: Tokenizer | None = None

        self._dim = 0

    @property
    def client(self) -> Any:
        return self._client

    @property
    def names(self) -> dict[str, str]:
        return self._n

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            assert self.location.milvus is not None
            release_client(self.location.milvus)

    # -- low-level reads ------------------------------------------------------------------

    def query(self, part: str, expr: str, fields: list[str]) -> list[dict[str, Any]]:
        """Every row of `part` matching `expr` (iterated: no result window limit)."""
        return [row for rows in self.query_batches(part, expr, fields) for row in rows]

    def query_batches(
        self, part: str, expr: str, fields: list[str], size: int = 1000
    ) -> Iterator[list[dict[str, Any]]]:
        """The rows of `part` matching `expr`, `size` at a time."""
        iterator = self._client.query_iterator(
            self._n[part],
            batch_size=size,
            filter=expr,
            output_fields=fields,
        )
        try:
            while batch := iterator.next():
                yield [dict(r) for r in batch]
        finally:
            iterator.close()

    def query_ids(
        self, part: str, column: str, ids: Iterable[int], fields: list[str]
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for chunk in chunks(sorted(set(ids))):
            expr = f"{column} in {chunk}"
            # One plain query answers most chunks; the iterator costs Lite several calls
            # (15 ms of CPU each time), so it only takes over when a chunk has more rows.
            found = self._client.query(
                self._n[part], filter=expr, output_fields=fields, limit=ROWS_AT_ONCE
            )
            if len(found) < ROWS_AT_ONCE:
                rows += [dict(r) for r in found]
            else:
                rows += self.query(part, expr, fields)
        return rows

    def delete_ids(self, part: str, column: str, ids: Iterable[int]) -> None:
        for chunk in chunks(sorted(set(ids))):
            self._client.delete(self._n[part], filter=f"{column} in {chunk}")

    # -- transactions and metadata --------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Stage writes; apply them in a reader-safe order on success, drop them on error."""
        if self.readonly:
            raise PermissionError("a read-only store")
        if self._batch is not None:
            yield  # nested: the outer transaction applies
            return
        if self.get_meta("dirty") == "1":
            self.collect_garbage()
        self._batch = _Batch(int(self.get_meta("next_id") or 1))
        try:
            yield
            batch, self._batch = self._batch, None
            if not batch.empty:
                self._apply(batch)
        finally:
            self._batch = None

    def snapshot(self) -> AbstractContextManager[None]:
        """Reads are not grouped: each sees the committed rows; the flip order keeps them whole."""
        return nullcontext()

    def get_meta(self, key: str) -> str | None:
        if self._batch is not None and key in self._batch.meta:
            return self._batch.meta[key]
        rows = self._client.query(
            self._n["meta"], filter=f"key == {literal(key)}", output_fields=["value"]
        )
        return str(rows[0]["value"]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        if self._batch is not None:
            self._batch.meta[key] = value
        else:
            self._set_meta({key: value})

    def _set_meta(self, values: dict[str, str]) -> None:
        rows = [{"key": k, "value": v, "pad": PAD} for k, v in values.items()]
        self._client.upsert(self._n["meta"], rows)

    @property
    def dirty(self) -> bool:
        """An interrupted write left rows that the next writer collects."""
        return self.get_meta("dirty") == "1"

    # -- applying a batch -----------------------------------------------------------------

    def _apply(self, batch: _Batch) -> None:
        c, n = self._client, self._n
        # BM25's mean passage length: the token total moves with the passages.
        tokens = self.token_total()
        self._set_meta({"next_id": str(batch.next_id), "dirty": "1"})
        renewed = [*batch.passages.values(), *batch.retexted.values()]
        missing = [int(row["id"]) for row in renewed if row.get("dense") is None]
        if missing:
            raise ValueError(f"passages without a vector: {missing[:5]}")
        for part, rows in (
            ("documents", list(batch.documents.values())),
            ("blobs", batch.blobs),
            ("passages", list(batch.passages.values())),
            ("sources", batch.sources),
        ):
            for i in range(0, len(rows), 500):
                c.insert(n[part], rows[i : i + 500])
        if batch.vectors:
            rows = [{"id": pid, "dense": v} for pid, v in batch.vectors.items()]
            c.upsert(n["passages"], rows, partial_update=True)
        for row in self.query_ids("passages", "id", batch.retexted, ["lexical"]):
            tokens -= len(str(row["lexical"]).split())
        if batch.retexted:
            # Whole rows, so Milvus's BM25 function fills `sparse` from the new tokens; each
            # row is whole in itself (text, hash, signature, tokens and vector of one text),
            # so a writer killed before the flip leaves a passage that is merely shown with
            # its second source's text while the first is still current.
            c.upsert(n["passages"], list(batch.retexted.values()))
        for i in range(0, len(batch.moved), 500):  # to a passage of the same identity
            c.upsert(n["sources"], batch.moved[i : i + 500])
        if batch.counts:
            rows = [{"id": doc, "passages": count} for doc, count in batch.counts.items()]
            c.upsert(n["documents"], rows, partial_update=True)
        for file, version in batch.flips.items():  # the flip, file by file
            if version is None:
                c.delete(n["files"], filter=f"file == {literal(file)}")
            else:
                c.upsert(n["files"], [{"file": file, "doc_id": version, "pad": PAD}])
        tokens += sum(len(str(row["lexical"]).split()) for row in renewed)
        for row in self.query_ids("passages", "id", batch.old_passages, ["lexical"]):
            tokens -= len(str(row["lexical"]).split())
        self._drop_versions(batch.old_documents, batch.retext)
        self.delete_ids("passages", "id", batch.old_passages)
        batch.meta["tokens"] = str(tokens)

        self._set_meta({**batch.meta, "dirty": "0"})

    # -- replacing every vector (`rag reindex`) -------------------------------------------

    def replace_vectors(self, ids: Sequence[int], vectors: np.ndarray, meta: dict[str, str]) -> int:
        """Fill `<passages>_next` with the new vectors, then swap it in (`finish_replace`).

        Until the marker is written the live collection is untouched: a process killed
        before it leaves the old index whole (the next run drops the half-filled copy).
        From the marker on, whoever opens the index next finishes the swap.
        """
        c = self._client
        matrix = np.asarray(vectors, dtype=np.float32)
        staging = self._new_staging(int(matrix.shape[1]))
        fields = ["id", "hash", "text", "folded", "signature", "lexical"]
        rows = self.query("passages", "", fields)
        position = {int(pid): i for i, pid in enumerate(ids)}
        if len(position) != len(ids) or {int(r["id"]) for r in rows} != set(position):
            c.drop_collection(staging)
            raise ValueError("replace_vectors takes every stored passage")
        for start in range(0, len(rows), 500):
            batch = rows[start : start + 500]
            c.insert(
                staging,
                [{**r, "dense": matrix[position[int(r["id"])]].tolist()} for r in batch],
            )
        return self._swap_in(staging, meta)

    def replace_tokens(self, name: str) -> int:
        """Fill `<passages>_next` with every passage's tokens by tokenizer `name`, then swap
        it in and record `name` with the new token total (`finish_replace`).

        Crash-safe as `replace_vectors`: a process killed before the marker leaves the old
        tokens and name whole; from the marker on, whoever opens the index next finishes.
        Read and written a batch at a time: vectors and all, the passages need not fit in
        memory at once.
        """
        tokenize = get_tokenizer(name)
        staging = self._new_staging(self.dim)
        fields = ["id", "hash", "text", "folded", "signature", "dense"]
        tokens = 0
        for rows in self.query_batches("passages", "", fields, size=500):
            for row in rows:
                row["lexical"] = encode_tokens(tokenize(str(row["folded"])))
                tokens += len(row["lexical"].split())
                if row["dense"] is not None:
                    row["dense"] = np.asarray(row["dense"], dtype=np.float32).tolist()
            self._client.insert(staging, rows)
        return self._swap_in(staging, {"tokenizer": name, "tokens": str(tokens)})

    def _new_staging(self, dim: int) -> str:
        """An empty `<passages>_next` (a copy a killed run left is dropped first)."""
        c, staging = self._client, f"{self._n['passages']}_next"
        if c.has_collection(staging):
            c.drop_collection(staging)
        create_passages(c, staging, dim)
        return staging

    def _swap_in(self, staging: str, meta: dict[str, str]) -> int:
        """Seal the filled copy, mark the swap with the `meta` it records (the point of no
        return), and finish it (`finish_replace`); the new generation."""
        self._client.flush(staging)  # sealed: BM25 statistics as the live collection's
        target = {**meta, "generation": str(self.generation() + 1)}
        self._set_meta({"replacing": json.dumps(target)})
        self.finish_replace()
        return int(target["generation"])

    def replace_pending(self) -> bool:
        return bool(self.get_meta("replacing"))

    def finish_replace(self) -> None:
        """Rename the filled copy into place (each step skipped once done), then the config."""
        c, live = self._client, self._n["passages"]
        staging, old = f"{live}_next", f"{live}_old"
        pending = self.get_meta("replacing")
        if not pending:
            if c.has_collection(staging):  # a copy killed before its marker: never used
                c.drop_collection(staging)
            return
        if c.has_collection(staging):
            if c.has_collection(live):
                if c.has_collection(old):
                    c.drop_collection(old)
                c.rename_collection(live, old)
            c.rename_collection(staging, live)
        c.load_collection(live)  # a renamed collection comes back released
        self._set_meta({**json.loads(pending), "replacing": ""})
        self._dim = 0
        self._tokenize = None  # a `replace_tokens` recorded another tokenizer
        if c.has_collection(old):
            c.drop_collection(old)

    def _drop_versions(self, doc_ids: set[int], retext: set[int]) -> None:
        """Delete superseded versions; merged passages show their first remaining source."""
        self.delete_ids("sources", "doc_id", doc_ids)
        self.delete_ids("blobs", "doc_id", doc_ids)
        self.delete_ids("documents", "id", doc_ids)
        first: dict[int, tuple[int, str]] = {}
        for row in self.query_ids("sources", "passage_id", retext, ["id", "passage_id", "text"]):
            pid = int(row["passage_id"])
            if pid not in first or int(row["id"]) < first[pid][0]:
                first[pid] = (int(row["id"]), str(row["text"]))
        if first:
            rows = [{"id": pid, "text": text} for pid, (_, text) in first.items()]
            self._client.upsert(self._n["passages"], rows, partial_update=True)

    def collect_garbage(self) -> int:
        """Remove what an interrupted write left; the caller holds the write lock.

        Returns the number of rows removed.
        """
        current = {int(r["doc_id"]) for r in self.query("files", "", ["doc_id"])}
        stale = {int(r["id"]) for r in self.query("documents", "", ["id"])} - current
        affected = {
            int(r["passage_id"]) for r in self.query_ids("sources", "doc_id", stale, ["passage_id"])
        }
        self._drop_versions(stale, set())
        sources = self.query("sources", "", ["passage_id", "doc_id"])
        live = {int(r["passage_id"]) for r in sources}
        dead = {int(r["id"]) for r in self.query("passages", "", ["id"])} - live
        self.delete_ids("passages", "id", dead)
        self._drop_versions(set(), affected & live)
        self._recount(current, sources)
        tokens = self._count_tokens()
        self._set_meta(
            {"dirty": "0", "generation": str(self.generation() + 1), "tokens": str(tokens)}
        )
        return len(stale) + len(dead)

    def _recount(self, current: set[int], sources: list[dict[str, Any]]) -> None:
        """Store each current version's passage count as its sources give it: a write killed
        between moving sources (`merge_passage`) and lowering counts leaves one too high."""
        held: dict[int, set[int]] = {}
        for r in sources:
            held.setdefault(int(r["doc_id"]), set()).add(int(r["passage_id"]))
        rows = self.query_ids("documents", "id", current, ["id", "passages"])
        wrong = [
            {"id": int(r["id"]), "passages": len(held.get(int(r["id"]), ()))}
            for r in rows
            if len(held.get(int(r["id"]), ())) != int(r["passages"])
        ]
        if wrong:
            self._client.upsert(self._n["documents"], wrong, partial_update=True)

    def token_total(self) -> int:
        """Lexical tokens over all passages (BM25's mean length is this over their count)."""
        stored = self.get_meta("tokens")
        return int(stored) if stored is not None else self._count_tokens()

    def _count_tokens(self) -> int:
        rows = self.query("passages", "", ["lexical"])
        return sum(len(str(r["lexical"]).split()) for r in rows)

    # -- documents ------------------------------------------------------------------------

    def _current(self, files: Iterable[str] | None = None) -> dict[str, int]:
        """file -> current version, committed (for `files`, or all)."""
        if files is None:
            rows = self.query("files", "", ["file", "doc_id"])
        else:
            rows = []
            for file in files:
                rows += self._client.query(
                    self._n["files"],
                    filter=f"file == {literal(file)}",
                    output_fields=["file", "doc_id"],
                )
        return {str(r["file"]): int(r["doc_id"]) for r in rows}

    def _document_rows(self, ids: Iterable[int]) -> list[DocumentRow]:
        ids = list(ids)
        rows = [self._batch.documents[i] for i in ids if self._batch and i in self._batch.documents]
        rows += self.query_ids("documents", "id", ids, DOCUMENT_FIELDS) if ids else []
        return [DocumentRow(**{k: r[k] for k in DOCUMENT_FIELDS}) for r in rows]

    def documents(self) -> list[DocumentRow]:
        return sorted(self._document_rows(self._current().values()), key=lambda d: d.file)

    def find_document(self, file: str) -> DocumentRow | None:
        if self._batch is not None and file in self._batch.flips:
            version = self._batch.flips[file]
        else:
            version = self._current([file]).get(file)
        if version is None:
            return None
        found = self._document_rows([version])
        return found[0] if found else None

    def insert_document(self, file: str, document: Document) -> int:
        paragraphs = [
            ParagraphRow(
                p.number, p.text, p.line_start, p.line_end, *p.source_span(), p.page, p.sheet
            )
            for p in document.paragraphs
        ]
        fields = {
            "path": document.source.path,
            "content_hash": document.content_hash,
            "encoding": document.source.encoding,
            "format": document.source.format,
            "ingested_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        return self.import_document(file, fields, document.source.text, paragraphs)

    def import_document(
        self,
        file: str,
        fields: dict[str, str],
        text: str | None,
        paragraphs: Sequence[ParagraphRow],
    ) -> int:
        """Stage a new current version of `file` from its parts (`rag migrate` copies them).

        `fields`: path, content_hash, encoding, format, ingested_at.
        """
        batch = self._staging()
        doc_id = batch.new_id()
        batch.documents[doc_id] = {
            "id": doc_id,
            "file": file,
            **{k: fields[k] for k in ("path", "content_hash", "encoding", "format")},
            "ingested_at": fields["ingested_at"],
            "paragraphs": len(paragraphs),
            "passages": 0,  # counted as sources are added
            "pad": PAD,
        }
        rows = [
            [p.number, p.text, p.line_start, p.line_end, p.char_start, p.char_end, p.page, p.sheet]
            for p in paragraphs
        ]
        blobs = {"paragraphs": json.dumps(rows, ensure_ascii=False)}
        if text is not None:
            blobs["text"] = text
        for kind, data in blobs.items():
            for part, start in enumerate(range(0, max(len(data), 1), BLOB_CHARS)):
                batch.blobs.append(
                    {
                        "key": f"{doc_id}/{kind}/{part}",
                        "doc_id": doc_id,
                        "kind": kind,
                        "part": part,
                        "data": data[start : start + BLOB_CHARS],
                        "pad": PAD,
                    }
                )
        batch.flips[file] = doc_id
        return doc_id

    def delete_document(self, doc_id: int) -> list[int]:
        """Retire a version (gone for readers at the flip); return passages left sourceless."""
        batch = self._staging()
        batch.old_documents.add(doc_id)
        row = self._document_rows([doc_id])
        if row and batch.flips.get(row[0].file, doc_id) == doc_id:
            batch.flips[row[0].file] = None
        affected = {s["passage_id"] for s in batch.sources if s["doc_id"] == doc_id}
        affected |= {
            int(r["passage_id"])
            for r in self.query_ids("sources", "doc_id", [doc_id], ["passage_id"])
        }
        kept = {s["passage_id"] for s in batch.sources if s["doc_id"] not in batch.old_documents}
        kept |= {
            int(r["passage_id"])
            for r in self.query_ids("sources", "passage_id", affected, ["passage_id", "doc_id"])
            if int(r["doc_id"]) not in batch.old_documents
        }
        orphans = sorted(affected - kept)
        self.delete_passages(orphans)
        batch.retext |= affected & kept
        return orphans

    def document_passages(self, doc_id: int) -> set[int]:
        batch = self._staging()
        held = {int(s["passage_id"]) for s in batch.sources if s["doc_id"] == doc_id}
        rows = self.query_ids("sources", "doc_id", [doc_id], ["passage_id"])
        return held | {int(r["passage_id"]) for r in rows}

    def shown_passages(self, ids: Iterable[int]) -> dict[int, tuple[str, str, str]]:
        """The text each passage will show once the batch is applied: that of its first
        source (lowest id: staged sources come after committed ones) in a version kept."""
        batch = self._staging()
        ids = set(ids)
        sources = [s for s in batch.sources if s["passage_id"] in ids]
        sources += self.query_ids(
            "sources", "passage_id", ids, ["id", "passage_id", "doc_id", "text"]
        )
        first: dict[int, tuple[int, str]] = {}
        for r in sources:
            pid = int(r["passage_id"])
            if int(r["doc_id"]) in batch.old_documents:
                continue
            if pid not in first or int(r["id"]) < first[pid][0]:
                first[pid] = (int(r["id"]), str(r["text"]))
        stored = {pid: row for pid, row in batch.passages.items() if pid in first}
        stored |= {pid: row for pid, row in batch.retexted.items() if pid in first}
        committed = set(first) - set(stored) - batch.old_passages
        stored |= {
            int(r["id"]): r
            for r in self.query_ids("passages", "id", committed, ["id", "hash", "folded"])
        }
        return {
            pid: (first[pid][1], str(row["hash"]), str(row["folded"]))
            for pid, row in stored.items()
        }

    def retext_passage(
        self, passage_id: int, text: str, folded: str, content_hash: str, signature: bytes
    ) -> None:
        batch = self._staging()
        staged = batch.passages.get(passage_id)
        old = staged if staged is not None else batch.retexted.get(passage_id)
        if old is not None and batch.by_hash.get(str(old["hash"])) == passage_id:
            del batch.by_hash[str(old["hash"])]
        row = {
            "id": passage_id,
            "hash": content_hash,
            "text": text,
            "folded": folded,
            "signature": signature.hex(),
            "lexical": encode_tokens(self._tokenizer()(folded)),
            "dense": None,  # until `set_vectors`
        }
        if staged is not None:
            batch.passages[passage_id] = row
        else:
            batch.retexted[passage_id] = row
        batch.by_hash[content_hash] = passage_id

    def merge_passage(self, passage_id: int, into: int) -> None:
        batch = self._staging()
        # A version holding both passages holds one from now on. SQLite counts a version's
        # passages when asked; here the count is stored, so it is lowered with the merge.
        both = self._holders(passage_id) & self._holders(into)
        for doc_id in both:
            if doc_id in batch.documents:
                batch.documents[doc_id]["passages"] -= 1
            elif doc_id not in batch.counts:
                (row,) = self._document_rows([doc_id])
                batch.counts[doc_id] = row.passages - 1
            else:
                batch.counts[doc_id] -= 1
        batch.held |= {(doc_id, into) for doc_id, pid in batch.held if pid == passage_id}
        for source in batch.sources:
            if source["passage_id"] == passage_id:
                source["passage_id"] = into
        rows = self.query_ids("sources", "passage_id", [passage_id], SOURCE_FIELDS)
        batch.moved += [
            {**r, "passage_id": into, "pad": PAD}
            for r in rows
            if int(r["doc_id"]) not in batch.old_documents
        ]
        batch.retext.add(into)  # it shows the first of them all
        self.delete_passages([passage_id])

    def _holders(self, passage_id: int) -> set[int]:
        """The versions kept by the batch that hold a source of the passage."""
        batch = self._staging()
        held = {int(s["doc_id"]) for s in batch.sources if s["passage_id"] == passage_id}
        rows = self.query_ids("sources", "passage_id", [passage_id], ["doc_id"])
        held |= {int(r["doc_id"]) for r in rows}
        return held - batch.old_documents

    def delete_passages(self, ids: Sequence[int]) -> None:
        """Drop passages (with the batch, or at once outside one)."""
        if self._batch is None:
            self.delete_ids("passages", "id", ids)
            return
        for pid in ids:
            self._batch.retexted.pop(int(pid), None)
            row = self._batch.passages.pop(int(pid), None)
            if row is not None:
                self._batch.by_hash.pop(row["hash"], None)
            else:
                self._batch.old_passages.add(int(pid))

    def paragraph_context(
        self, doc_id: int, number: int, context: int
    ) -> tuple[list[ParagraphRow], ParagraphRow | None, list[ParagraphRow]]:
        rows = self._paragraph_rows(doc_id)
        before = [r for r in rows if r.number < number][-context:] if context else []
        after = [r for r in rows if r.number > number][:context]
        row = next((r for r in rows if r.number == number), None)
        return before, row, after

    def _paragraph_rows(self, doc_id: int) -> list[ParagraphRow]:
        if doc_id not in self._paragraphs:
            data = self._blob(doc_id, "paragraphs")
            rows = [ParagraphRow(*p) for p in json.loads(data)] if data else []
            self._paragraphs[doc_id] = sorted(rows, key=lambda r: r.number)
        return self._paragraphs[doc_id]

    def _blob(self, doc_id: int, kind: str) -> str | None:
        rows = self.query(
            "blobs", f"doc_id == {int(doc_id)} and kind == {literal(kind)}", ["part", "data"]
        )
        if not rows:
            return None
        return "".join(str(r["data"]) for r in sorted(rows, key=lambda r: int(r["part"])))

    def document_vectors(self, doc_id: int) -> dict[str, np.ndarray]:
        """Folded text -> vector of every passage the document holds."""
        held = self.query_ids("sources", "doc_id", [doc_id], ["passage_id"])
        pids = {int(r["passage_id"]) for r in held}
        rows = self.query_ids("passages", "id", pids, ["folded", "dense"])
        return {str(r["folded"]): np.asarray(r["dense"], dtype=np.float32) for r in rows}

    def document_hashes(self, doc_id: int) -> set[str]:
        held = self.query_ids("sources", "doc_id", [doc_id], ["passage_id"])
        pids = {int(r["passage_id"]) for r in held}
        return {str(r["hash"]) for r in self.query_ids("passages", "id", pids, ["hash"])}

    # -- passages -------------------------------------------------------------------------

    def passage_id_by_hash(self, content_hash: str) -> int | None:
        batch = self._batch
        if batch is not None and content_hash in batch.by_hash:
            return batch.by_hash[content_hash]
        rows = self._client.query(
            self._n["passages"],
            filter=f"hash == {literal(content_hash)}",
            output_fields=["id"],
        )
        gone = set()
        if batch is not None:  # dropped, or taking another identity, in this batch
            gone = batch.old_passages | {
                pid for pid, row in batch.retexted.items() if row["hash"] != content_hash
            }
        ids = [int(r["id"]) for r in rows if int(r["id"]) not in gone]
        return ids[0] if ids else None

    def insert_passage(
        self,
        text: str,
        folded: str,
        content_hash: str,
        signature: bytes,
        vector: np.ndarray,
        keep_id: int | None = None,
    ) -> int:
        """Stage a passage; `keep_id` keeps the id it had elsewhere (`rag migrate`, into an
        index that has no passages yet), and ids allocated later stay above it."""
        batch = self._staging()
        if keep_id is None:
            pid = batch.new_id()
        else:
            pid, batch.next_id = keep_id, max(batch.next_id, keep_id + 1)
        tokenize = self._tokenizer()
        v = np.asarray(vector, dtype=np.float32).reshape(-1)
        batch.passages[pid] = {
            "id": pid,
            "hash": content_hash,
            "text": text,
            "folded": folded,
            "signature": signature.hex(),
            "lexical": encode_tokens(tokenize(folded)),
            "dense": v.tolist() if v.size else None,
        }
        batch.by_hash[content_hash] = pid
        return pid

    def _tokenizer(self) -> Tokenizer:
        if self._tokenize is None:  # the index's tokenizer, from its config
            self._tokenize = get_tokenizer(self.get_meta("tokenizer") or LEGACY_TOKENIZER)
        return self._tokenize

    def set_vectors(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        matrix = np.asarray(vectors, dtype=np.float32)
        dim = self.dim
        if matrix.shape != (len(ids), dim):
            raise ValueError(f"expected vectors of shape ({len(ids)}, {dim}), got {matrix.shape}")
        if self._batch is None:
            rows = [{"id": int(p), "dense": matrix[i].tolist()} for i, p in enumerate(ids)]
            if rows:
                self._client.upsert(self._n["passages"], rows, partial_update=True)
            return
        for i, pid in enumerate(ids):
            row = self._batch.passages.get(int(pid)) or self._batch.retexted.get(int(pid))
            if row is not None:
                row["dense"] = matrix[i].tolist()
            else:
                self._batch.vectors[int(pid)] = matrix[i].tolist()

    @property
    def dim(self) -> int:
        if not self._dim:
            self._dim = int(self.get_meta("dim") or 0)
        return self._dim

    def insert_source(self, passage_id: int, doc_id: int, source: Source) -> None:
        batch = self._staging()
        if (doc_id, passage_id) not in batch.held and doc_id in batch.documents:
            batch.held.add((doc_id, passage_id))
            batch.documents[doc_id]["passages"] += 1
        batch.sources.append(
            {
                "id": batch.new_id(),
                "passage_id": passage_id,
                "doc_id": doc_id,
                "paragraph": source.paragraph,
                "line_start": source.line_start,
                "line_end": source.line_end,
                "char_start": source.char_start,
                "char_end": source.char_end,
                "text": source.text,
                "origin": placement_json(source),
                "page": source.page,
                "sheet": source.sheet,
                "ocr_confidence": source.ocr_confidence,
                "pad": PAD,
            }
        )

    def passages(self, ids: Sequence[int]) -> dict[int, Passage]:
        """Passages by id with their sources in current document versions, in order.

        A passage no current version holds (one being written or collected) is left out,
        and sources are read before the versions they belong to: a flip in between can only
        drop a source, never add one from a version the reader did not see.
        """
        if not ids:
            return {}
        sources = sorted(
            self.query_ids("sources", "passage_id", ids, SOURCE_FIELDS), key=lambda r: int(r["id"])
        )
        versions = {int(r["doc_id"]) for r in sources}
        files = {
            int(r["doc_id"]): str(r["file"])
            for r in self.query_ids("files", "doc_id", versions, ["file", "doc_id"])
        }
        held: dict[int, list[Source]] = {}
        for r in sources:
            file = files.get(int(r["doc_id"]))
            if file is not None:
                held.setdefault(int(r["passage_id"]), []).append(_source(file, r))
        texts = {
            int(r["id"]): str(r["text"]) for r in self.query_ids("passages", "id", held, ["text"])
        }
        return {
            pid: Passage(pid, texts[pid], tuple(sources_))
            for pid, sources_ in held.items()
            if pid in texts
        }

    def folded_texts(self) -> tuple[list[int], list[str]]:
        rows = sorted(self.query("passages", "", ["id", "folded"]), key=lambda r: int(r["id"]))
        return [int(r["id"]) for r in rows], [str(r["folded"]) for r in rows]

    def iter_passages(self) -> Iterator[StoredPassage]:
        for r in self.query("passages", "", ["id", "folded", "signature", "dense"]):
            yield StoredPassage(
                int(r["id"]),
                str(r["folded"]),
                bytes.fromhex(str(r["signature"])),
                np.asarray(r["dense"], dtype=np.float32).tobytes(),
            )

    def passage_hashes(self) -> dict[int, str]:
        """Passage id -> content hash, of every committed passage (`rag migrate`)."""
        return {int(r["id"]): str(r["hash"]) for r in self.query("passages", "", ["id", "hash"])}

    def vectors_by_id(self) -> dict[int, bytes]:
        return {
            int(r["id"]): np.asarray(r["dense"], dtype=np.float32).tobytes()
            for r in self.query("passages", "", ["id", "dense"])
        }

    def integrity_problems(self, dim: int) -> list[str]:
        return integrity_problems(self, dim)

    def document_text(self, file: str) -> str | None:
        row = self.find_document(file)
        return None if row is None else self._blob(row.id, "text")

    def count(self, table: str) -> int:
        if table == "documents":
            return len(self._current())
        if table == "paragraphs":
            return sum(d.paragraphs for d in self.documents())
        if table not in {"passages", "sources"}:
            raise ValueError(table)
        rows = self._client.query(self._n[table], filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def _staging(self) -> _Batch:
        if self._batch is None:
            raise RuntimeError("writes to the milvus store happen inside transaction()")
        return self._batch


def _source(file: str, r: dict[str, Any]) -> Source:
    offsets, breaks = read_placement(str(r["origin"]))
    return Source(
        file,
        int(r["paragraph"]),
        int(r["line_start"]),
        int(r["line_end"]),
        int(r["char_start"]),
        int(r["char_end"]),
        str(r["text"]),
        offsets,
        page=None if r.get("page") is None else int(r["page"]),
        sheet=None if r.get("sheet") is None else str(r["sheet"]),
        ocr_confidence=None if r.get("ocr_confidence") is None else float(r["ocr_confidence"]),
        line_breaks=breaks,
    )
