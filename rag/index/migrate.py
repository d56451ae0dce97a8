"""`rag migrate`: copy a local index into another backend, vectors and all, no re-embedding.

Documents are copied in batches, each batch one write of the target (so Milvus's reader-safe
write order applies): a document already in the target with the same content is skipped, so
a migration that was killed is finished by running it again. Passages keep their vectors,
MinHash signatures and content hashes; a passage held by several documents is copied once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rag.index.config import IndexConfig, IndexMismatchError, NoIndexError
from rag.index.index import Index
from rag.store.base import DocumentRow
from rag.store.location import Location
from rag.store.lock import IndexLock
from rag.store.sqlite import STORE_FILE, SQLiteStore

BATCH_DOCUMENTS = 50


@dataclass
class MigrateReport:
    documents: int = 0
    skipped: int = 0  # already in the target with the same content
    passages: int = 0
    sources: int = 0


def migrate(
    source: Path,
    target: Location,
    lock_timeout: float = 600.0,
    on_document: Callable[[str], None] | None = None,
    lock: IndexLock | None = None,
) -> MigrateReport:
    """Copy the local index at `source` into `target` (created with the same settings).

    `lock` is the target's write lock when its writers share one (`rag.pipeline.write_lock`:
    a Milvus server's writers take it in Redis); None: the backend's own.

    Raises:
        NoIndexError: No index at `source`.
        IndexMismatchError: The target exists and was built with other settings.
    """
    if not (source / STORE_FILE).is_file():
        raise NoIndexError(f"no index at {source} (no store.sqlite)")
    src = SQLiteStore(source / STORE_FILE, readonly=True)
    report = MigrateReport()
    try:
        config = IndexConfig.from_store(src)
        if config.backend != "local":
            raise IndexMismatchError(f"{source} is a {config.backend} index, not a local one")
        index = Index(target, replace(config, backend=target.backend), lock_timeout, lock=lock)
        try:
            # One read transaction on the source: a writer committing there meanwhile
            # (an ingest replacing a document, whose new rows may reuse the old id) would
            # otherwise have a document copied with one version's hash and another's rows.
            with index.writing(), src.snapshot():
                documents = sorted(src.documents(), key=lambda d: d.id)
                # Passages keep their ids (citations and links that name them stay valid)
                # when the target has none that could collide.
                keep_ids = _ids_free(src, index.store)
                for start in range(0, len(documents), BATCH_DOCUMENTS):
                    batch = documents[start : start + BATCH_DOCUMENTS]
                    _copy_batch(src, index, batch, report, keep_ids)
                    if on_document is not None:
                        for row in documents[start : start + BATCH_DOCUMENTS]:
                            on_document(row.file)
                index.commit()
            # The copy went straight to the store, so nothing was published: publishing
            # seals it (Milvus searches a growing segment at 0.19 s of CPU a question for
            # 426 passages, 0.05 s once flushed; docs/benchmarks.md, "Milvus backend").
            index.rebuild_caches()
        finally:
            index.close()
    finally:
        src.close()
    return report


def _ids_free(src: SQLiteStore, target: Any) -> bool:
    """Whether every passage of the source can keep its id in the target.

    True when no passage of the target holds a source id with other content: an empty
    target, or one that a killed run of this migration filled in part (numbering the rest
    anew then gave some of them ids that name other passages in the source).
    """
    held = target.passage_hashes()
    if not held:
        return True
    ours = src.passage_hashes()
    return all(ours.get(pid, digest) == digest for pid, digest in held.items())


def _copy_batch(
    src: SQLiteStore,
    index: Index,
    documents: list[DocumentRow],
    report: MigrateReport,
    keep_ids: bool,
) -> None:
    store = index.store
    import_document = getattr(store, "import_document", None)
    if import_document is None:
        raise ValueError(f"backend {index.config.backend} cannot import documents")
    copied: dict[int, int] = {}  # source passage id -> target passage id
    with store.transaction():
        for row in documents:
            existing = store.find_document(row.file)
            if existing is not None and existing.content_hash == row.content_hash:
                report.skipped += 1
                continue
            if existing is not None:
                store.delete_document(existing.id)
            text, paragraphs = src.export_document(row.id)
            fields = {
                "path": row.path,
                "content_hash": row.content_hash,
                "encoding": row.encoding,
                "format": row.format,
                "ingested_at": row.ingested_at,
            }
            doc_id = import_document(row.file, fields, text, paragraphs)
            sources = src.export_sources(row.id)
            wanted = sorted({pid for pid, _ in sources} - set(copied))
            stored = src.export_passages(wanted)
            for pid in wanted:
                text_, folded, digest, signature, vector = stored[pid]
                found = store.passage_id_by_hash(digest)
                if found is None:
                    found = store.insert_passage(  # type: ignore[call-arg]
                        text_,
                        folded,
                        digest,
                        signature,
                        np.frombuffer(vector, np.float32),
                        keep_id=pid if keep_ids else None,
                    )
                    report.passages += 1
                copied[pid] = found
            for pid, source in sources:
                store.insert_source(copied[pid], doc_id, source)
                report.sources += 1
            report.documents += 1
        store.bump_generation()
