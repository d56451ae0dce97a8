"""Write and dedupe coordination: one writer at a time, duplicates merged, then publish.

A write holds the directory's write lock (`rag.store.lock`) and this process's thread lock,
brings its in-memory state (MinHash index, working vector copy) up to the store's
generation, commits to the store in one transaction, and finally publishes a new snapshot
(`rag.store.snapshot`) that readers adopt whole.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from rag.index.config import AddResult, IndexConfig, IndexMismatchError, NewDocument
from rag.index.reader import IndexReader
from rag.ingest.dedupe import NearDuplicateIndex, signature_bytes, signature_from_bytes
from rag.store.base import PassageStore, VectorIndex
from rag.store.factory import Backend
from rag.store.lock import IndexLock
from rag.store.snapshot import Caches, Snapshots
from rag.store.sqlite import vectors_from_rows
from rag.text.identity import content_hash
from rag.text.script import fold_script
from rag.text.tokenize import Tokenizer

if TYPE_CHECKING:
    from datasketch import MinHash

EmbedPassages = Callable[[list[str]], np.ndarray]


def build_caches(
    store: PassageStore, config: IndexConfig, backend: Backend, tokenize: Tokenizer
) -> Caches:
    """Vector and lexical indexes of the committed store: in memory, or the store's own."""
    if backend.live_caches is not None:
        return backend.live_caches(store, store.generation())
    assert backend.build_vectors is not None and backend.build_lexical is not None
    # One read transaction: the generation and the rows come from the same snapshot.
    with store.snapshot():
        generation = store.generation()
        rows = list(store.iter_passages())
    ids, matrix = vectors_from_rows(rows, config.dim)
    vectors = backend.build_vectors(config.dim, ids, matrix)
    lexical = backend.build_lexical(ids, [tokenize(r.folded) for r in rows])
    return Caches(vectors, lexical, generation)


class IndexWriter:
    """Adds and removes documents in the store and the working indexes, then publishes."""

    def __init__(
        self,
        store: PassageStore,
        config: IndexConfig,
        backend: Backend,
        snapshots: Snapshots,
        reader: IndexReader,
        lock: IndexLock,
        tokenize: Tokenizer,
    ) -> None:
        self.store = store
        self.config = config
        self._backend = backend
        self._snapshots = snapshots
        self._reader = reader
        self._lock = lock
        self._tokenize = tokenize
        self._thread_lock = threading.RLock()  # one writing thread in this process
        self._near: NearDuplicateIndex | None = None
        self._working: VectorIndex | None = None
        # The store generation this process's writer state (`_near`, `_working`) reflects.
        self.state_generation = reader.caches.generation

    # -- snapshots ------------------------------------------------------------------------

    def rebuild_and_publish(self) -> Caches:
        """Build the caches from the store and publish them; called with the lock held."""
        caches = build_caches(self.store, self.config, self._backend, self._tokenize)
        self._snapshots.publish(caches)
        return caches

    def rebuild_caches(self) -> None:
        """Rebuild the caches from the store and publish them (`rag check --repair`)."""
        with self.writing():
            with self.store.transaction():
                pass  # opening one recovers an interrupted write where the store must

            self._reader.adopt(self.rebuild_and_publish())
            self._working = None

    def commit(self) -> None:
        """Publish pending writes: rebuild the lexical index, save caches, swap the snapshot."""
        if self._working is None:
            if self._reader.caches.generation != self.store.generation():
                # A failed batch dropped the working vectors, which also held the batches
                # committed before it: publish those from the store, or they stay unsearched
                # and the next write's copy of the stale caches would publish without them.
                self._reader.adopt(self.rebuild_and_publish())
            return
        if self._backend.build_lexical is None:  # the store is the index: nothing to build
            caches = build_caches(self.store, self.config, self._backend, self._tokenize)
            self._snapshots.publish(caches)
            self._reader.adopt(caches)
            self._working = None
            return
        ids, folded = self.store.folded_texts()
        lexical = self._backend.build_lexical(ids, [self._tokenize(f) for f in folded])
        caches = Caches(self._working, lexical, self.store.generation())
        self._snapshots.publish(caches)
        self._reader.adopt(caches)
        self._working = None

    def replace_vectors(self, ids: Sequence[int], matrix: np.ndarray, config: IndexConfig) -> None:
        """Every passage's vector at once, into `config`'s embedder; with the lock held."""
        meta = {"embedder": config.embedder, "dim": str(config.dim)}
        self.state_generation = self.store.replace_vectors(ids, matrix, meta)
        self.config = config
        self._forget()
        self._reader.embedder = config.embedder
        self._reader.adopt(self.rebuild_and_publish())

    # -- the lock and the writer's state --------------------------------------------------

    @contextmanager
    def writing(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the write lock (this process's and the directory's) around a change.

        Args:
            timeout: Seconds to wait for another writer; default: the index's `lock_timeout`.

        Raises:
            IndexBusyError: Another process kept the lock for longer than `timeout`.
        """
        with self._thread_lock, self._lock(timeout):
            self._refuse_if_retokenized()
            self._sync()
            yield

    def _sync(self) -> None:
        # Another process may have written since this one last did: its passages are not
        # in our MinHash index or working vectors, and our caches may be older than the store.
        current = self.store.generation()
        if current == self.state_generation:
            return
        self._forget()
        if self._reader.caches.generation != current:
            published = self._snapshots.published()
            caches = self._snapshots.load(current) if published == current else None
            self._reader.adopt(caches if caches is not None else self.rebuild_and_publish())
        self.state_generation = current

    def _refuse_if_retokenized(self) -> None:
        """Another process's `rag reindex --tokenizer` changed the index's tokenizer.

        Every write publishes a lexical index built with this process's tokenizer (adding,
        removing, and `_sync`'s rebuild): it would be one of the old tokens under a config
        naming the new, which no question tokenised with the new would match.
        """
        current = self.store.get_meta("tokenizer")
        if current is not None and current != self.config.tokenizer:
            raise IndexMismatchError(
                f"the index was re-tokenized with {current} after this process opened it "
                f"with {self.config.tokenizer}: restart it to write to it"
            )

    def replace_tokenizer(self, name: str, tokenize: Tokenizer) -> None:
        """Record `name` as the index's tokenizer and publish a lexical index of its tokens;
        with the lock held. The store re-tokenizes its passages if it holds their tokens
        (Milvus); a local lexical index is a cache, rebuilt here."""
        self.state_generation = self.store.replace_tokens(name)
        self.config = replace(self.config, tokenizer=name)
        self._tokenize = tokenize
        self._forget()
        caches = self.rebuild_and_publish()
        self._reader.use_tokenizer(name, tokenize)
        self._reader.adopt(caches)

    def _refuse_if_reembedded(self) -> None:
        """Another process's `rag reindex` moved the index into another vector space.

        This process embeds passages with the embedder it opened the index with: what it
        added now would be vectors of the old space among the new, found by no question.
        (Removing needs no vectors, so it is not refused.)
        """
        current = self.store.get_meta("embedder")
        if current is not None and current != self.config.embedder:
            raise IndexMismatchError(
                f"the index was re-embedded with {current} after this process opened it "
                f"with {self.config.embedder}: restart it with {current} to write to it"
            )

    def _forget(self) -> None:
        """Drop the in-memory state; it is rebuilt from the store when next needed."""
        self._near = None
        self._working = None

    def _near_duplicates(self) -> NearDuplicateIndex:
        if self._near is None:
            near = NearDuplicateIndex(
                self.config.dedupe_threshold, self.config.minhash_perm, self.config.shingle_size
            )
            for row in self.store.iter_passages():
                near.add(row.id, signature_from_bytes(row.signature, self.config.minhash_perm))
            self._near = near
        return self._near

    def _working_vectors(self) -> VectorIndex:
        # Writes go to a private copy so readers keep searching the committed snapshot.
        if self._working is None:
            self._working = self._reader.caches.vectors.copy()
        return self._working

    # -- adding and removing --------------------------------------------------------------

    def unchanged(self, file: str, content_hash_: str) -> bool:
        return self.indexed_hash(file) == content_hash_

    def indexed_hash(self, file: str) -> str | None:
        """The content hash of the indexed version of `file`; None if it is not indexed."""
        row = self.store.find_document(file)
        return None if row is None else row.content_hash

    def add_documents(self, batch: Sequence[NewDocument], embed: EmbedPassages) -> AddResult:
        """Store documents' chunks as passages, merging duplicates; replaces older versions.

        Exact duplicates (same `content_hash`) and near duplicates (MinHash Jaccard at or
        above the threshold) become extra sources of the passage already stored, so the
        passage is embedded once and every file that holds it can be cited. The batch is one
        transaction and one call to `embed`: the model is fastest on full batches, and most
        files are too small to fill one.
        """
        files = [item.file for item in batch]
        if len(set(files)) != len(files):
            raise ValueError("a batch holds one version of each file")
        self._refuse_if_reembedded()
        result = AddResult()
        near = self._near_duplicates()
        vectors = self._working_vectors()
        try:
            with self.store.transaction():
                fresh: list[tuple[int, str]] = []
                losing = _Losing()
                for item in batch:
                    fresh.extend(self._add(item, near, vectors, result, losing))
                retexted = self._follow_texts(losing, near, vectors)
                if fresh or retexted:
                    # Passages are embedded in folded form, like queries, so the dense side
                    # also sees one script.
                    matrix = embed([text for _, text in fresh + retexted])
                    self.store.set_vectors([pid for pid, _ in fresh + retexted], matrix)
                    vectors.add([pid for pid, _ in fresh], matrix[: len(fresh)])
                    vectors.replace([pid for pid, _ in retexted], matrix[len(fresh) :])
                self.state_generation = self.store.bump_generation()
        except BaseException:
            # The store rolled back; the in-memory working state no longer matches it.
            self._forget()
            raise
        return result

    def _add(
        self,
        item: NewDocument,
        near: NearDuplicateIndex,
        vectors: VectorIndex,
        result: AddResult,
        losing: _Losing,
    ) -> list[tuple[int, str]]:
        """Insert one document; return the new passages that still need a vector."""
        result.passages += len(item.chunks)
        existing = self.store.find_document(item.file)
        # An edited file keeps most of its passages: reuse their vectors rather than paying
        # the model again for text it has already embedded. By folded text, which is what
        # is embedded: the content hash also matches a copy with other punctuation.
        reusable: dict[str, np.ndarray] = {}
        if existing is not None:
            reusable = self.store.document_vectors(existing.id)
            losing.vectors.update(reusable)
            self._remove(existing.id, near, vectors, losing)
        doc_id = self.store.insert_document(item.file, item.document)
        fresh: list[tuple[int, str]] = []
        for chunk in item.chunks:
            digest = content_hash(chunk.text)
            signature = near.signature(chunk.text)
            pid = self._place(digest, signature, near, result)
            if pid is None:
                folded = fold_script(chunk.text)
                vector = reusable.get(folded)
                pid = self.store.insert_passage(
                    chunk.text,
                    folded,
                    digest,
                    signature_bytes(signature),
                    vector if vector is not None else np.zeros(0, np.float32),
                )
                near.add(pid, signature)
                if vector is None:
                    fresh.append((pid, folded))
                else:
                    vectors.add([pid], vector[None, :])
                    result.reused_vectors += 1
                result.new_passages += 1
            self.store.insert_source(pid, doc_id, chunk.source)
        return fresh

    def _place(
        self, digest: str, signature: MinHash, near: NearDuplicateIndex, result: AddResult
    ) -> int | None:
        """The stored passage a chunk duplicates, if any."""
        pid = self.store.passage_id_by_hash(digest)
        if pid is not None:
            result.exact_duplicates += 1
            return pid
        pid = near.find(signature)
        if pid is not None:
            result.near_duplicates += 1
        return pid

    def _remove(
        self, doc_id: int, near: NearDuplicateIndex, vectors: VectorIndex, losing: _Losing
    ) -> None:
        held = self.store.document_passages(doc_id)
        orphans = self.store.delete_document(doc_id)
        vectors.remove(orphans)
        for pid in orphans:
            near.remove(pid)
        losing.ids |= held - set(orphans)

    def _follow_texts(
        self, losing: _Losing, near: NearDuplicateIndex, vectors: VectorIndex
    ) -> list[tuple[int, str]]:
        """Merged passages that lost their first source take the identity of the text they
        show now (their next source's): hash, signature, folded text and so lexical terms,
        and vector. Otherwise the vector embeds text no longer stored, the text's own words
        are not found, and the removed text's hash still matches it as an exact duplicate.

        Returns the passages whose new text needs a vector (their old one is replaced by
        `add_documents`); a vector of that text still at hand is reused instead.
        """
        fresh: list[tuple[int, str]] = []
        shown = self.store.shown_passages(losing.ids)
        for pid, (text, stored_hash, stored_folded) in sorted(shown.items()):
            digest = content_hash(text)
            folded = fold_script(text)
            if digest == stored_hash:
                if folded == stored_folded:
                    continue  # the same text, or one that differs only in display
                # An exact duplicate in all `content_hash` ignores (punctuation, white space),
                # which folding keeps: a comma ends a bigram run and moves the vector. Same
                # hash and signature; the folded text and vector follow.
                signature = signature_bytes(near.signature(text))
                self.store.retext_passage(pid, text, folded, digest, signature)
            else:
                other = self.store.passage_id_by_hash(digest)
                if other is not None and other != pid:
                    # The text was merged into two passages, and both show it now: one.
                    self.store.merge_passage(pid, other)
                    vectors.remove([pid])
                    near.remove(pid)
                    continue
                minhash = near.signature(text)
                self.store.retext_passage(pid, text, folded, digest, signature_bytes(minhash))
                near.remove(pid)
                near.add(pid, minhash)
            vector = losing.vectors.get(folded)
            if vector is None:
                fresh.append((pid, folded))
            else:
                self.store.set_vectors([pid], vector[None, :])
                vectors.replace([pid], vector[None, :])
        return fresh

    def remove_document(self, file: str, embed: EmbedPassages) -> bool:
        """Drop a document in one transaction (publish with `commit`); False: no such file.

        `embed` gives a vector to a merged passage whose shown text changes (`_follow_texts`).
        """
        row = self.store.find_document(file)
        if row is None:
            return False
        near = self._near_duplicates()
        vectors = self._working_vectors()
        try:
            with self.store.transaction():
                losing = _Losing()
                self._remove(row.id, near, vectors, losing)
                retexted = self._follow_texts(losing, near, vectors)
                if retexted:
                    matrix = embed([folded for _, folded in retexted])
                    self.store.set_vectors([pid for pid, _ in retexted], matrix)
                    vectors.replace([pid for pid, _ in retexted], matrix)
                self.state_generation = self.store.bump_generation()
        except BaseException:
            self._forget()
            raise
        return True


@dataclass
class _Losing:
    """What one write's removals leave behind: merged passages that lost a source, and the
    vectors of the removed versions' passages by folded text (reused if a text returns)."""

    ids: set[int] = field(default_factory=set)
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
