"""What HTTP adds to a query: the service on loopback against the bare in-process pipeline.

    python -m bench.http [--rounds N] [--clients C] [--index DIR]

Ingests the demo corpus (or opens `--index`), starts `rag serve` on a free port of
127.0.0.1, and times the same questions through `POST /v1/search` and `POST /v1/ask`, then C
concurrent clients (threads, one keep-alive connection each). HTTP's share is measured two
ways in the same run: per request, the client's wall time minus the pipeline time the
service reports for that very request (`timings_ms.total`); and against this process running
the same pipeline in-process. Prints one JSON object; latencies in ms.

The in-process and HTTP phases run one after the other, not interleaved: the model's OpenMP
threads spin for some milliseconds after each call (libgomp's default wait policy), and
spinning in this process took CPU from the service and inflated HTTP times by ~20 ms.
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

from bench.service import running_service
from embeddings.factory import make_embedder
from eval import stats
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
# A pause between phases, so that one phase's spinning threads are asleep before the next.
SETTLE_S = 1.0


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 and max (`eval.stats`, the evaluator's definition) and the count."""
    return {**stats.percentiles(samples_ms, (95, 99), digits=2), "n": len(samples_ms)}


def timed(call: Call, question: str) -> float:
    started = time.perf_counter()
    call(question)
    return (time.perf_counter() - started) * 1000


def sequential(call: Call, rounds: int) -> list[float]:
    return [timed(call, question) for _ in range(rounds) for question in QUESTIONS]


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


class HttpCall:
    """POSTs a question; remembers the pipeline time the service reported for each."""

    def __init__(self, client: httpx.Client, path: str) -> None:
        self.client = client
        self.path = path
        self.key = "query" if path == "/v1/search" else "question"
        self.server_ms: list[float] = []

    def __call__(self, question: str) -> object:
        response = self.client.post(self.path, json={self.key: question})
        response.raise_for_status()
        self.server_ms.append(float(response.json()["timings_ms"]["total"]))
        return response.content


def in_process_calls(pipeline: Pipeline) -> dict[str, Call]:
    return {
        "search": lambda q: pipeline.search(q, pipeline.settings.top_k),
        "ask": lambda q: pipeline.ask(q),
    }


def run(index_dir: Path, rounds: int, clients: int) -> dict[str, Any]:
    settings = Settings(index_dir=index_dir)
    pipeline = open_pipeline(
        settings, make_embedder(settings.embedder, settings.embedder_options())
    )
    if not len(pipeline):
        pipeline.ingest([DEMO])
    local = in_process_calls(pipeline)
    for question in QUESTIONS:  # warm jieba and the model, as the service does at start
        local["ask"](question)
    result: dict[str, Any] = {"questions": len(QUESTIONS), "rounds": rounds}
    in_process = {name: sequential(call, rounds) for name, call in local.items()}
    time.sleep(SETTLE_S)
    with running_service(index_dir) as url, httpx.Client(base_url=url, timeout=30) as http:
        seq: dict[str, Any] = {}
        for name, path in (("search", "/v1/search"), ("ask", "/v1/ask")):
            call = HttpCall(http, path)
            call(QUESTIONS[0])  # the connection and the first request out of the way
            call.server_ms.clear()
            wall = sequential(call, rounds)
            seq[name] = {
                "in_process": percentiles(in_process[name]),
                "http": percentiles(wall),
                "service_pipeline": percentiles(call.server_ms),
                "http_overhead_p50": round(
                    statistics.median([w - s for w, s in zip(wall, call.server_ms, strict=True)]),
                    2,
                ),
                "http_minus_in_process_p50": round(
                    statistics.median(wall) - statistics.median(in_process[name]), 2
                ),
            }
        result["sequential"] = seq

        def http_client(path: str) -> Callable[[], tuple[Call, Callable[[], None]]]:
            def make() -> tuple[Call, Callable[[], None]]:
                client = httpx.Client(base_url=url, timeout=60)
                return HttpCall(client, path), client.close

            return make

        result[f"concurrent_{clients}"] = {
            "search_http": concurrent(http_client("/v1/search"), clients, rounds),
            "ask_http": concurrent(http_client("/v1/ask"), clients, rounds),
        }
    time.sleep(SETTLE_S)

    def local_client(name: str) -> Callable[[], tuple[Call, Callable[[], None]]]:
        return lambda: (local[name], lambda: None)

    result[f"concurrent_{clients}"].update(
        {
            "search_in_process": concurrent(local_client("search"), clients, rounds),
            "ask_in_process": concurrent(local_client("ask"), clients, rounds),
        }
    )
    pipeline.close()
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
