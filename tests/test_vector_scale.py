"""The local vector index changes type with the corpus size and stays exact where it matters."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from bench.synthetic import clustered_vectors
from rag.store.faiss import FaissVectorIndex, index_kind

DIM = 32
N = 3000
THRESHOLD = 1000


def corpus() -> tuple[list[int], np.ndarray]:
    # Clustered like real embeddings (bench/synthetic.py); ids far from row numbers.
    return [7 + 3 * i for i in range(N)], clustered_vectors(N, DIM, seed=3)


def test_the_kind_follows_the_size_with_hysteresis() -> None:
    assert index_kind(999, approximate_from=THRESHOLD) == "flat"
    assert index_kind(1000, approximate_from=THRESHOLD) == "ivf"
    assert index_kind(600, "ivf", approximate_from=THRESHOLD) == "ivf"
    assert index_kind(499, "ivf", approximate_from=THRESHOLD) == "flat"


def test_a_large_enough_index_is_approximate_and_still_finds_each_stored_vector() -> None:
    ids, vectors = corpus()
    index = FaissVectorIndex.build(DIM, ids, vectors, approximate_from=THRESHOLD)
    assert index.kind == "ivf" and len(index) == N
    for row in range(0, N, 60):
        (pid, score), *_ = index.search(vectors[row], 5)
        assert pid == ids[row] and abs(score - 1.0) < 1e-5
    # Every vector stays recoverable by id (`rag check`, edits reusing vectors).
    assert sorted(index.ids().tolist()) == ids
    assert np.allclose(index.vectors(ids[::97]), vectors[::97], atol=1e-6)


def test_candidates_come_from_8_bit_codes_and_scores_from_the_exact_vectors() -> None:
    ids, vectors = corpus()
    index = FaissVectorIndex.build(DIM, ids, vectors, approximate_from=THRESHOLD)
    assert isinstance(index.coarse, faiss.IndexIVFScalarQuantizer)
    rows = {pid: row for row, pid in enumerate(ids)}
    query = vectors[1234] + vectors[77]
    query /= np.linalg.norm(query)
    found = index.search(query, 10)
    assert len(found) == 10 and [s for _, s in found] == sorted((s for _, s in found), reverse=True)
    for pid, score in found:
        assert abs(score - float(vectors[rows[pid]] @ query)) < 1e-5


def test_an_index_that_grows_past_the_threshold_switches_and_keeps_everything() -> None:
    ids, vectors = corpus()
    index = FaissVectorIndex.build(DIM, ids[:800], vectors[:800], approximate_from=THRESHOLD)
    assert index.kind == "flat"
    index.add(ids[800:], vectors[800:])
    assert index.kind == "ivf" and sorted(index.ids().tolist()) == ids
    assert index.search(vectors[2500], 1)[0][0] == ids[2500]


def test_removals_work_and_shrink_it_back_to_exact_search(tmp_path: Path) -> None:
    ids, vectors = corpus()
    index = FaissVectorIndex.build(DIM, ids, vectors, approximate_from=THRESHOLD)
    index.remove(ids[:2000])
    assert index.kind == "ivf" and len(index) == 1000
    assert ids[0] not in {pid for pid, _ in index.search(vectors[0], 10)}
    index.save(tmp_path / "v.faiss")
    loaded = FaissVectorIndex.load(tmp_path / "v.faiss")
    assert loaded.kind == "ivf" and loaded.search(vectors[2100], 1)[0][0] == ids[2100]
    assert sorted(loaded.ids().tolist()) == ids[2000:]
    assert loaded.coarse is not None and loaded.coarse.ntotal == 1000
    index.remove(ids[2000:2600])
    assert index.kind == "flat" and sorted(index.ids().tolist()) == ids[2600:]
    assert index.search(vectors[2700], 1)[0][0] == ids[2700]


def test_an_index_saved_in_the_earlier_single_ivf_layout_still_loads(tmp_path: Path) -> None:
    # Before the 8-bit candidate index, an approximate index was one `IVF,Flat` file.
    ids, vectors = corpus()
    old = faiss.index_factory(DIM, "IVF20,Flat", faiss.METRIC_INNER_PRODUCT)
    old.train(vectors)
    old.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
    old.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))
    faiss.write_index(old, str(tmp_path / "v.faiss"))
    loaded = FaissVectorIndex.load(tmp_path / "v.faiss")
    assert loaded.kind == "ivf" and sorted(loaded.ids().tolist()) == ids
    assert np.allclose(loaded.vectors(ids[::97]), vectors[::97], atol=1e-6)
    loaded.remove(ids[:10])
    assert loaded.search(vectors[500], 1)[0][0] == ids[500] and len(loaded) == N - 10


class _Threads:
    """Stands in front of a FAISS index and notes the OpenMP team each search would get."""

    def __init__(self, index: faiss.Index) -> None:
        self.index = index
        self.seen: list[int] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.index, name)

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self.seen.append(faiss.omp_get_max_threads())
        scores, ids = self.index.search(q, k)
        return scores, ids


def test_a_query_is_searched_on_this_thread_alone_and_the_setting_is_restored() -> None:
    # One query is never split across threads, but waking FAISS's OpenMP team for it cost
    # 5-7 ms at p95 on busy cores (docs/benchmarks.md).
    ids, vectors = corpus()
    flat = FaissVectorIndex.build(DIM, ids[:500], vectors[:500], approximate_from=THRESHOLD)
    ivf = FaissVectorIndex.build(DIM, ids, vectors, approximate_from=THRESHOLD)
    assert ivf._coarse is not None
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(2)
    try:
        flat._exact = spy_flat = _Threads(flat._exact)  # type: ignore[assignment]
        ivf._coarse = spy_ivf = _Threads(ivf._coarse)  # type: ignore[assignment]
        assert flat.search(vectors[3], 5)[0][0] == ids[3]
        assert ivf.search(vectors[700], 5)[0][0] == ids[700]
        assert spy_flat.seen == spy_ivf.seen == [1]
        assert faiss.omp_get_max_threads() == 2
    finally:
        faiss.omp_set_num_threads(before)
