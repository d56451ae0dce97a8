"""Dense vector index: FAISS inner product over normalised embeddings, addressed by passage id.

The index type follows the corpus size (`index_kind`): exact flat search while it is fast
enough, an inverted-file index (IVF) beyond. Both keep every vector retrievable by id
(`vectors`, `similarities`), so `rag check` can compare them with the store, and both remove
by id. HNSW, faster still per query, cannot remove a vector in FAISS, so it is not used;
docs/benchmarks.md ("Scale") has the measurements behind the thresholds.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import faiss
import numpy as np

# Passages from which an IVF index replaces exact search. Measured on 384-dimensional
# clustered vectors (bench/scale.py, docs/benchmarks.md "Scale"): flat search costs
# 0.05-0.08 ms of CPU per 1000 passages per query on one core, 80 ms at 10^6, so it
# passes the 20 ms retrieval budget near 250,000. An IVF index goes back to flat below
# half this (hysteresis: a corpus hovering at the threshold is not retrained every commit).
APPROXIMATE_FROM = 200_000
# Lists probed per query, as a share of the lists. At 10^6 clustered passages (2,000 lists)
# recall@10 against exact search was 0.87 probing 1/16, 0.94 at 1/8, 0.97 at 3/16 and 0.985
# at 1/4 (25 ms of CPU a query, against 80 ms for flat search); at 10^4, 1/16 gave 0.997.
# Recall falls as the corpus grows, so the share is set for the largest size measured.
PROBE_SHARE = 1 / 4
# ...and never fewer lists than this (a small IVF index has few, large lists).
MIN_PROBES = 8
# k-means on at most this many training vectors per list, 10 iterations (the whole build at
# 10^6 took 527 s of wall time at load average 25).
TRAIN_PER_LIST = 40
# An IVF index is rebuilt (new lists) when the corpus outgrows its lists by this factor.
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
    A flat index is exact; an IVF index (`IVF<lists>,Flat`, ids kept by FAISS's hash-table
    direct map) scans the lists nearest the query and keeps the full vectors, so scores of
    the passages it returns are exact and only the candidate set is approximate.
    """

    def __init__(self, index: faiss.Index, approximate_from: int = APPROXIMATE_FROM) -> None:
        self._index = index
        self.approximate_from = approximate_from

    @classmethod
    def empty(cls, dim: int, approximate_from: int = APPROXIMATE_FROM) -> FaissVectorIndex:
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), approximate_from)

    @classmethod
    def build(
        cls,
        dim: int,
        ids: Sequence[int],
        vectors: np.ndarray,
        approximate_from: int = APPROXIMATE_FROM,
    ) -> FaissVectorIndex:
        """An index of the kind `len(ids)` calls for, holding `vectors` under `ids`."""
        if index_kind(len(ids), approximate_from=approximate_from) == "ivf":
            vectors = _checked(vectors, len(ids), dim)
            return cls(_ivf(dim, np.asarray(ids, dtype=np.int64), vectors), approximate_from)
        index = cls.empty(dim, approximate_from)
        index.add(ids, vectors)
        return index

    @property
    def native(self) -> faiss.Index:
        """The FAISS index itself, for benchmarks that tune and measure it (bench/scale.py)."""
        return self._index

    @property
    def kind(self) -> str:
        return "ivf" if isinstance(self._index, faiss.IndexIVF) else "flat"

    @property
    def dim(self) -> int:
        return int(self._index.d)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vectors = _checked(vectors, len(ids), self.dim)
        self._index.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))
        self._refit()

    def remove(self, ids: Sequence[int]) -> None:
        if len(ids):
            # FAISS's Python wrapper accepts an id array here; its type stubs only know
            # the IDSelector overload.
            self._index.remove_ids(np.asarray(ids, dtype=np.int64))  # type: ignore[arg-type]
            self._refit()

    def _refit(self) -> None:
        """Change the index type (or an IVF's lists) when the size calls for it."""
        n = len(self)
        kind = index_kind(n, self.kind, self.approximate_from)
        if kind == self.kind and (
            kind == "flat" or self._index.nlist * REFIT_GROWTH > ivf_lists(n)  # type: ignore[attr-defined]
        ):
            return
        ids = self.ids()
        vectors = self.vectors(ids)  # type: ignore[arg-type]
        if kind == "ivf":
            self._index = _ivf(self.dim, ids, vectors)
        else:
            flat = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
            flat.add_with_ids(vectors, ids)
            self._index = flat

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Top `k` `(passage id, cosine similarity)` pairs, best first."""
        if len(self) == 0 or k <= 0:
            return []
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        scores, ids = self._index.search(q, min(k, len(self)))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def similarities(self, query: np.ndarray, ids: Iterable[int]) -> dict[int, float]:
        """Cosine similarity of the query to given stored passages (exact, by reconstruction)."""
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        out: dict[int, float] = {}
        for pid in ids:
            try:
                out[pid] = float(self._index.reconstruct(int(pid)) @ q)
            except RuntimeError:
                continue  # id not in the index (removed meanwhile)
        return out

    def ids(self) -> np.ndarray:
        """Every stored passage id (`rag check` compares them with the store's)."""
        index = self._index
        if isinstance(index, faiss.IndexIVF):
            lists = index.invlists
            assert lists is not None  # an IVF index always has its lists
            parts = [
                faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                for i in range(index.nlist)
                if lists.list_size(i)
            ]
            return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
        # Otherwise an IndexIDMap2 (see `empty`); the stubs only know the base class.
        id_map = index.id_map  # type: ignore[attr-defined]
        return np.asarray(faiss.vector_to_array(id_map), dtype=np.int64)

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored vectors of `ids`, in order."""
        if not len(ids):
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self._index.reconstruct_batch(np.asarray(ids, dtype=np.int64)))

    def copy(self) -> FaissVectorIndex:
        return FaissVectorIndex(faiss.clone_index(self._index), self.approximate_from)

    def save(self, path: Path) -> None:
        """Write atomically: readers of `path` see the old file or the new one, never half."""
        tmp = path.with_name(path.name + ".tmp")
        faiss.write_index(self._index, str(tmp))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> FaissVectorIndex:
        return cls(faiss.read_index(str(path)))


def _checked(vectors: np.ndarray, rows: int, dim: int) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.shape != (rows, dim):
        raise ValueError(f"expected vectors of shape ({rows}, {dim}), got {vectors.shape}")
    return vectors


def _ivf(dim: int, ids: np.ndarray, vectors: np.ndarray) -> faiss.IndexIVF:
    """An IVF index over `vectors`, its lists trained on a sample of them."""
    lists = ivf_lists(len(ids))
    # The factory's index owns its quantizer (one built here would be freed under it).
    ivf = faiss.index_factory(dim, f"IVF{lists},Flat", faiss.METRIC_INNER_PRODUCT)
    assert isinstance(ivf, faiss.IndexIVF)
    ivf.cp.niter = 10
    sample = min(len(vectors), TRAIN_PER_LIST * lists)
    rows = np.random.default_rng(0).choice(len(vectors), size=sample, replace=False)
    ivf.train(vectors[np.sort(rows)])
    # The hash-table direct map keeps `reconstruct` and `remove_ids` working by passage id.
    ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
    ivf.add_with_ids(vectors, ids)
    ivf.nprobe = min(lists, max(MIN_PROBES, math.ceil(lists * PROBE_SHARE)))
    return ivf
