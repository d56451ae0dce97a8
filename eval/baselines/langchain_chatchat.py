"""The stock Langchain-Chatchat retrieval recipe over our embedder, as a baseline for `rag eval`.

Langchain-Chatchat (chatchat-space/Langchain-Chatchat, `libs/chatchat-server`) builds a knowledge
base this way, and so do we here, with nothing of our own in between (no cleaning, no script
folding, no dedupe), so that a comparison with our pipeline isolates the pipeline:

- `chatchat/settings.py` (`KBSettings`): `TEXT_SPLITTER_NAME = "ChineseRecursiveTextSplitter"`,
  `CHUNK_SIZE = 750`, `OVERLAP_SIZE = 150`.
- `chatchat/server/file_rag/text_splitter/chinese_recursive_text_splitter.py`: a
  `RecursiveCharacterTextSplitter` with Chinese sentence and clause separators, kept at the end
  of the piece they close.
- `chatchat/server/file_rag/retrievers/ensemble.py`: `BM25Retriever` over
  `jieba.lcut_for_search` tokens and the FAISS store's retriever, in an `EnsembleRetriever`
  weighted `[0.5, 0.5]`.

Only the answer differs: Chatchat hands the passages to an LLM; the baseline answers with the
top passage, so it measures retrieval.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jieba
from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStoreRetriever
from langchain_text_splitters import RecursiveCharacterTextSplitter

from embeddings.base import Embedder
from embeddings.langchain import LangChainEmbeddings
from rag.ingest.document import read_paragraphs
from rag.ingest.paragraphs import RawParagraph
from rag.loaders.base import LoadError
from rag.loaders.lines import LineIndex
from rag.loaders.walk import iter_files
from rag.pipeline import Skipped, file_key
from rag.types import SourceText

try:
    with warnings.catch_warnings():
        # langchain-community warns on import that it is being sunset; the recipe we reproduce
        # is built on it, so the warning says nothing actionable about our code.
        warnings.simplefilter("ignore", DeprecationWarning)
        import rank_bm25  # noqa: F401  (BM25Retriever imports it only when first built)
        from langchain_classic.retrievers import EnsembleRetriever
        from langchain_community.retrievers import BM25Retriever
        from langchain_community.vectorstores import FAISS
except ImportError as err:
    raise ImportError("install the 'baseline' extra: pip install '.[baseline]'") from err

CHUNK_SIZE = 750
CHUNK_OVERLAP = 150
# ChineseRecursiveTextSplitter's default separators, as regular expressions. Chatchat splits
# "from end" (a sentence keeps its 。), which stock LangChain calls keep_separator="end"; its
# last step, collapsing blank lines inside a chunk, is left out so that chunks stay verbatim
# slices of the file and their offsets exact.
SEPARATORS = ["\n\n", "\n", "。|！|？", r"\.\s|\!\s|\?\s", r"；|;\s", r"，|,\s"]
WEIGHTS = [0.5, 0.5]  # [bm25, faiss], as Chatchat's EnsembleRetrieverService
# FAISS calls per this many chunks: each is a progress step (the embedder batches inside).
INGEST_BATCH = 128
MAX_FILE_BYTES = 50 * 1024 * 1024  # our Settings.max_file_mb default
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ChunkSource:
    """The part of a chunk that lies in one numbered paragraph (`paragraph` is ours)."""

    file: str
    paragraph: int
    line_start: int
    line_end: int
    char_start: int
    char_end: int


@dataclass(frozen=True)
class BaselineChunk:
    """One splitter chunk: `text == source[char_start:char_end]` of the decoded file."""

    id: int
    file: str
    text: str
    char_start: int
    char_end: int
    line_start: int
    line_end: int
    sources: tuple[ChunkSource, ...]  # every paragraph the chunk overlaps, in order


@dataclass(frozen=True)
class BaselineIngest:
    files: int
    chunks: int
    seconds: float
    embed_seconds: float
    skipped: tuple[Skipped, ...] = ()


class LangChainBaseline:
    """Chatchat's hybrid retriever; `ask` returns our answer object with the top passage.

    Args:
        embedder: The embedder our pipeline uses, so that only the pipeline differs.
        top_k_candidates: Each retriever returns `max(top_k, top_k_candidates)` documents to
            the fusion (Chatchat asks each for `top_k`; a few more make the fused top-k less
            dependent on where one list stops).
        chunk_size, chunk_overlap: Chatchat's defaults; tests use smaller ones.
    """

    def __init__(
        self,
        embedder: Embedder,
        top_k_candidates: int = 10,
        *,
        chunk_size: int = CHUNK_SIZE,
        chunk_overlap: int = CHUNK_OVERLAP,
        bm25_per_query: bool = False,
    ) -> None:
        self.embedder = embedder
        self.embeddings = LangChainEmbeddings(embedder)
        self.top_k_candidates = top_k_candidates
        # Chatchat's FaissKBService.do_search calls EnsembleRetrieverService.from_vectorstore
        # for every query, which builds a BM25Retriever over every document in the store
        # (jieba-tokenising them all) each time. Same ranking as building it once, so quality
        # runs leave this off; `rag bench` turns it on to measure the recipe's real latency.
        self.bm25_per_query = bm25_per_query
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.splitter = RecursiveCharacterTextSplitter(
            separators=SEPARATORS,
            is_separator_regex=True,
            keep_separator="end",
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            add_start_index=True,
        )
        self.chunks: list[BaselineChunk] = []
        self.store: FAISS | None = None
        self.bm25: BM25Retriever | None = None
        self.dense: VectorStoreRetriever | None = None
        self.ensemble: EnsembleRetriever | None = None

    # -- building -------------------------------------------------------------------------

    def ingest(
        self, paths: Sequence[Path], on_progress: Callable[[int, int], None] | None = None
    ) -> BaselineIngest:
        """Split and index files and folders, replacing whatever was indexed before.

        Files are decoded by our loader, so both pipelines see the same text, and named as our
        index names them. A file that cannot be loaded is skipped and reported.

        Args:
            paths: Files and folders (walked recursively).
            on_progress: Called with `(chunks embedded, total chunks)` after each batch.

        Returns:
            Counts and times; `embed_seconds` is the part spent in the FAISS store's calls,
            which is the embedder's (adding vectors to a flat index is negligible beside it).
        """
        started = time.perf_counter()
        chunks: list[BaselineChunk] = []
        skipped: list[Skipped] = []
        files = 0
        for root in paths:
            for path in iter_files([root]):
                try:
                    source, paragraphs = read_paragraphs(path, MAX_FILE_BYTES)
                except LoadError as err:
                    skipped.append(Skipped(str(path), err.reason))
                    continue
                files += 1
                chunks.extend(self._split(file_key(path, root), source, paragraphs, len(chunks)))
        if not chunks:
            raise ValueError("no text to index in " + ", ".join(str(p) for p in paths))
        documents = [_document(chunk) for chunk in chunks]
        embed_seconds = 0.0
        store: FAISS | None = None
        for start in range(0, len(documents), INGEST_BATCH):
            batch = documents[start : start + INGEST_BATCH]
            clock = time.perf_counter()
            if store is None:
                # normalize_L2 as Chatchat's FAISS pool; our vectors are unit already, so
                # L2 distance ranks exactly as cosine similarity.
                store = FAISS.from_documents(batch, self.embeddings, normalize_L2=True)
            else:
                store.add_documents(batch)
            embed_seconds += time.perf_counter() - clock
            if on_progress is not None:
                on_progress(start + len(batch), len(documents))
        assert store is not None
        self._assemble(chunks, store)
        return BaselineIngest(
            files=files,
            chunks=len(chunks),
            seconds=time.perf_counter() - started,
            embed_seconds=embed_seconds,
            skipped=tuple(skipped),
        )

    def _split(
        self, file: str, source: SourceText, paragraphs: Sequence[RawParagraph], first_id: int
    ) -> list[BaselineChunk]:
        text = source.text
        lines = LineIndex(text)
        out: list[BaselineChunk] = []
        for document in self.splitter.create_documents([text]):
            start = int(document.metadata["start_index"])
            end = start + len(document.page_content)
            # The splitter finds each chunk in its input; a miss would break every offset.
            if start < 0 or text[start:end] != document.page_content:
                raise AssertionError(f"{file}: chunk not found at its start_index {start}")
            out.append(
                BaselineChunk(
                    id=first_id + len(out),
                    file=file,
                    text=document.page_content,
                    char_start=start,
                    char_end=end,
                    line_start=lines.line_of(start),
                    line_end=lines.line_of(max(end - 1, start)),
                    sources=chunk_sources(file, start, end, paragraphs, lines),
                )
            )
        return out

    def _assemble(self, chunks: list[BaselineChunk], store: FAISS) -> None:
        self.chunks = chunks
        self.store = store
        self.bm25 = BM25Retriever.from_documents(
            [_document(chunk) for chunk in chunks], preprocess_func=jieba.lcut_for_search
        )
        self.dense = store.as_retriever()
        self.ensemble = EnsembleRetriever(retrievers=[self.bm25, self.dense], weights=WEIGHTS)

    # -- asking ---------------------------------------------------------------------------

    def ask(self, question: str, top_k: int = 5) -> dict[str, Any]:
        """Answer with the top fused passage, in our answer-object shape (docs/api.md).

        Not thread-safe: each call sets the retrievers' `k`.
        """
        started = time.perf_counter()
        fused: list[Document] = []
        scores: dict[str, float] = {}
        if self.bm25_per_query and self.store is not None:
            self._assemble(self.chunks, self.store)
        if self.ensemble is not None and self.bm25 is not None and self.dense is not None:
            k = max(top_k, self.top_k_candidates)
            self.bm25.k = k
            self.dense.search_kwargs = {"k": k}
            # What EnsembleRetriever.invoke does, one step at a time, so that the fused
            # scores can be reported: the library's own fusion on each retriever's list.
            ranked = [self.bm25.invoke(question), self.dense.invoke(question)]
            fused = self.ensemble.weighted_reciprocal_rank(ranked)[:top_k]
            scores = _rrf_scores(ranked, self.ensemble.weights, self.ensemble.c)
        retrieve_ms = (time.perf_counter() - started) * 1000
        passages = [self.chunks[int(d.metadata["chunk"])] for d in fused]
        return {
            "question": question,
            "answer": passages[0].text if passages else "",
            "abstained": not passages,
            "citations": [_citation(passages[0])] if passages else [],
            "passages": [
                {
                    "id": chunk.id,
                    "text": chunk.text,
                    "score": round(scores[chunk.text], 6),
                    "sources": [asdict(s) for s in chunk.sources],
                }
                for chunk in passages
            ],
            "timings_ms": {
                "retrieve": round(retrieve_ms, 3),
                "total": round((time.perf_counter() - started) * 1000, 3),
            },
        }

    # -- persistence ----------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write the FAISS store and the chunks, so that `load` needs no re-embedding."""
        if self.store is None:
            raise ValueError("nothing to save: ingest first")
        directory.mkdir(parents=True, exist_ok=True)
        self.store.save_local(str(directory / "faiss"))
        meta = {
            "format": FORMAT_VERSION,
            "embedder": self.embedder.name,
            "dim": self.embedder.dim,
            "chunk_size": self.chunk_size,
            "chunk_overlap": self.chunk_overlap,
            "chunks": [asdict(chunk) for chunk in self.chunks],
        }
        # chunks.json last and whole (renamed into place): its presence says the save
        # finished, so a run killed while saving leaves no baseline that `load` trips on.
        partial = directory / "chunks.json.partial"
        partial.write_text(json.dumps(meta, ensure_ascii=False), "utf-8")
        partial.replace(directory / "chunks.json")

    @staticmethod
    def saved_at(directory: Path) -> bool:
        """Whether `save` finished writing a baseline to `directory`."""
        return (directory / "chunks.json").is_file()

    @classmethod
    def load(
        cls, directory: Path, embedder: Embedder, top_k_candidates: int = 10
    ) -> LangChainBaseline:
        """Open a saved baseline without re-embedding; BM25 is rebuilt from the chunks.

        Rebuilding is jieba tokenisation, about 20 s for 3,000 chunks of 750 characters on
        two cores, against some 20 minutes of embedding.

        Raises:
            ValueError: It was built with another embedder or format.
        """
        meta = json.loads((directory / "chunks.json").read_text("utf-8"))
        built = (meta.get("format"), meta.get("embedder"), meta.get("dim"))
        if built != (FORMAT_VERSION, embedder.name, embedder.dim):
            raise ValueError(
                f"{directory} holds format {built[0]} built with {built[1]} (dim {built[2]}); "
                f"expected format {FORMAT_VERSION} with {embedder.name} (dim {embedder.dim})"
            )
        baseline = cls(
            embedder,
            top_k_candidates,
            chunk_size=meta["chunk_size"],
            chunk_overlap=meta["chunk_overlap"],
        )
        # load_local unpickles the docstore: safe here because it is a file we wrote
        # ourselves in `save`; never point this at a directory from elsewhere.
        store = FAISS.load_local(
            str(directory / "faiss"),
            baseline.embeddings,
            allow_dangerous_deserialization=True,
            normalize_L2=True,
        )
        chunks = [_chunk_from_json(row) for row in meta["chunks"]]
        baseline._assemble(chunks, store)
        return baseline


def chunk_sources(
    file: str, start: int, end: int, paragraphs: Sequence[RawParagraph], lines: LineIndex
) -> tuple[ChunkSource, ...]:
    """The parts of source span `[start, end)` that fall in each paragraph, in order.

    A chunk made only of markup between paragraphs (an HTML tag, say) overlaps none.
    """
    sources: list[ChunkSource] = []
    for paragraph in paragraphs:
        a, b = paragraph.text.source_span()
        lo, hi = max(a, start), min(b, end)
        if lo < hi:
            sources.append(
                ChunkSource(
                    file=file,
                    paragraph=paragraph.number,
                    line_start=lines.line_of(lo),
                    line_end=lines.line_of(hi - 1),
                    char_start=lo,
                    char_end=hi,
                )
            )
    return tuple(sources)


def _document(chunk: BaselineChunk) -> Document:
    return Document(
        page_content=chunk.text,
        metadata={"chunk": chunk.id, "file": chunk.file, "start_index": chunk.char_start},
        id=str(chunk.id),
    )


def _rrf_scores(ranked: list[list[Document]], weights: list[float], c: int) -> dict[str, float]:
    # EnsembleRetriever's weighted reciprocal rank, keyed as it keys documents (by text, since
    # Chatchat sets no id_key): identical chunks are one candidate with both lists' credit.
    scores: dict[str, float] = {}
    for documents, weight in zip(ranked, weights, strict=True):
        for rank, document in enumerate(documents, start=1):
            key = document.page_content
            scores[key] = scores.get(key, 0.0) + weight / (rank + c)
    return scores


def _citation(chunk: BaselineChunk) -> dict[str, Any]:
    return {
        "n": 1,
        "file": chunk.file,
        "paragraph": chunk.sources[0].paragraph if chunk.sources else None,
        "line_start": chunk.line_start,
        "line_end": chunk.line_end,
        "char_start": chunk.char_start,
        "char_end": chunk.char_end,
        "quote": chunk.text,
        "passage_id": chunk.id,
        "also_in": [],
    }


def _chunk_from_json(row: dict[str, Any]) -> BaselineChunk:
    sources = tuple(ChunkSource(**source) for source in row.pop("sources"))
    return BaselineChunk(**row, sources=sources)
