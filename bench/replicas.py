"""What shared state costs a request: the in-memory implementations against Redis.

    python -m bench.replicas [--rounds N]

Starts its own redis-server on 127.0.0.1 (a loopback round trip: a Redis on another host
adds the network's) and times, per operation, with the median and p95 over `rounds`:
the widget rate-limit check (`Gate.check` with a publishable key), a job's whole life in
the store (submit a 10 KB file, claim, take the file, finish), an idle worker's poll
(reap + claim, what each replica spends every 0.5 s), and the write lock's acquire +
release (file lock, then file + Redis layered).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

from bench.redis_server import redis_server
from rag.pipeline import IngestReport
from rag.store.lock import IndexLock, WriteLock
from rag.store.locking import shared_write_lock
from service.auth import Action, Gate
from service.jobs import JobStore
from service.settings import ServiceSettings
from service.shared import make_job_store, make_rate_storage

WIDGET, SITE = "pk_bench_widget", "https://shop.example.com"
FILE = "熊猫基地位于成都北郊。\n".encode() * 300  # about 10 KB


def timed(operation: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Median and p95 of `operation`, in microseconds."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        operation()
        samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def measure(settings: ServiceSettings, rounds: int) -> dict[str, tuple[float, float]]:
    gate = Gate(settings, make_rate_storage(settings))
    store: JobStore = make_job_store(settings)
    taken = settings.uploads  # where the service has a worker take them

    def job_life() -> None:
        store.submit([("熊猫.txt", BytesIO(FILE))])
        job = store.claim("bench")
        assert job is not None
        store.take_files(job, taken)
        store.finish(job, IngestReport(files=1), None)

    def idle_poll() -> None:
        store.reap()
        store.claim("bench")

    own = WriteLock(settings.index_dir, settings.lock_timeout)
    lock: IndexLock = shared_write_lock(settings, str(settings.index_dir), own) or own

    def write_lock() -> None:
        lock.acquire()
        lock.release()

    def rate_check() -> None:
        gate.check(Action.ASK, WIDGET, SITE, "http://127.0.0.1", "198.51.100.7")

    results = {
        "widget rate-limit check": timed(rate_check, rounds),
        "job: submit, claim, take file, finish": timed(job_life, rounds),
        "idle worker poll (reap + claim)": timed(idle_poll, rounds),
        "write lock acquire + release": timed(write_lock, rounds),
    }
    store.close()
    return results


def settings(index_dir: Path, redis_url: str | None, rounds: int) -> ServiceSettings:
    index_dir.mkdir()
    return ServiceSettings(
        index_dir=index_dir,
        redis_url=redis_url,
        publishable_keys=[WIDGET],
        allowed_origins=[SITE],
        widget_rate_limit=f"{10 * rounds}/hour",  # never refuses here
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="in-memory vs Redis state, per operation")
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp) / "redis") as server:
        figures = {
            name: measure(settings(Path(tmp) / name, url, args.rounds), args.rounds)
            for name, url in (("memory", None), ("shared", server.url))
        }
    print(f"| operation ({args.rounds} rounds) | in memory: median / p95 µs |", end="")
    print(" Redis: median / p95 µs |\n| --- | --- | --- |")
    for name in figures["memory"]:
        m, r = figures["memory"][name], figures["shared"][name]
        print(f"| {name} | {m[0]:.0f} / {m[1]:.0f} | {r[0]:.0f} / {r[1]:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
