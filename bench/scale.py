"""How retrieval cost grows with the corpus: dense indexes, BM25 and ingest at 10^4..10^6.

    nice -n 10 python -m bench.scale ../shared/datasets [--sizes 10000,100000,1000000]
        [--results docs/img/scale.json] [--milvus-max 100000] [--bm25-max 100000]

Synthetic corpora (`bench.synthetic`): clustered 384-dimensional unit vectors shaped like
e5-small's, and passages resampled from CMRC 2018 / DRCD sentences. For each size it
measures, one query at a time on one FAISS thread (as the service searches: one query per
thread, on that thread alone, `rag.store.faiss.one_omp_thread`): p50/p95 latency and
recall@10 against exact search of

- FAISS flat (exact); the local backend's automatic choice (`ivf`: candidates from
  `IVF,SQ8`, re-scored from the exact vectors), with sweeps of `nprobe` and of the
  re-ranking depth; `IVF,Flat` on the same lists (`ivf_flat`, the previous choice); HNSW
  (a sweep of `efSearch`); and Milvus Lite (with the `scale` extra);
- bytes per passage of each index;
- BM25 (bm25s over the default tokenizer's tokens, bigram2): build time, size on disk, query time;
- ingest cost per passage outside embedding (at the smallest size): SQLite writes, MinHash
  dedupe, BM25 build, FAISS add.

Results accumulate in `--results` (JSON keyed by size, so a big size can run alone) and the
table and plots (docs/img/scale_*.png) are made from everything in it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from bench.synthetic import clustered_vectors, dataset_texts, queries_near, resampled_passages
from rag.store.faiss import RERANK, FaissVectorIndex
from rag.text.script import fold_script
from rag.text.tokenize import bigram2_tokens

K = 10
DIM = 384
TARGET_RECALL = 0.98
NPROBE_SHARES = (1 / 32, 1 / 16, 1 / 8, 3 / 16, 1 / 4, 3 / 8)
RERANKS = (1, 2, 4, 10)  # candidates re-scored exactly, per result
EF_SEARCH = (32, 64, 128, 256)
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 64

Search = Callable[[np.ndarray], list[int]]


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def latencies(search: Search, queries: np.ndarray) -> tuple[list[list[int]], dict[str, float]]:
    """Each query's top ids, and p50/p95 milliseconds of one query at a time.

    Wall-clock times on a machine shared by other jobs include waiting for a core; the
    query thread's CPU time (`cpu_p50_ms`) is what the query costs on a core of its own.
    """
    found, times, cpu = [], [], []
    search(queries[0])  # warm caches
    for q in queries:
        start, start_cpu = time.perf_counter(), time.thread_time()
        found.append(search(q))
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.thread_time() - start_cpu) * 1000)
    return found, {
        "p50_ms": round(float(np.percentile(times, 50)), 3),
        "p95_ms": round(float(np.percentile(times, 95)), 3),
        "cpu_p50_ms": round(float(np.percentile(cpu, 50)), 3),
    }


def resident_bytes() -> int:
    """This process's resident memory now (Linux), to see what an index holds in RAM."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def recall(found: list[list[int]], exact: np.ndarray) -> float:
    hits = sum(len(set(f[:K]) & set(e.tolist())) for f, e in zip(found, exact, strict=True))
    return round(hits / exact.size, 4)


def file_bytes(index: faiss.Index, folder: Path) -> int:
    path = folder / "index.faiss"
    faiss.write_index(index, str(path))
    size = path.stat().st_size
    path.unlink()
    return size


def ours(index: FaissVectorIndex) -> Search:
    def search(q: np.ndarray) -> list[int]:
        return [i for i, _ in index.search(q, K)]

    return search


def faiss_search(index: faiss.Index) -> Search:
    def search(q: np.ndarray) -> list[int]:
        return [int(i) for i in index.search(q[None, :], K)[1][0]]

    return search


def dense(n: int, queries: int, milvus: bool, hnsw_too: bool, folder: Path) -> dict[str, Any]:
    """Latency, recall and bytes per passage of each dense index over `n` vectors."""
    out: dict[str, Any] = {}
    start = time.perf_counter()
    vectors = clustered_vectors(n, DIM, seed=0)
    q, _ = queries_near(vectors, queries)
    ids = list(range(n))
    out["generate_s"] = round(time.perf_counter() - start, 1)

    faiss.omp_set_num_threads(2)  # builds use both cores
    flat = FaissVectorIndex.build(DIM, ids, vectors, approximate_from=n + 1)
    # Ground truth in one batched exact search (BLAS), then single-query timings.
    exact = flat.native.search(q, K)[1]
    faiss.omp_set_num_threads(1)
    found, timing = latencies(ours(flat), q)
    out["flat"] = {**timing, "recall": recall(found, exact)}
    out["flat"]["bytes_per_passage"] = round(file_bytes(flat.native, folder) / n)
    del flat

    # The local backend's approximate index, as FaissVectorIndex builds it at this size:
    # candidates from `IVF,SQ8`, re-scored from the exact vectors.
    faiss.omp_set_num_threads(2)
    start, start_cpu, rss = time.perf_counter(), time.process_time(), resident_bytes()
    auto = FaissVectorIndex.build(DIM, ids, vectors, approximate_from=1)
    build = (time.perf_counter() - start, time.process_time() - start_cpu)
    rss = resident_bytes() - rss
    coarse: Any = auto.coarse  # an IndexIVF; the stubs only know the base class
    faiss.omp_set_num_threads(1)
    probes = sorted({max(1, math.ceil(coarse.nlist * share)) for share in NPROBE_SHARES})
    default_nprobe, sweep = coarse.nprobe, {}
    for nprobe in probes:
        coarse.nprobe = nprobe
        found, timing = latencies(ours(auto), q)
        sweep[nprobe] = {**timing, "recall": recall(found, exact)}
    coarse.nprobe = default_nprobe
    reranks = {}
    for factor in RERANKS:
        auto.rerank = factor
        found, timing = latencies(ours(auto), q)
        reranks[factor] = {**timing, "recall": recall(found, exact)}
    auto.rerank = RERANK
    found, timing = latencies(ours(auto), q)
    auto.save(folder / "auto.faiss")
    out["ivf"] = {
        **timing,
        "recall": recall(found, exact),
        "index": f"IVF{coarse.nlist},SQ8 + exact re-ranking of {RERANK}k",
        "nlist": coarse.nlist,
        "nprobe": default_nprobe,
        "rerank": RERANK,
        "build_s": round(build[0], 1),
        "build_cpu_s": round(build[1], 1),
        "bytes_per_passage": round((folder / "auto.faiss").stat().st_size / n),
        "resident_bytes_per_passage": round(rss / n),
        "sweep": sweep,
        "rerank_sweep": reranks,
    }
    (folder / "auto.faiss").unlink()
    # The previous default, `IVF,Flat` on the same lists, side by side in this run.
    faiss.omp_set_num_threads(2)
    quantizer = faiss.clone_index(coarse.quantizer)
    ivf_flat = faiss.IndexIVFFlat(quantizer, DIM, coarse.nlist, faiss.METRIC_INNER_PRODUCT)
    ivf_flat.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))
    faiss.omp_set_num_threads(1)
    flat_sweep = {}
    for nprobe in probes:
        ivf_flat.nprobe = nprobe
        found, timing = latencies(faiss_search(ivf_flat), q)
        flat_sweep[nprobe] = {**timing, "recall": recall(found, exact)}
    out["ivf_flat"] = {
        **flat_sweep[default_nprobe],
        "nlist": coarse.nlist,
        "nprobe": default_nprobe,
        "bytes_per_passage": round(file_bytes(ivf_flat, folder) / n),
        "sweep": flat_sweep,
    }
    del auto, coarse, ivf_flat, quantizer
    if hnsw_too:
        out["hnsw"] = hnsw(vectors, q, exact, folder)
    if milvus:
        out["milvus_lite"] = milvus_lite(vectors, q, exact, folder)
    return out


def hnsw(vectors: np.ndarray, q: np.ndarray, exact: np.ndarray, folder: Path) -> dict[str, Any]:
    """FAISS HNSW (flat storage): the fastest per query, but it cannot remove vectors."""
    n = len(vectors)
    faiss.omp_set_num_threads(2)
    start = time.perf_counter()
    index = faiss.IndexHNSWFlat(DIM, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.add(vectors)
    build_s = time.perf_counter() - start
    faiss.omp_set_num_threads(1)
    sweep = {}
    for ef in EF_SEARCH:
        index.hnsw.efSearch = ef
        found, timing = latencies(faiss_search(index), q)
        sweep[ef] = {**timing, "recall": recall(found, exact)}
    best = next((ef for ef in EF_SEARCH if sweep[ef]["recall"] >= TARGET_RECALL), EF_SEARCH[-1])
    out = {
        **sweep[best],
        "m": HNSW_M,
        "ef_construction": HNSW_EF_CONSTRUCTION,
        "ef_search": best,
        "build_s": round(build_s, 1),
        "bytes_per_passage": round(file_bytes(index, folder) / n),
        "sweep": sweep,
    }
    return out


def milvus_lite(
    vectors: np.ndarray, q: np.ndarray, exact: np.ndarray, folder: Path
) -> dict[str, Any]:
    """The same search through Milvus Lite (pymilvus's embedded server, one local file)."""
    try:
        from pymilvus import MilvusClient
    except ImportError:
        return {"skipped": "install the 'scale' extra: pip install .[scale]"}
    path = folder / "milvus.db"
    client = MilvusClient(str(path))
    try:
        client.create_collection("scale", dimension=DIM, metric_type="IP", auto_id=False)
        start = time.perf_counter()
        for s in range(0, len(vectors), 5000):
            rows = [
                {"id": s + i, "vector": v.tolist()} for i, v in enumerate(vectors[s : s + 5000])
            ]
            client.insert("scale", rows)
        client.flush("scale")
        insert_s = time.perf_counter() - start

        def search(x: np.ndarray) -> list[int]:
            hits = client.search("scale", data=[x.tolist()], limit=K)
            return [int(h["id"]) for h in hits[0]]

        found, timing = latencies(search, q)
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    finally:
        client.close()
        shutil.rmtree(path, ignore_errors=True)
        for extra in folder.glob("*milvus*"):
            shutil.rmtree(extra, ignore_errors=True) if extra.is_dir() else extra.unlink()
    return {
        **timing,
        "recall": recall(found, exact),
        "insert_s": round(insert_s, 1),
        "bytes_per_passage": round(size / len(vectors)),
    }


def bm25(n: int, contexts: list[str], questions: list[str], folder: Path) -> dict[str, Any]:
    """Build time, size and query time of the project's BM25 index over `n` passages."""
    from rag.store.bm25s import Bm25sLexicalIndex

    passages = resampled_passages(contexts, n)
    start = time.perf_counter()
    tokens = [bigram2_tokens(fold_script(p)) for p in passages]
    tokenize_s = time.perf_counter() - start
    del passages
    start = time.perf_counter()
    index = Bm25sLexicalIndex.build(list(range(n)), tokens)
    build_s = time.perf_counter() - start
    del tokens
    index.save(folder / "lexical")
    size = sum(f.stat().st_size for f in (folder / "lexical").rglob("*") if f.is_file())
    loaded = Bm25sLexicalIndex.load(folder / "lexical")
    query_tokens = [bigram2_tokens(fold_script(q)) for q in questions[:200]]
    times = []
    for tokens_q in query_tokens:
        start = time.perf_counter()
        loaded.search(tokens_q, K)
        times.append((time.perf_counter() - start) * 1000)
    shutil.rmtree(folder / "lexical")
    return {
        "tokenize_us_per_passage": round(tokenize_s / n * 1e6, 1),
        "build_us_per_passage": round(build_s / n * 1e6, 1),
        "bytes_per_passage": round(size / n),
        "p50_ms": round(float(np.percentile(times, 50)), 3),
        "p95_ms": round(float(np.percentile(times, 95)), 3),
    }


def ingest_costs(n: int, contexts: list[str], folder: Path) -> dict[str, Any]:
    """Microseconds per passage of each ingest step but embedding, over `n` passages."""
    from rag.ingest.chunk import chunk_document
    from rag.ingest.clean import clean_paragraphs
    from rag.ingest.dedupe import NearDuplicateIndex, signature_bytes
    from rag.ingest.paragraphs import RawParagraph
    from rag.store.bm25s import Bm25sLexicalIndex
    from rag.store.sqlite import STORE_FILE, SQLiteStore, create_store
    from rag.text.identity import content_hash
    from rag.text.offsets import MappedText
    from rag.types import Document, SourceText

    passages = resampled_passages(contexts, n, seed=5)
    vectors = clustered_vectors(n, DIM, seed=5)
    per_doc = 8
    docs = []
    for d in range(0, n, per_doc):
        lines = passages[d : d + per_doc]
        raw, offset = [], 0
        for i, line in enumerate(lines):
            raw.append(RawParagraph(i + 1, MappedText.from_source(line, offset), i + 1, i + 1))
            offset += len(line) + 1
        path = f"doc{d}.txt"
        source = SourceText(path, "\n".join(lines), "utf-8", "text")
        doc = Document(source, tuple(clean_paragraphs(raw, path)), f"h{d}")
        docs.append((path, doc, list(chunk_document(doc, 400))))
    chunks = sum(len(c) for _, _, c in docs)

    near = NearDuplicateIndex(0.85, 128, 3)
    signatures = []
    clock = Clock()
    for _, _, doc_chunks in docs:
        for chunk in doc_chunks:
            signatures.append(near.signature(chunk.text))
    signature_s = clock.lap()
    for pid, signature in enumerate(signatures):
        near.find(signature)
        near.add(pid, signature)
    lsh_s = clock.lap()

    create_store(folder / STORE_FILE, {"embedder": "synthetic"})
    store = SQLiteStore(folder / STORE_FILE)
    clock.lap()
    row = 0
    for b in range(0, len(docs), 64):  # the pipeline's batches: one transaction each
        with store.transaction():
            for path, doc, doc_chunks in docs[b : b + 64]:
                doc_id = store.insert_document(path, doc)
                for chunk in doc_chunks:
                    digest = content_hash(chunk.text)
                    known = store.passage_id_by_hash(digest)
                    pid = (
                        known
                        if known is not None
                        else store.insert_passage(
                            chunk.text,
                            fold_script(chunk.text),
                            digest,
                            signature_bytes(signatures[row]),
                            vectors[row % n],
                        )
                    )
                    store.insert_source(pid, doc_id, chunk.source)
                    row += 1
            store.bump_generation()
    store_s = clock.lap()
    store.close()
    store_bytes = sum(f.stat().st_size for f in folder.glob(STORE_FILE + "*"))

    clock.lap()
    FaissVectorIndex.build(DIM, list(range(n)), vectors, approximate_from=n + 1)
    faiss_s = clock.lap()
    tokens = [bigram2_tokens(fold_script(p)) for p in passages]
    tokenize_s = clock.lap()
    Bm25sLexicalIndex.build(list(range(n)), tokens)
    bm25_s = clock.lap()

    def us(pair: tuple[float, float], count: int) -> dict[str, float]:
        return {
            "wall_us": round(pair[0] / count * 1e6, 1),
            "cpu_us": round(pair[1] / count * 1e6, 1),
        }

    return {
        "passages": chunks,
        "minhash_signature": us(signature_s, chunks),
        "minhash_lsh": us(lsh_s, chunks),
        "sqlite_write": us(store_s, chunks),
        "sqlite_bytes_per_passage": round(store_bytes / chunks),
        "faiss_flat_add": us(faiss_s, n),
        "bm25_tokenize": us(tokenize_s, n),
        "bm25_build": us(bm25_s, n),
    }


class Clock:
    """Wall and process CPU seconds since the last lap."""

    def __init__(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        out = (wall - self._wall, cpu - self._cpu)
        self._wall, self._cpu = wall, cpu
        return out


def print_table(results: dict[str, Any]) -> None:
    sizes = sorted(results["sizes"], key=int)
    print(
        f"{'passages':>9} {'index':<12} {'p50 ms':>8} {'p95 ms':>8} {'recall@10':>9} "
        f"{'B/passage':>9}  params"
    )
    for size in sizes:
        r = results["sizes"][size]
        for name in ("flat", "ivf", "ivf_flat", "hnsw", "milvus_lite"):
            row = r.get(name)
            if not row or "skipped" in row:
                continue
            params = {
                "ivf": f"nlist {row.get('nlist')} nprobe {row.get('nprobe')} SQ8+rerank",
                "ivf_flat": f"nlist {row.get('nlist')} nprobe {row.get('nprobe')}",
                "hnsw": f"M {row.get('m')} efSearch {row.get('ef_search')}",
            }.get(name, "")
            print(
                f"{int(size):>9} {name:<12} {row['p50_ms']:>8} {row['p95_ms']:>8} "
                f"{row['recall']:>9} {row['bytes_per_passage']:>9}  {params}"
            )
        if "bm25" in r:
            b = r["bm25"]
            print(
                f"{int(size):>9} {'bm25':<12} {b['p50_ms']:>8} {b['p95_ms']:>8} "
                f"{'':>9} {b['bytes_per_passage']:>9}  build {b['build_us_per_passage']} us/p"
            )
        print(f"{'':>9} load average at the end: {r['load_average']}")
    if "ingest" in results:
        print("ingest per passage:", json.dumps(results["ingest"]))


def plot(results: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(results["sizes"], key=int)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for name, style in (
        ("flat", "o-"),
        ("ivf", "s-"),
        ("ivf_flat", "v:"),
        ("hnsw", "^-"),
        ("milvus_lite", "d-"),
        ("bm25", "x--"),
    ):
        xs = [
            int(s)
            for s in sizes
            if name in results["sizes"][s] and "p50_ms" in results["sizes"][s][name]
        ]
        if not xs:
            continue
        rows = [results["sizes"][str(x)][name] for x in xs]
        # The query thread's CPU time; Milvus Lite searches in its own server process and
        # BM25 has no CPU column, so wall time for those two.
        key = "p50_ms" if name in ("milvus_lite", "bm25") else "cpu_p50_ms"
        axes[0].plot(xs, [r[key] for r in rows], style, label=name)
        axes[2].plot(xs, [r["bytes_per_passage"] for r in rows], style, label=name)
        if name != "bm25":
            axes[1].plot(xs, [r["recall"] for r in rows], style, label=name)
    axes[0].axhline(20, color="grey", ls=":", label="target 20 ms")
    axes[1].axhline(TARGET_RECALL, color="grey", ls=":", label=f"target {TARGET_RECALL}")
    for ax, title in zip(
        axes,
        ("p50 per query, ms (CPU; wall: Milvus, BM25)", "recall@10 vs exact", "bytes per passage"),
        strict=True,
    ):
        ax.set_xscale("log")
        ax.set_xlabel("passages")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_yscale("log")
    axes[2].set_yscale("log")
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "scale.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("datasets", type=Path)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--milvus-max", type=int, default=100_000)
    parser.add_argument("--hnsw-max", type=int, default=1_000_000)
    parser.add_argument("--bm25-max", type=int, default=100_000)
    parser.add_argument("--ingest", type=int, default=10_000, help="passages; 0 skips")
    parser.add_argument("--results", type=Path, default=Path("docs/img/scale.json"))
    parser.add_argument("--plots", type=Path, default=Path("docs/img"))
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"sizes": {}}
    if args.results.exists():
        results = json.loads(args.results.read_text())
    contexts, questions = dataset_texts(args.datasets)

    def save() -> None:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(results, indent=1, ensure_ascii=False))

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.ingest:
            results["ingest"] = ingest_costs(args.ingest, contexts, folder)
            results["ingest"]["load_average"] = load_average()
            save()
        for n in (int(s) for s in args.sizes.split(",")):
            print(f"{n} passages ... (load average {load_average()})", file=sys.stderr)
            row = dense(n, args.queries, n <= args.milvus_max, n <= args.hnsw_max, folder)
            if n <= args.bm25_max:
                row["bm25"] = bm25(n, contexts, questions, folder)
            row["load_average"] = load_average()
            # Parts skipped this time (HNSW, Milvus, BM25) keep their earlier figures.
            results["sizes"].setdefault(str(n), {}).update(row)
            save()
    print_table(results)
    plot(results, args.plots)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
