"""Distributed ingestion on a Ray cluster: parse in tasks, embed in actors, write here.

Ray Data streams the files through two stages: parse tasks (the pipeline's `prepare_file`:
read, hash, parse, clean, chunk) and a fixed pool of embedding actors (one model each,
batched, on CPU or GPU). The driver (this process) consumes the stream in the walk's order
and hands it to the pipeline's own writer (`Pipeline.ingest_prepared`): the same batches,
the same duplicate merging (exact and near, against the store and the MinHash index of
the one writer), the same names, ids and report as a local ingest of the same files.

Dedupe runs on the driver because it needs the whole index and one writer. The actors
embed ahead, before the writer decides what is new: each passage (by content hash) is
embedded by the file of its first occurrence in the walk's order (`FirstOccurrences`), which
is the one the writer needs a vector for, unless the file's indexed version holds it on a
`--reread` (the writer keeps the stored vectors of its unchanged passages, so the driver
ships each file's passage hashes to the actors; an edited file's unchanged passages are
still embedded ahead, and dropped). Near duplicates and duplicates
of passages other files indexed are embedded and then dropped (a cost, never a second
passage). A vector the writer needs and did not get is embedded on the driver. A file
whose content hash is the indexed one is neither parsed nor embedded, so a re-run after a
crash redoes only the batches that were not committed.

Every node reads the files itself: the paths must name the same files on every node (a
shared or replicated filesystem), and every node needs this package installed.
"""

from __future__ import annotations

import gc
import logging
import math
import pickle
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.base import Embedder
from rag.loaders.base import LoadOptions
from rag.pipeline import (
    EMBED_BATCH,
    IngestReport,
    Pipeline,
    PreparedFile,
    Skipped,
    load_options,
    prepare_file,
    shown,
    walk_files,
)
from rag.settings import Settings
from rag.text.identity import content_hash
from rag.text.script import fold_script

MakeEmbedder = Callable[[], Embedder]
PARSE_MEMORY = 256 * 1024 * 1024  # bytes a parse task reserves besides its file
# Told of each file as the driver receives it, with its number of chunks.
OnFile = Callable[[str, int], None]


@dataclass(frozen=True)
class ActorPlan:
    """How many embedding actors, and what each reserves; from the settings and the cluster."""

    actors: int
    cpus: float
    gpus: float
    parse_cpus: float


@dataclass
class RayIngestReport:
    """The pipeline's report, and what the cluster did for it."""

    report: IngestReport
    nodes: int  # alive nodes of the cluster
    plan: ActorPlan
    # Node ids of the actors that embedded, and what they embedded (chunks of changed
    # files, duplicates included) in how many seconds summed over actors.
    actor_nodes: set[str] = field(default_factory=set)
    embedded: int = 0
    actor_seconds: float = 0.0
    # Of the report's `seconds`, those the driver spent waiting for the cluster's next
    # file; the rest it spent writing (dedupe, store, vector index): the serial part.
    waited_seconds: float = 0.0


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise ImportError(
            "distributed ingestion needs the 'ray' extra: pip install .[ray]"
        ) from err
    return ray


def plan_actors(settings: Settings, resources: dict[str, float], nodes: int) -> ActorPlan:
    """The actor pool for the cluster's `resources` (Ray's `cluster_resources()`).

    Raises:
        ValueError: The cluster cannot hold the actors and one parse task beside them
            (a pool holding every CPU would leave the parse tasks waiting forever).
    """
    actors = settings.ray_actors
    if actors == 0:
        gpus = resources.get("GPU", 0.0)
        if settings.ray_actor_gpus > 0:
            actors = max(1, math.floor(gpus / settings.ray_actor_gpus))
        else:
            actors = max(1, nodes)
    plan = ActorPlan(
        actors, settings.ray_actor_cpus, settings.ray_actor_gpus, settings.ray_parse_cpus
    )
    cpus_needed = actors * plan.cpus + plan.parse_cpus
    cpus = resources.get("CPU", 0.0)
    if cpus + 1e-9 < cpus_needed:
        raise ValueError(
            f"the Ray cluster has {cpus:g} CPUs; {actors} embedding actors of "
            f"RAG_RAY_ACTOR_CPUS={plan.cpus:g} and a parse task of RAG_RAY_PARSE_CPUS="
            f"{plan.parse_cpus:g} need {cpus_needed:g}: lower them or set RAG_RAY_ACTORS"
        )
    gpus_needed = actors * plan.gpus
    if resources.get("GPU", 0.0) + 1e-9 < gpus_needed:
        raise ValueError(
            f"the Ray cluster has {resources.get('GPU', 0.0):g} GPUs; {actors} embedding actors "
            f"of RAG_RAY_ACTOR_GPUS={plan.gpus:g} need {gpus_needed:g}"
        )
    return plan


def connect(address: str | None) -> None:
    """Join the Ray cluster at `address` ("auto": the one started on this machine by
    `ray start`); None: Ray's default (RAY_ADDRESS, else a new single-node cluster)."""
    ray = _import_ray()
    if not ray.is_initialized():
        # Ray's and Ray Data's progress logs would interleave with the caller's progress bar.
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)


def disconnect() -> None:
    ray = _import_ray()
    if ray.is_initialized():
        # Free the object and actor references still held in reference cycles (Ray Data's
        # execution leaves them) while the core worker is whole. Freed by a garbage
        # collection that runs during the shutdown (Ray's own GC thread), such a reference
        # reaches a core worker being torn down, and Ray then ends the whole process: seen
        # once, when a test run's pytest process vanished mid-suite with "The core worker
        # has already been shutdown ... The process will exit" in the driver's Ray log.
        gc.collect()
        ray.shutdown()


def ingest_on_ray(
    pipeline: Pipeline,
    paths: Sequence[Path | str],
    make_embedder: MakeEmbedder,
    on_file: OnFile | None = None,
    prune: bool = False,
    reread: bool = False,
) -> RayIngestReport:
    """Ingest files and folders on the connected Ray cluster (see `connect`).

    Args:
        pipeline: The index to write to; its settings size the actor pool.
        paths: Files and folders, as for `Pipeline.ingest`.
        make_embedder: Builds the model inside each actor; it must be picklable (a
            module-level function or a `functools.partial` of one) and build the embedder
            the index was built with.
        prune: Then remove the documents not among these files (`Pipeline.ingest_prepared`).
        reread: Read unchanged files again too (`Pipeline.ingest`).

    Returns:
        The pipeline's report (per-file failures in `skipped`, with their reasons; embedding
        seconds summed over the actors) and the cluster's share of the work.

    Raises:
        ValueError: The cluster cannot hold the actor pool (`plan_actors`), or `prune` with
            no file found.
        IndexBusyError: Another process kept the index's write lock for too long.
    """
    ray = _import_ray()
    if not ray.is_initialized():
        connect(None)
    settings = pipeline.settings
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    plan = plan_actors(settings, ray.cluster_resources(), nodes)
    result = RayIngestReport(IngestReport(), nodes, plan)
    report = result.report

    def ignore(path: Path, reason: str) -> None:
        report.ignored.append(Skipped(shown(path), reason))

    def skip(path: Path, reason: str) -> None:
        report.skipped.append(Skipped(shown(path), reason))

    files = list(walk_files([Path(p) for p in paths], ignore, skip, report.unread_folders))
    started = time.perf_counter()

    def received() -> Iterator[PreparedFile]:
        # Runs inside `ingest_prepared`, under the index's write lock: the indexed hashes
        # read here stay true until this run itself writes.
        indexed = {} if reread else pipeline.indexed_hashes()
        # On a re-read, the passages of each file's indexed version: the writer keeps their
        # vectors (`IndexWriter._add`), so the actors need not embed them. A file's own
        # hashes only, as one string: a flat column, small per row. Not on other runs: they
        # skip unchanged files unparsed, and a look-up per indexed file (two queries each on
        # Milvus) would delay every re-run after a crash by minutes at 10^5 files.
        held = pipeline.indexed_passage_hashes(key for _, key in files) if reread else {}
        rows = [
            {
                "order": order,
                "path": str(path),
                "key": key,
                "indexed": indexed.get(key, ""),
                "reusable": " ".join(sorted(held.get(key, ()))),
            }
            for order, (path, key) in enumerate(files)
        ]
        stream = _stream(rows, settings, plan, make_embedder)
        try:
            while True:
                waiting = time.perf_counter()
                row = next(stream, None)
                result.waited_seconds += time.perf_counter() - waiting
                if row is None:
                    return
                item: PreparedFile = pickle.loads(row["item"])
                if row["node"]:
                    result.actor_nodes.add(str(row["node"]))
                result.embedded += int(row["embedded"])
                result.actor_seconds += float(row["seconds"])
                if on_file is not None:
                    on_file(item.key, len(item.chunks))
                yield item
        finally:
            stream.close()  # a failed write stops the cluster's work too

    if files:
        pipeline.ingest_prepared(received(), report, prune, reread)
    elif prune:  # refused there: pruning after a run that found no file empties the index
        pipeline.ingest_prepared((), report, prune)
    report.embed_seconds += result.actor_seconds
    report.seconds = time.perf_counter() - started
    return result


def _stream(
    rows: list[dict[str, Any]], settings: Settings, plan: ActorPlan, make_embedder: MakeEmbedder
) -> Generator[dict[str, Any], None, None]:
    """The Ray Data pipeline: files -> parse tasks -> embedding actors -> here, in order."""
    ray = _import_ray()
    context = ray.data.DataContext.get_current()
    # In order: the writer then assigns the ids a local ingest would, and merges duplicates
    # into the same first passage.
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False  # the caller shows files and passages per second
    # Enough blocks and batches to keep every actor busy on a small run; at most
    # `ray_files_per_task` files per parse task and `ray_files_per_batch` per model call.
    blocks = min(
        len(rows), max(math.ceil(len(rows) / settings.ray_files_per_task), 4 * plan.actors)
    )
    per_batch = min(settings.ray_files_per_batch, math.ceil(len(rows) / (2 * plan.actors)))
    first = ray.remote(num_cpus=0)(FirstOccurrences).remote()
    try:
        dataset = ray.data.from_items(rows, override_num_blocks=blocks)
        dataset = dataset.map(
            _parse,
            fn_kwargs={"options": load_options(settings), "chunk_size": settings.chunk_size},
            num_cpus=plan.parse_cpus,
            # Room for a file at the size limit, decoded and parsed. Reserving what the
            # actors do not also keeps Ray Data from fusing the parsing into the actors
            # (it fuses stages whose reservations match): parsing stays in its own tasks.
            memory=PARSE_MEMORY + 4 * settings.max_file_mb * 1024 * 1024,
        )
        # Actors are placed with Ray Data's default SPREAD strategy: one per node before two
        # on one, each with its own model.
        dataset = dataset.map_batches(
            EmbedActor,
            fn_constructor_kwargs={"make_embedder": make_embedder, "first": first},
            batch_size=per_batch,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=plan.actors),
            num_cpus=plan.cpus,
            num_gpus=plan.gpus,
        )
        yield from dataset.iter_rows()
    finally:
        ray.kill(first)


def _parse(row: dict[str, Any], options: LoadOptions, chunk_size: int) -> dict[str, Any]:
    """A parse task's work on one file: the pipeline's `prepare_file`, pickled for the stream."""
    path, key = Path(row["path"]), str(row["key"])
    try:
        item = prepare_file(path, key, options, chunk_size, row["indexed"] or None)
    except Exception as err:  # a loader's bug must not fail the other files of the run
        item = PreparedFile(str(path), key, error=f"unexpected error reading it ({err!r})")
    return {"order": row["order"], "item": pickle.dumps(item), "reusable": row["reusable"]}


class FirstOccurrences:
    """Which file, in the walk's order, is the first seen so far to hold each passage.

    The writer embeds an exact duplicate once, for its first occurrence in the walk's order;
    the actors ask here so that the other files holding it skip it. Right whatever order the
    actors ask in: the first file in order is always told it is first; a later file told so
    (because it asked earlier) only embeds a passage the writer will not need.
    """

    def __init__(self) -> None:
        self._first: dict[str, int] = {}

    def claim(self, files: list[tuple[int, list[str]]]) -> list[list[bool]]:
        """For each (order, content hashes) of a file: is it the first to hold each hash?"""
        owned: dict[int, list[bool]] = {}
        for order, hashes in sorted(files):
            owned[order] = [self._claim(order, digest) for digest in hashes]
        return [owned[order] for order, _ in files]

    def _claim(self, order: int, digest: str) -> bool:
        first = self._first.get(digest)
        if first is None or order <= first:
            self._first[digest] = order
            return True
        return False


class EmbedActor:
    """One embedding model, loaded once, that embeds the chunks of a batch of parsed files."""

    def __init__(self, make_embedder: MakeEmbedder, first: Any) -> None:
        ray = _import_ray()
        self._embedder = make_embedder()
        self._first = first  # the `FirstOccurrences` actor
        self._node = str(ray.get_runtime_context().get_node_id())

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        ray = _import_ray()
        items: list[PreparedFile] = [pickle.loads(data) for data in batch["item"]]
        orders = [int(order) for order in batch["order"]]
        claims = [
            (order, [content_hash(c.text) for c in item.chunks] if item.document else [])
            for order, item in zip(orders, items, strict=True)
        ]
        owned = ray.get(self._first.claim.remote(claims))
        # Each file's passages to embed, folded as the writer embeds them, once each: those
        # it holds first, less those whose stored vectors the writer reuses. (Those are still
        # claimed: a later file holding one is an exact duplicate the writer embeds nothing for.)
        wanted = []
        for item, (_, hashes), flags, held in zip(
            items, claims, owned, batch["reusable"], strict=True
        ):
            reusable = set(str(held).split())
            fresh = (
                fold_script(c.text)
                for c, digest, mine in zip(item.chunks, hashes, flags, strict=True)
                if mine and digest not in reusable
            )
            wanted.append(list(dict.fromkeys(fresh)))
        texts = [text for texts in wanted for text in texts]
        started = time.perf_counter()
        vectors = self._embedder.embed(texts, kind="passage", batch_size=EMBED_BATCH)
        seconds = time.perf_counter() - started
        out: dict[str, list[Any]] = {"item": [], "node": [], "embedded": [], "seconds": []}
        at = 0
        for item, mine in zip(items, wanted, strict=True):
            if item.document is not None:
                ahead = dict(zip(mine, vectors[at : at + len(mine)], strict=True))
                item = replace(item, vectors=ahead, vector_space=self._embedder.name)
            at += len(mine)
            out["item"].append(pickle.dumps(item))
            out["node"].append(self._node if mine else "")
            out["embedded"].append(len(mine))
            out["seconds"].append(seconds * len(mine) / len(texts) if texts else 0.0)
        return out
