"""The read front of an index: the current snapshot for search, the store for passages.

Readers search one immutable `Caches` snapshot per query and read passages through their
own read-only store connection (one per thread; in WAL mode each sees the last committed
state). `refresh` adopts a snapshot another process published, for about a microsecond when
nothing changed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from rag.store.base import DocumentRow, ParagraphRow, PassageStore
from rag.store.snapshot import Caches, Snapshots
from rag.text.tokenize import Tokenizer
from rag.types import Passage

logger = logging.getLogger(__name__)

# Opens one read-only store connection (each reading thread gets its own).
OpenReader = Callable[[], PassageStore]


class IndexReader:
    """Searches the published snapshot and reads the committed store."""

    def __init__(
        self,
        caches: Caches,
        snapshots: Snapshots,
        open_reader: OpenReader,
        tokenize: Tokenizer,
        embedder: str | None = None,
        tokenizer: str | None = None,
    ) -> None:
        self.caches = caches
        # The vector space this process embeds questions in: a snapshot published after a
        # `rag reindex` into another is not adopted (its vectors would not match them).
        self.embedder = embedder
        # The same for the tokens questions are split into (`rag reindex --tokenizer`).
        self.tokenizer = tokenizer
        self._snapshots = snapshots
        self._open_reader = open_reader
        self._tokenize = tokenize
        self._local = threading.local()
        self._readers: list[PassageStore] = []
        self._readers_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._stamp_seen: tuple[int, int, int] | None = None

    def adopt(self, caches: Caches) -> None:
        """Search `caches` from now on (a commit in this process, or a refresh)."""
        self.caches = caches

    def refresh(self) -> None:
        """Adopt caches another process published since ours were loaded.

        Costs one `stat` when nothing changed, so the retriever calls it on every query.
        """
        seen = self._snapshots.stamp_signature()
        if seen is None or seen == self._stamp_seen:
            return
        with self._refresh_lock:
            if seen == self._stamp_seen:
                return
            published = self._snapshots.published()
            if published is not None and published > self.caches.generation:
                if self._reindexed():
                    self._stamp_seen = seen  # keep the last snapshot of our vector space
                    return
                caches = self._snapshots.load(published)
                if caches is None:
                    return  # superseded while we looked: try again on the next query
                self.caches = caches
            self._stamp_seen = seen

    def _reindexed(self) -> bool:
        """Another process re-embedded the index into another vector space, or re-tokenized
        it (its snapshot's tokens are not the ones this process splits questions into)."""
        for key, ours, done, doing in (
            ("embedder", self.embedder, "re-embedded", "embeds"),
            ("tokenizer", self.tokenizer, "re-tokenized", "tokenizes"),
        ):
            if ours is None:
                continue
            current = self._reader().get_meta(key)
            if current is None or current == ours:
                continue
            logger.warning(
                "the index was %s with %s; this process %s questions with %s and keeps "
                "answering from the last snapshot before: restart it",
                done,
                current,
                doing,
                ours,
            )
            return True
        return False

    def use_tokenizer(self, name: str, tokenize: Tokenizer) -> None:
        """Tokenize questions with `name` from now on (this process re-tokenized the index)."""
        self.tokenizer, self._tokenize = name, tokenize

    def tokenize(self, folded: str) -> list[str]:
        return self._tokenize(folded)

    def hybrid_candidates(
        self, tokens: Sequence[str], query_vector: np.ndarray, k: int
    ) -> tuple[dict[int, float], dict[int, float], dict[str, float]]:
        """Top `k` of each ranking, each candidate scored by both (cosine, BM25), and timings.

        Scoring the union fully, rather than treating "absent from the other top k" as zero,
        keeps a passage that is 51st lexically but 1st densely from losing its lexical half.
        """
        caches = self.caches  # one snapshot for the whole query
        t0 = time.perf_counter()
        lexical_all = caches.lexical.scores(tokens)
        lexical_top = caches.lexical.top(lexical_all, k)
        t1 = time.perf_counter()
        dense_top = caches.vectors.search(query_vector, k)
        ids = {pid for pid, _ in lexical_top} | {pid for pid, _ in dense_top}
        dense = caches.vectors.similarities(query_vector, ids)
        t2 = time.perf_counter()
        lexical = caches.lexical.score_of(lexical_all, ids)
        timings = {"lexical": (t1 - t0) * 1000, "dense_search": (t2 - t1) * 1000}
        return dense, lexical, timings

    def idf(self, tokens: Iterable[str]) -> dict[str, float]:
        return self.caches.lexical.idf(tokens)

    def _reader(self) -> PassageStore:
        reader: PassageStore | None = getattr(self._local, "store", None)
        if reader is None:
            reader = self._open_reader()
            self._local.store = reader
            with self._readers_lock:
                self._readers.append(reader)
        return reader

    def passages(self, ids: Sequence[int]) -> dict[int, Passage]:
        return self._reader().passages(ids)

    def documents(self) -> list[DocumentRow]:
        return self._reader().documents()

    def counts(self) -> dict[str, int]:
        """Documents, paragraphs and passages in the committed store."""
        reader = self._reader()
        return {table: reader.count(table) for table in ("documents", "paragraphs", "passages")}

    def document(self, file: str) -> DocumentRow | None:
        return self._reader().find_document(file)

    def document_text(self, file: str) -> str | None:
        return self._reader().document_text(file)

    def passage_texts(self) -> tuple[list[int], list[str]]:
        """Ids and folded texts of every committed passage (what was embedded)."""
        return self._reader().folded_texts()

    def paragraph_context(
        self, file: str, number: int, context: int
    ) -> tuple[list[ParagraphRow], ParagraphRow | None, list[ParagraphRow]] | None:
        """A paragraph with its neighbours (see `PassageStore.paragraph_context`); None: no file."""
        reader = self._reader()
        row = reader.find_document(file)
        if row is None:
            return None
        return reader.paragraph_context(row.id, number, context)

    def __len__(self) -> int:
        return len(self.caches.vectors)

    def close(self) -> None:
        with self._readers_lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()
