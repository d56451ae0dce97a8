"""Background ingestion: uploads become jobs, kept in a job store, run by a worker thread.

The store (`JobStore`) holds the jobs, their uploaded files until they run, and their
status; the worker (`JobQueue`) claims one job at a time from it, ingests its files and
records the outcome. With the in-memory store (`service.jobs_memory`) that is one process,
as it always was; with the Redis store (`service.jobs_redis`) every replica's worker claims
from one queue, each job is claimed by exactly one of them, and any replica can tell a
job's status. One job at a time per worker because the index has one writer at a time
anyway (the write lock); queries keep being served meanwhile.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol

from rag.collections import DEFAULT
from rag.pipeline import IngestReport, Skipped
from service.leftovers import SWEEP_S, sweep_leftovers
from service.shared import StateUnavailable

log = logging.getLogger("rag.service")

Status = Literal["queued", "running", "done", "failed"]
STATUSES: tuple[Status, ...] = ("queued", "running", "done", "failed")
Ingest = Callable[[Sequence[Path]], IngestReport]
# A claimed job's files, written into the directory given (`JobStore.take_files`).
TakeFiles = Callable[[Path], list[Path]]
# Ingests a job's files into a collection other than default: (collection, take_files).
IngestInto = Callable[[str, TakeFiles], IngestReport]

# Finished jobs kept for `GET /v1/jobs/{id}`, of each outcome (done, failed); the oldest
# finished are forgotten first. Queued and running jobs are never forgotten.
KEEP_JOBS = 1000
# A worker looks for jobs submitted through other replicas this often (one small request
# to the store); a job submitted through its own replica wakes it at once.
POLL_S = 0.5
# A running job's worker renews its lease this often; a job whose lease ran out (its
# worker's process died) is marked failed by the next worker that looks (see `reap`).
HEARTBEAT_S = 5.0
LEASE_S = 30.0
# How long a worker waits before asking an unavailable store again.
RETRY_S = 2.0


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Job:
    id: str
    files: list[str]
    status: Status = "queued"
    created_at: str = field(default_factory=now)
    started_at: str | None = None
    finished_at: str | None = None
    report: IngestReport | None = None
    error: str | None = None
    worker: str | None = None  # which replica's worker claimed it
    collection: str = DEFAULT  # the collection it ingests into (rag/collections.py)


def new_job(files: list[str], collection: str = DEFAULT) -> Job:
    return Job(uuid.uuid4().hex, list(files), collection=collection)


class JobStore(Protocol):
    """Jobs, their files until they run, and their status; shared or not (`shared`).

    Raises `service.shared.StateUnavailable` when the place it keeps them cannot be reached.
    """

    shared: bool  # whether other processes (replicas) see the same jobs

    def submit(self, files: Sequence[tuple[str, BinaryIO]], collection: str = DEFAULT) -> Job:
        """Keep the files (name, content) and queue a job to ingest them into `collection`."""
        ...

    def claim(self, worker: str) -> Job | None:
        """The oldest queued job, now running for `worker`, or None; each job goes to one."""
        ...

    def take_files(self, job: Job, directory: Path) -> list[Path]:
        """Write a claimed job's files into `directory` (once) and return their paths."""
        ...

    def heartbeat(self, job: Job) -> None:
        """Renew the lease of a running job: its worker is alive."""
        ...

    def finish(self, job: Job, report: IngestReport | None, error: str | None) -> None:
        """Record how a claimed job ended: `report` if it ran, `error` if it failed."""
        ...

    def reap(self) -> int:
        """Mark failed the running jobs whose worker stopped renewing; how many."""
        ...

    def get(self, job_id: str) -> Job | None: ...

    def counts(self) -> dict[Status, int]: ...

    def close(self) -> None: ...


def report_to_json(report: IngestReport) -> dict[str, Any]:
    return asdict(report)


def report_from_json(data: dict[str, Any]) -> IngestReport:
    kinds = ("skipped", "ignored", "notes", "removed")
    # A report stored by an older version may lack a later kind.
    lists = {key: [Skipped(**item) for item in data.get(key, [])] for key in kinds}
    return IngestReport(**{**data, **lists})


def worker_name() -> str:
    """Names this process's worker in job records: which host and process ran a job."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class JobQueue:
    """Submits jobs to a store, and runs the jobs it claims from it on one thread.

    Args:
        store: Where jobs wait and what became of them.
        ingest: Ingests a list of files (the pipeline's `ingest`).
        uploads: This process's upload directory: a claimed job's files are written there
            and ingested from there (their path is what `/raw` serves).
        into_collection: Runs a job of a collection other than default (which chooses
            where its files go); unset, such a job fails.

    The upload files a stopped process left in `uploads` are removed when it starts (before
    it returns) and every `SWEEP_S` after (`service.leftovers`).
    """

    def __init__(
        self,
        store: JobStore,
        ingest: Ingest,
        uploads: Path,
        poll_s: float = POLL_S,
        into_collection: IngestInto | None = None,
    ) -> None:
        self.store = store
        self.worker = worker_name()
        self._ingest = ingest
        self._into_collection = into_collection
        self._uploads = uploads
        self._poll_s = poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._next_sweep = 0.0
        self._sweep()
        self._thread = threading.Thread(target=self._work, name="ingest", daemon=True)
        self._thread.start()

    def submit(self, files: Sequence[tuple[str, BinaryIO]], collection: str = DEFAULT) -> Job:
        job = self.store.submit(files, collection)
        self._wake.set()
        return job

    def get(self, job_id: str) -> Job | None:
        return self.store.get(job_id)

    def counts(self) -> dict[Status, int]:
        return self.store.counts()

    def shutdown(self) -> None:
        """Finish the running job (the index stays consistent either way), then stop.

        Queued jobs stay in a shared store for the other replicas; an in-memory store's
        are dropped with the process, as before.
        """
        self._stop.set()
        self._wake.set()
        self._thread.join()

    # -- the worker -----------------------------------------------------------------------

    def _sweep(self) -> None:
        if time.monotonic() < self._next_sweep:
            return
        self._next_sweep = time.monotonic() + SWEEP_S
        try:
            sweep_leftovers(self._uploads, self.store)
        except StateUnavailable as err:  # only a cleanup: the next sweep tries again
            log.warning("upload files left by stopped processes stay for now: %s", err)
        except Exception:
            log.exception("could not remove the upload files left by stopped processes")

    def _work(self) -> None:
        outage = False
        while not self._stop.is_set():
            self._sweep()
            try:
                self.store.reap()
                job = self.store.claim(self.worker)
            except StateUnavailable as err:
                if not outage:
                    log.error("ingestion paused: %s", err)
                outage = True
                self._stop.wait(RETRY_S)
                continue
            except Exception:  # a bad record, a bug: never a silently dead worker
                log.exception("the ingestion worker could not claim a job; retrying")
                self._stop.wait(RETRY_S)
                continue
            if outage:
                log.info("ingestion resumed: the job store answers again")
                outage = False
            if job is None:
                self._wake.wait(self._poll_s)
                self._wake.clear()
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        beating = threading.Event()
        heart = threading.Thread(
            target=self._beat, args=(job, beating), name="ingest-heartbeat", daemon=True
        )
        heart.start()
        report: IngestReport | None = None
        error: str | None = None
        try:
            if job.collection == DEFAULT:
                report = self._ingest(self.store.take_files(job, self._uploads))
            elif self._into_collection is None:
                raise RuntimeError(f"this worker cannot ingest into {job.collection!r}")
            else:
                take = partial(self.store.take_files, job)
                report = self._into_collection(job.collection, take)
        except Exception as err:  # a failed job is reported, never kills the worker
            log.exception("ingestion job %s failed", job.id)
            error = f"{type(err).__name__}: {err}"
        finally:
            beating.set()
            heart.join()
        self._record(job, report, error)

    def _beat(self, job: Job, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_S):
            try:
                self.store.heartbeat(job)
            except StateUnavailable as err:
                log.warning("could not renew job %s's lease: %s", job.id, err)

    def _record(self, job: Job, report: IngestReport | None, error: str | None) -> None:
        # The work is done: keep trying to say so (until shutdown), rather than leave the
        # job to be reaped as if its worker had died.
        while True:
            try:
                self.store.finish(job, report, error)
                return
            except StateUnavailable as err:
                log.error("could not record the end of job %s: %s; retrying", job.id, err)
                if self._stop.wait(RETRY_S):
                    return
