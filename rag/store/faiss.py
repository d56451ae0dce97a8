"""Dense vector index: FAISS inner product over normalised embeddings, addressed by passage id.

Every vector is kept exactly, by id, in a flat index: exact search while it is fast enough,
and the source of `vectors`/`similarities`/`ids` for `rag check` and re-ingest. Beyond a
corpus size (`index_kind`) a second, compressed index finds candidates: an inverted file
over 8-bit scalar-quantised codes (`IVF<lists>,SQ8`), whose best `RERANK` x k candidates are
re-scored exactly from the flat vectors. Both remove by id. HNSW, which cannot remove a
vector in FAISS, is not used; docs/benchmarks.md ("Scale") has the measurements behind the
thresholds.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import faiss
import numpy as np

# Passages from which candidates come from the compressed IVF index instead of exact search.
# Measured on 384-dimensional clustered vectors (bench/scale.py, docs/benchmarks.md "Scale"):
# flat search costs 0.05-0.08 ms of CPU per 1000 passages per query on one core, 80 ms at
# 10^6, so it passes the 20 ms retrieval budget near 250,000. The IVF index is dropped below
# half this (hysteresis: a corpus hovering at the threshold is not retrained every commit).
APPROXIMATE_FROM = 200_000
# Lists probed per query, as a share of the lists. At 10^6 clustered passages (2,000 lists)
# recall@10 against exact search was 0.87 probing 1/16, 0.94 at 1/8, 0.97 at 3/16 and 0.984
# at 1/4; at 10^4, 1/16 gave 0.997. Recall falls as the corpus grows, so the share is set
# for the largest size measured. Scanning 8-bit codes instead of floats cuts a probe's CPU
# by 40%: 15.7 ms a query at 10^6 and 1/4, against 26.3 ms for `IVF,Flat` (same lists, same
# recall, one run) and 70 ms for exact search.
PROBE_SHARE = 1 / 4
# ...and never fewer lists than this (a small IVF index has few, large lists).
MIN_PROBES = 8
# Candidates re-scored exactly, per result asked for. At 10^6 and 1/4 of the lists: 1x
# (the 8-bit order alone) 0.972, 2x 0.984 = all that `IVF,Flat` finds, 4x and 10x no more;
# 4x leaves room for data less kind to the quantiser, for ~0.1 ms.
RERANK = 4
# k-means on at most this many training vectors per list, 10 iterations.
TRAIN_PER_LIST = 40
# The IVF index is rebuilt (new lists and code ranges) when the corpus outgrows its lists by
# this factor.
REFIT_GROWTH = 4.0


def ivf_lists(n: int) -> int:
    """Inverted lists for `n` vectors: 2·sqrt(n), so a probe scans about sqrt(n) vectors
    (fewer on small corpora: k-means wants about 40 training vectors per list)."""
    return max(1, min(round(2 * math.sqrt(n)), n // TRAIN_PER_LIST))


def index_kind(n: int, current: str | None = None, approximate_from: int = APPROXIMATE_FROM) -> str:
    """ "flat" or "ivf" for `n` vectors; `current` keeps its kind between the two thresholds."""
    if n >= approximate_from:
        return "ivf"
    if current == "ivf" and n >= approximate_from // 2:
        return "ivf"
    return "flat"


class FaissVectorIndex:
    """Inner-product search with stable ids, so single documents can be added and removed.

    Inner product equals cosine similarity on the normalised vectors every embedder returns.
    `exact` (a flat index by id) holds every vector; `coarse`, from `approximate_from`
    passages on, holds the same ids as 8-bit codes in inverted lists. A search then scans
    the lists nearest the query for candidates and scores them from the exact vectors, so
    the scores it returns are exact and only the candidate set is approximate.
    """

    def __init__(
        self,
        exact: faiss.IndexIDMap2,
        coarse: faiss.IndexIVF | None = None,
        approximate_from: int = APPROXIMATE_FROM,
    ) -> None:
        self._exact = exact
        self._coarse = coarse
        self.approximate_from = approximate_from
        self.rerank = RERANK

    @classmethod
    def empty(cls, dim: int, approximate_from: int = APPROXIMATE_FROM) -> FaissVectorIndex:
        return cls(_flat(dim), None, approximate_from)

    @classmethod
    def build(
        cls,
        dim: int,
        ids: Sequence[int],
        vectors: np.ndarray,
        approximate_from: int = APPROXIMATE_FROM,
    ) -> FaissVectorIndex:
        """An index of the kind `len(ids)` calls for, holding `vectors` under `ids`."""
        index = cls.empty(dim, approximate_from)
        index.add(ids, vectors)
        return index

    @property
    def native(self) -> faiss.Index:
        """The exact FAISS index, for benchmarks (bench/scale.py)."""
        return self._exact

    @property
    def coarse(self) -> faiss.IndexIVF | None:
        """The compressed IVF index candidates come from, if any (benchmarks tune it)."""
        return self._coarse

    @property
    def kind(self) -> str:
        return "flat" if self._coarse is None else "ivf"

    @property
    def dim(self) -> int:
        return int(self._exact.d)

    def __len__(self) -> int:
        return int(self._exact.ntotal)

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vectors = _checked(vectors, len(ids), self.dim)
        keys = np.asarray(ids, dtype=np.int64)
        self._exact.add_with_ids(vectors, keys)
        if self._coarse is not None:
            self._coarse.add_with_ids(vectors, keys)
        self._refit()

    def remove(self, ids: Sequence[int]) -> None:
        if len(ids):
            keys = np.asarray(ids, dtype=np.int64)
            # FAISS's Python wrapper accepts an id array here; its type stubs only know
            # the IDSelector overload.
            self._exact.remove_ids(keys)  # type: ignore[arg-type]
            if self._coarse is not None:
                self._coarse.remove_ids(keys)  # type: ignore[arg-type]
            self._refit()

    def replace(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        # FAISS would keep both vectors under one id: the old one goes first.
        self.remove(ids)
        self.add(ids, vectors)

    def _refit(self) -> None:
        """Add or drop the IVF index (or give it new lists) when the size calls for it."""
        n = len(self)
        kind = index_kind(n, self.kind, self.approximate_from)
        if kind == "flat":
            self._coarse = None
        elif self._coarse is None or self._coarse.nlist * REFIT_GROWTH <= ivf_lists(n):
            ids = self.ids()
            self._coarse = _ivf(self.dim, ids, self.vectors(ids))  # type: ignore[arg-type]

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Top `k` `(passage id, cosine similarity)` pairs, best first."""
        if len(self) == 0 or k <= 0:
            return []
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if self._coarse is None:
            with one_omp_thread():
                scores, ids = self._exact.search(q, min(k, len(self)))
            return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
        with one_omp_thread():
            _, found = self._coarse.search(q, min(k * self.rerank, len(self)))
        candidates = found[0][found[0] >= 0]
        exact = self.vectors(candidates) @ q[0]
        best = np.argsort(-exact, kind="stable")[:k]
        return [(int(candidates[i]), float(exact[i])) for i in best]

    def similarities(self, query: np.ndarray, ids: Iterable[int]) -> dict[int, float]:
        """Cosine similarity of the query to given stored passages (exact, by reconstruction)."""
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        out: dict[int, float] = {}
        for pid in ids:
            try:
                out[pid] = float(self._exact.reconstruct(int(pid)) @ q)
            except RuntimeError:
                continue  # id not in the index (removed meanwhile)
        return out

    def ids(self) -> np.ndarray:
        """Every stored passage id (`rag check` compares them with the store's)."""
        return np.asarray(faiss.vector_to_array(self._exact.id_map), dtype=np.int64)

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored vectors of `ids`, in order."""
        if not len(ids):
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self._exact.reconstruct_batch(np.asarray(ids, dtype=np.int64)))

    def copy(self) -> FaissVectorIndex:
        coarse = None if self._coarse is None else faiss.clone_index(self._coarse)
        exact = faiss.clone_index(self._exact)
        return FaissVectorIndex(exact, coarse, self.approximate_from)  # type: ignore[arg-type]

    def save(self, path: Path) -> None:
        """Write atomically: readers of `path` see the old file or the new one, never half.

        One file: the exact index, then the IVF index if there is one.
        """
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as f:
            faiss.write_index(self._exact, faiss.PyCallbackIOWriter(f.write))  # type: ignore[attr-defined]
            if self._coarse is not None:
                faiss.write_index(self._coarse, faiss.PyCallbackIOWriter(f.write))  # type: ignore[attr-defined]
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> FaissVectorIndex:
        with path.open("rb") as f:
            first = _read_index(f)
            if isinstance(first, faiss.IndexIVF):
                # The earlier layout: one `IVF,Flat` index holding the full vectors. It
                # keeps serving as the candidate index; the exact vectors are copied out.
                return cls(_flat_copy(first), first)
            coarse = _read_index(f) if f.tell() < os.fstat(f.fileno()).st_size else None
        if not isinstance(first, faiss.IndexIDMap2) or not (
            coarse is None or isinstance(coarse, faiss.IndexIVF)
        ):
            raise ValueError(f"{path}: not a vector index written by FaissVectorIndex")
        return cls(first, coarse)


def _read_index(f: BinaryIO) -> faiss.Index:
    # FAISS returns the index as its own class; downcasting it again would leave two
    # owners of one index.
    return faiss.read_index(faiss.PyCallbackIOReader(f.read))  # type: ignore[attr-defined]


def _checked(vectors: np.ndarray, rows: int, dim: int) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.shape != (rows, dim):
        raise ValueError(f"expected vectors of shape ({rows}, {dim}), got {vectors.shape}")
    return vectors


def _flat(dim: int) -> faiss.IndexIDMap2:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def _flat_copy(ivf: faiss.IndexIVF) -> faiss.IndexIDMap2:
    """A flat index holding an `IVF,Flat` index's vectors under the same ids."""
    lists = ivf.invlists
    assert lists is not None  # an IVF index always has its lists
    parts = [
        faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
        for i in range(ivf.nlist)
        if lists.list_size(i)
    ]
    ids = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
    flat = _flat(ivf.d)
    if len(ids):
        flat.add_with_ids(ivf.reconstruct_batch(ids), ids)
    return flat


@contextmanager
def one_omp_thread() -> Iterator[None]:
    """FAISS's OpenMP team cut to this thread for a search of one query.

    The team of two makes one query slower, not faster (flat search of one query on these
    two cores: 2.9 against 1.2 ms wall at 20,000 vectors, 21.5 against 13.9 ms at 150,000,
    with 3-5x the CPU), and entering its parallel region waits at a barrier for a thread
    that may not get a core soon: on cores busy with the embedding, dense search took 3-7
    ms at p95 instead of 0.35 (docs/benchmarks.md). The setting is the calling thread's own
    (an OpenMP ICV), restored after.
    """
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _ivf(dim: int, ids: np.ndarray, vectors: np.ndarray) -> faiss.IndexIVF:
    """An `IVF,SQ8` index over `vectors`: lists and code ranges trained on a sample."""
    lists = ivf_lists(len(ids))
    # The factory's index owns its quantizer (one built here would be freed under it).
    ivf = faiss.index_factory(dim, f"IVF{lists},SQ8", faiss.METRIC_INNER_PRODUCT)
    assert isinstance(ivf, faiss.IndexIVF)
    ivf.cp.niter = 10
    sample = min(len(vectors), TRAIN_PER_LIST * lists)
    rows = np.random.default_rng(0).choice(len(vectors), size=sample, replace=False)
    ivf.train(vectors[np.sort(rows)])
    # The hash-table direct map makes removal by passage id cost the removed ids only.
    ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
    ivf.add_with_ids(vectors, ids)
    ivf.nprobe = min(lists, max(MIN_PROBES, math.ceil(lists * PROBE_SHARE)))
    return ivf
