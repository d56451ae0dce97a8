"""What the app holds between requests: settings, the gate, metrics, and, once loaded, the
pipeline and its ingestion queue."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from rag.pipeline import Pipeline
from rag.settings import Settings
from service.auth import Gate
from service.jobs import JobQueue
from service.metrics import Metrics

log = logging.getLogger("rag.service")

LoadPipeline = Callable[[Settings], Pipeline]

# Asked once after loading, so the first real question does not pay for jieba's dictionary
# and the model's first run (about a second).
WARM_UP_QUESTION = "预热问题是什么？"


@dataclass
class ServiceState:
    settings: Settings
    gate: Gate
    metrics: Metrics = field(init=False)
    pipeline: Pipeline | None = None
    jobs: JobQueue | None = None
    error: str | None = None  # why loading failed, for /readyz

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.gauges)

    def load(self, load_pipeline: LoadPipeline) -> None:
        """Load the index and the model (in a worker thread: /healthz answers meanwhile)."""
        try:
            pipeline = load_pipeline(self.settings)
            pipeline.warm_up(WARM_UP_QUESTION)
        except Exception as err:
            log.critical("could not load the index or the model: %s", err)
            self.error = f"{type(err).__name__}: {err}"
            return
        self.jobs = JobQueue(pipeline.ingest)
        self.pipeline = pipeline  # set last: a non-None pipeline means ready
        log.info("ready: %d passages in %s", len(pipeline.index), pipeline.index.directory)

    def close(self) -> None:
        if self.jobs is not None:
            self.jobs.shutdown()
        if self.pipeline is not None:
            self.pipeline.index.close()

    def gauges(self) -> Mapping[str, Mapping[str, float]]:
        values: dict[str, Mapping[str, float]] = {
            "rag_ready": {"": float(self.pipeline is not None)}
        }
        if self.pipeline is not None:
            counts = self.pipeline.index.counts()
            values["rag_index_documents"] = {"": counts["documents"]}
            values["rag_index_passages"] = {"": counts["passages"]}
        if self.jobs is not None:
            values["rag_ingest_jobs"] = {k: float(v) for k, v in self.jobs.counts().items()}
        return values


def load_default_pipeline(settings: Settings) -> Pipeline:
    from embeddings.factory import make_embedder
    from rag.pipeline import open_pipeline

    return open_pipeline(settings, make_embedder(settings.embedder, settings.embedder_options()))
