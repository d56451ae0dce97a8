"""Background ingestion: uploads become jobs run one at a time by a single worker thread."""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from rag.pipeline import IngestReport

log = logging.getLogger("rag.service")

Status = Literal["queued", "running", "done", "failed"]
Ingest = Callable[[Sequence[Path]], IngestReport]

# Finished jobs kept for `GET /v1/jobs/{id}`; older ones are forgotten first.
KEEP_JOBS = 1000


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Job:
    id: str
    files: list[str]
    status: Status = "queued"
    created_at: str = field(default_factory=_now)
    started_at: str | None = None
    finished_at: str | None = None
    report: IngestReport | None = None
    error: str | None = None


class JobQueue:
    """Runs ingestion jobs in submission order on one thread, remembering recent jobs.

    One worker because the index has one writer; queries keep being served meanwhile.
    """

    def __init__(self, ingest: Ingest) -> None:
        self._ingest = ingest
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest")
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()

    def submit(self, files: list[str], paths: Sequence[Path]) -> Job:
        job = Job(uuid.uuid4().hex, files)
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > KEEP_JOBS:
                self._jobs.popitem(last=False)
        self._executor.submit(self._run, job, list(paths))
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def counts(self) -> dict[Status, int]:
        with self._lock:
            counts: dict[Status, int] = {"queued": 0, "running": 0, "done": 0, "failed": 0}
            for job in self._jobs.values():
                counts[job.status] += 1
            return counts

    def _run(self, job: Job, paths: list[Path]) -> None:
        job.status, job.started_at = "running", _now()
        try:
            job.report = self._ingest(paths)
            job.status = "done"
        except Exception as err:  # a failed job is reported, never kills the worker
            log.exception("ingestion job %s failed", job.id)
            job.error, job.status = f"{type(err).__name__}: {err}", "failed"
        finally:
            job.finished_at = _now()

    def shutdown(self) -> None:
        """Finish the running job (the index stays consistent either way), drop queued ones."""
        self._executor.shutdown(wait=True, cancel_futures=True)
