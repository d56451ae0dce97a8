"""What the app holds between requests: settings, the gate, metrics, and, once loaded, the
pipelines of the collections and the ingestion queue."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from embeddings.base import Embedder
from rag.collections import Collections
from rag.pipeline import IngestReport, Pipeline
from rag.store.lock import IndexBusyError
from rag.types import Citation
from rag.wire import CitationSigner
from service.auth import Gate
from service.citation_tokens import CitationTokens
from service.jobs import JobQueue, JobStore, TakeFiles
from service.metrics import Metrics
from service.pipelines import MakeEmbedder, Pipelines
from service.settings import ServiceSettings
from service.shared import StateUnavailable, make_job_store

log = logging.getLogger("rag.service")

LoadPipeline = Callable[[ServiceSettings], Pipeline]

# A store away (Redis, Milvus: ConnectionError, StateUnavailable, the write lock's
# LockUnavailableError) or busy (another process's write lock) passes: loading is tried
# again after these, and the service becomes ready once the store is back. Any other error
# (a corrupt index, a model that does not load) is final.
_PASSING = (ConnectionError, IndexBusyError, StateUnavailable)
# Seconds between attempts: doubling from the first, up to the last.
RETRY_FIRST_S, RETRY_MAX_S = 1.0, 30.0


@dataclass
class ServiceState:
    settings: ServiceSettings
    gate: Gate
    metrics: Metrics = field(init=False)
    citations: CitationTokens = field(init=False)
    pipeline: Pipeline | None = None  # the default collection's
    pipelines: Pipelines | None = None  # every collection's, `pipeline` among them
    jobs: JobQueue | None = None
    error: str | None = None  # why loading failed, for /readyz
    waiting: str | None = None  # why loading is being tried again, for /readyz
    _stopping: threading.Event = field(default_factory=threading.Event, init=False)
    job_store: JobStore = field(init=False)
    # Builds the embedder of a collection created with another one than `pipeline`'s.
    make_embedder: MakeEmbedder | None = None

    def __post_init__(self) -> None:
        # In this process, or in Redis shared by every replica (service/shared.py).
        self.job_store = make_job_store(self.settings)
        self.metrics = Metrics(self.gauges)
        # Without configured secrets tokens still work, until this process ends (see
        # the warning at start-up).
        signing: list[str | bytes] = [*self.settings.citation_secrets] or [secrets.token_bytes(32)]
        self.citations = CitationTokens(signing, self.settings.citation_token_ttl_s)

    @property
    def collections(self) -> Collections:
        return Collections.of(self.settings)

    def signer(self, collection: str, pipeline: Pipeline) -> CitationSigner:
        """Signs each citation of one answer from `collection` with a token valid from now,
        for the version of its file that `pipeline` holds."""
        tokens, now = self.citations, time.time()
        versions: dict[str, str] = {}  # one look-up a file, however often it is cited

        def sign(citation: Citation) -> str:
            if citation.file not in versions:
                row = pipeline.document(citation.file)
                versions[citation.file] = "" if row is None else row.content_hash
            return tokens.issue(
                citation.file,
                citation.paragraph,
                citation.passage_id,
                now,
                collection,
                versions[citation.file],
            )

        return sign

    def load(self, load_pipeline: LoadPipeline) -> None:
        """Load the index and the model (in a worker thread: /healthz answers meanwhile),
        trying again while a store is away, until `stop_loading`."""
        delay = RETRY_FIRST_S
        while True:
            try:
                pipeline = self._open(load_pipeline)
                break
            except _PASSING as err:
                self.waiting = f"{type(err).__name__}: {err}; retrying in {delay:g} s"
                log.error("could not load the index: %s; retrying in %g s", err, delay)
            except Exception as err:
                log.critical("could not load the index or the model: %s", err)
                self.error, self.waiting = f"{type(err).__name__}: {err}", None
                return
            if self._stopping.wait(delay):
                return
            delay = min(2 * delay, RETRY_MAX_S)
        self.waiting = None
        make = self.make_embedder or (lambda name: _make_embedder(name, self.settings))
        self.pipelines = pipelines = Pipelines(self.settings, pipeline, make)

        def ingest_into(collection: str, take_files: TakeFiles) -> IngestReport:
            # The collection's pipeline when the job runs: it fails cleanly if removed.
            with pipelines.lease(collection) as opened:
                return opened.ingest(take_files(pipelines.settings_for(collection).uploads))

        self.jobs = JobQueue(
            self.job_store, pipeline.ingest, self.settings.uploads, into_collection=ingest_into
        )
        self.pipeline = pipeline  # set last: a non-None pipeline means ready
        log.info("ready: %d passages in %s", len(pipeline), pipeline.directory)

    def _open(self, load_pipeline: LoadPipeline) -> Pipeline:
        swept = self.collections.sweep()  # finish removals a crash interrupted
        if swept:
            log.warning("deleted what interrupted collection changes left: %s", swept)
        pipeline = load_pipeline(self.settings)
        try:
            # The first real question must not pay for jieba's dictionaries and the model's
            # first run (about a second).
            pipeline.warm_up()
        except BaseException:
            pipeline.close()  # tried again or given up: either way not kept
            raise
        return pipeline

    def stop_loading(self) -> None:
        """Stop trying to load (at shutdown): `load` returns within an attempt."""
        self._stopping.set()

    def close(self) -> None:
        if self.jobs is not None:
            self.jobs.shutdown()
        if self.pipelines is not None:
            self.pipelines.close()
        if self.pipeline is not None:
            self.pipeline.close()
        self.job_store.close()

    def gauges(self) -> Mapping[str, Mapping[str, float]]:
        values: dict[str, Mapping[str, float]] = {
            "rag_ready": {"": float(self.pipeline is not None)}
        }
        if self.pipelines is not None:
            # By collection, for those open in this process (opened by a request since it
            # started, or default).
            counts = self.pipelines.counts()
            values["rag_index_documents"] = {n: c["documents"] for n, c in counts.items()}
            values["rag_index_passages"] = {n: c["passages"] for n, c in counts.items()}
        if self.jobs is not None:
            try:
                jobs = self.jobs.counts()
                values["rag_ingest_jobs"] = {k: float(v) for k, v in jobs.items()}
            except StateUnavailable:
                pass  # Redis is away: no gauge, rather than no metrics at all
        return values


def _make_embedder(name: str, settings: ServiceSettings) -> Embedder:
    from embeddings.factory import make_embedder

    return make_embedder(name, settings.embedder_options())


def load_default_pipeline(settings: ServiceSettings) -> Pipeline:
    from embeddings.factory import make_embedder
    from rag.pipeline import open_pipeline

    return open_pipeline(settings, make_embedder(settings.embedder, settings.embedder_options()))
