"""What HTTP adds to a query: the service on loopback against the bare in-process pipeline.

    python -m eval.bench_http [--rounds N] [--clients C] [--index DIR]

Ingests the demo corpus (or opens `--index`), starts `rag serve` on a free port of
127.0.0.1, and times the same questions through `POST /v1/search` and `POST /v1/ask` and
through the in-process pipeline, interleaved round by round so both see the same machine
load. Then C concurrent clients (threads, one keep-alive connection each) against the
service and against the in-process pipeline. Prints one JSON object; latencies in ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from embeddings.factory import make_embedder
from eval.service import running_service
from rag.pipeline import Pipeline, open_pipeline
from rag.settings import Settings

DEMO = Path(__file__).resolve().parent.parent / "data" / "demo"

# Questions over the demo corpus, simplified and traditional, answerable and not.
QUESTIONS = (
    "质检总局局长是谁？",
    "王岐山在哪裡主持召開質量工作座談會？",
    "企业要强化哪些意识？",
    "全国质量技术监督工作座谈会在哪里召开？",
    "質檢總局副局長是誰？",
    "上海迪士尼乐园的门票多少钱？",
    "这次会议是哪一天召开的？",
    "质量工作座谈会的主要内容是什么？",
)

Call = Callable[[str], object]


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "p50": round(statistics.median(ordered), 2),
        "p95": round(cuts[94], 2),
        "max": round(ordered[-1], 2),
        "n": len(ordered),
    }


def timed(call: Call, question: str) -> float:
    started = time.perf_counter()
    call(question)
    return (time.perf_counter() - started) * 1000


def sequential(calls: dict[str, Call], rounds: int) -> dict[str, list[float]]:
    """Every call on every question, interleaved: round r runs all calls on question q."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for question in QUESTIONS:
            for name, call in calls.items():
                samples[name].append(timed(call, question))
    return samples


def concurrent(
    make_call: Callable[[], tuple[Call, Callable[[], None]]], clients: int, rounds: int
) -> dict[str, Any]:
    """`clients` threads, each asking every question `rounds` times with its own call."""

    def client(_: int) -> list[float]:
        call, close = make_call()
        try:
            return [timed(call, q) for _ in range(rounds) for q in QUESTIONS]
        finally:
            close()

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        samples = [ms for result in pool.map(client, range(clients)) for ms in result]
    wall = time.perf_counter() - started
    return {**percentiles(samples), "queries_per_s": round(len(samples) / wall, 1)}


def http_call(client: httpx.Client, path: str) -> Call:
    key = "query" if path == "/v1/search" else "question"

    def call(question: str) -> object:
        response = client.post(path, json={key: question})
        response.raise_for_status()
        return response.content

    return call


def in_process_calls(pipeline: Pipeline) -> dict[str, Call]:
    return {
        "search": lambda q: pipeline.retriever.search(q, pipeline.settings.top_k),
        "ask": lambda q: pipeline.ask(q),
    }


def run(index_dir: Path, rounds: int, clients: int) -> dict[str, Any]:
    settings = Settings(index_dir=index_dir)
    pipeline = open_pipeline(settings, make_embedder(settings.embedder))
    if not len(pipeline.index):
        pipeline.ingest([DEMO])
    local = in_process_calls(pipeline)
    for question in QUESTIONS:  # warm jieba and the model, as the service does at start
        local["ask"](question)
    result: dict[str, Any] = {"questions": len(QUESTIONS), "rounds": rounds}
    with running_service(index_dir) as url, httpx.Client(base_url=url, timeout=30) as http:
        calls = {
            "search_in_process": local["search"],
            "search_http": http_call(http, "/v1/search"),
            "ask_in_process": local["ask"],
            "ask_http": http_call(http, "/v1/ask"),
        }
        for call in calls.values():
            call(QUESTIONS[0])  # first connection and first request out of the way
        samples = sequential(calls, rounds)
        result["sequential"] = {name: percentiles(s) for name, s in samples.items()}
        for endpoint in ("search", "ask"):
            result["sequential"][f"{endpoint}_http_overhead_p50"] = round(
                statistics.median(samples[f"{endpoint}_http"])
                - statistics.median(samples[f"{endpoint}_in_process"]),
                2,
            )

        def http_client(path: str) -> Callable[[], tuple[Call, Callable[[], None]]]:
            def make() -> tuple[Call, Callable[[], None]]:
                client = httpx.Client(base_url=url, timeout=60)
                return http_call(client, path), client.close

            return make

        def in_process(name: str) -> Callable[[], tuple[Call, Callable[[], None]]]:
            return lambda: (local[name], lambda: None)

        result[f"concurrent_{clients}"] = {
            "search_in_process": concurrent(in_process("search"), clients, rounds),
            "search_http": concurrent(http_client("/v1/search"), clients, rounds),
            "ask_in_process": concurrent(in_process("ask"), clients, rounds),
            "ask_http": concurrent(http_client("/v1/ask"), clients, rounds),
        }
    pipeline.index.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="HTTP latency against in-process pipeline")
    parser.add_argument("--rounds", type=int, default=10, help="passes over the questions")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--index", type=Path, help="index dir [default: demo in a temp dir]")
    args = parser.parse_args(argv)
    if args.index is not None:
        result = run(args.index, args.rounds, args.clients)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = run(Path(tmp) / "index", args.rounds, args.clients)
    json.dump(result, sys.stdout, ensure_ascii=False, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
