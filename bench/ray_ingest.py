"""Ingestion on Ray against a local ingest with the same cores, side by side in one run.

    nice -n 10 python -m bench.ray_ingest ../shared/datasets [--contexts N] [--rounds R]

Writes the first N contexts of DRCD dev and CMRC 2018 dev as documents, then ingests them
into fresh indexes, alternating: locally with one model thread, on a one-node Ray cluster
(one CPU), locally with two threads, on a two-node cluster (one CPU each); `--rounds`
times. A run is timed from loading the model(s) to the index committed; each runs in its
own process (the model's thread count is fixed when it loads) and each cluster is real
(`bench.ray_cluster`), started before its run. Prints one table, with the load average over
each run (the machine may be shared), and the figures the projection to N nodes in
docs/benchmarks.md is made from.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

from bench.ray_cluster import local_cluster

# A one-CPU node holds one embedding actor and one parse task beside it.
ACTOR_CPUS = PARSE_CPUS = 0.5


def run_local(corpus: Path, index: Path) -> dict[str, Any]:
    from embeddings.factory import make_embedder
    from rag.pipeline import open_pipeline
    from rag.settings import Settings

    started = time.perf_counter()  # from loading the model to the index committed
    with open_pipeline(Settings(index_dir=index), make_embedder("e5-small")) as pipeline:
        report = pipeline.ingest([corpus])
    return {
        "seconds": time.perf_counter() - started,
        "passages": report.new_passages,
        "chunks": report.chunks,
        "files": report.files,
        "embed_seconds": report.embed_seconds,
    }


def run_ray(corpus: Path, index: Path, address: str) -> dict[str, Any]:
    from embeddings.factory import make_embedder
    from rag.distributed.ray_ingest import connect, disconnect, ingest_on_ray
    from rag.pipeline import open_pipeline
    from rag.settings import Settings

    settings = Settings(index_dir=index, ray_actor_cpus=ACTOR_CPUS, ray_parse_cpus=PARSE_CPUS)
    # From joining the cluster (its nodes already run) and loading the driver's model to
    # the index committed: the actors load theirs inside `ingest_on_ray`.
    started = time.perf_counter()
    connect(address)
    try:
        with open_pipeline(settings, make_embedder("e5-small")) as pipeline:
            ingesting = time.perf_counter()
            result = ingest_on_ray(pipeline, [corpus], functools.partial(make_embedder, "e5-small"))
            seconds = time.perf_counter() - started
    finally:
        disconnect()
    report = result.report
    return {
        "seconds": seconds,
        "passages": report.new_passages,
        "chunks": report.chunks,
        "files": report.files,
        "embedded": result.embedded,
        "actors": result.plan.actors,
        "actor_nodes": len(result.actor_nodes),
        "actor_seconds": result.actor_seconds,
        "waited_seconds": result.waited_seconds,
        "startup_seconds": ingesting - started,
    }


def _one(kind: str, corpus: Path, threads: int, address: str | None) -> dict[str, Any]:
    """Run one configuration in a fresh process; its figures and the load around it."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "bench.ray_ingest", "--one", kind, str(corpus)]
        command += ["--index", str(Path(tmp) / "index")]
        if address:
            command += ["--address", address]
        load_before = os.getloadavg()[0]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        load_after = os.getloadavg()[0]
    if done.returncode != 0:
        raise RuntimeError(f"{kind} run failed:\n{done.stderr[-4000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    figures["load"] = (load_before + load_after) / 2
    return figures


def _corpus(datasets: Path, contexts: int, target: Path) -> Path:
    from eval.datasets import first_contexts, load_squad, write_corpus

    sets = [
        first_contexts(load_squad(datasets / name), contexts)
        for name in ("drcd_dev.json", "cmrc2018_dev.json")
    ]
    write_corpus(sets, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Ray ingest vs local ingest, same cores")
    parser.add_argument("source", type=Path, help="the datasets folder (or a corpus with --one)")
    parser.add_argument("--contexts", type=int, default=30, help="contexts per dataset")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--one", choices=["local", "ray"], help=argparse.SUPPRESS)
    parser.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one == "local":
        print(json.dumps(run_local(args.source, args.index)))
        return 0
    if args.one == "ray":
        print(json.dumps(run_ray(args.source, args.index, args.address)))
        return 0

    runs: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = _corpus(args.source, args.contexts, Path(tmp) / "corpus")
        for _ in range(args.rounds):
            runs.setdefault("local, 1 thread", []).append(_one("local", corpus, 1, None))
            with local_cluster(nodes=1, cpus_per_node=1) as cluster:
                runs.setdefault("Ray, 1 node x 1 CPU", []).append(
                    _one("ray", corpus, 1, cluster.address)
                )
            runs.setdefault("local, 2 threads", []).append(_one("local", corpus, 2, None))
            with local_cluster(nodes=2, cpus_per_node=1) as cluster:
                runs.setdefault("Ray, 2 nodes x 1 CPU", []).append(
                    _one("ray", corpus, 1, cluster.address)
                )
    _print_table(runs)
    return 0


def _print_table(runs: dict[str, list[dict[str, Any]]]) -> None:
    def med(name: str, key: str) -> float:
        return median(float(r[key]) for r in runs[name])

    first = runs["local, 1 thread"][0]
    print(f"corpus: {first['files']} files, {first['chunks']} chunks, {first['passages']} passages")
    header = ["run", "cores", "wall s", "passages/s", "vs local, same cores", "load avg"]
    rows = []
    for name, cores, reference in (
        ("local, 1 thread", 1, None),
        ("Ray, 1 node x 1 CPU", 1, "local, 1 thread"),
        ("local, 2 threads", 2, None),
        ("Ray, 2 nodes x 1 CPU", 2, "local, 2 threads"),
    ):
        wall = med(name, "seconds")
        versus = "" if reference is None else f"{wall / med(reference, 'seconds') - 1:+.1%}"
        rows.append(
            [
                name,
                str(cores),
                f"{wall:.1f}",
                f"{med(name, 'passages') / wall:.2f}",
                versus,
                ", ".join(f"{r['load']:.1f}" for r in runs[name]),
            ]
        )
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    print("| Ray run | actors | embedded | actor-s | per actor, passages/s | driver writing s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in ("Ray, 1 node x 1 CPU", "Ray, 2 nodes x 1 CPU"):
        actors = int(med(name, "actors"))
        embedded, actor_s = med(name, "embedded"), med(name, "actor_seconds")
        writing = med(name, "seconds") - med(name, "waited_seconds")
        print(
            f"| {name} | {actors} | {embedded:.0f} | {actor_s:.1f} | "
            f"{embedded / actor_s:.2f} | {writing:.1f} |"
        )


if __name__ == "__main__":
    raise SystemExit(main())
