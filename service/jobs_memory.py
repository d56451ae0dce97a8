"""The job store of a single replica: jobs in this process, uploaded files in its directory.

The default without `RAG_REDIS_URL`. Nothing is shared: another replica would neither see
these jobs nor run them, and queued jobs end with the process.

A queued job's files wait under hidden names of their own and take their names when the job
is claimed: stored under their names at once, a later upload of the same name replaced them
before their job ran (a job into another collection then ingested the later file, and the
later job found no file).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from rag.collections import DEFAULT
from rag.pipeline import IngestReport
from service.jobs import KEEP_JOBS, STATUSES, Job, Status, new_job, now
from service.uploads import QUEUED_PREFIX, hold_upload, place_upload


class MemoryJobStore:
    """Jobs in a dict, the queue in a deque, files written to the upload directory at once.

    Args:
        uploads: The upload directory: a file is written there, under a hidden name of its
            job's, when it is submitted, and takes its name there (or in its collection's
            upload directory) when its job is claimed; it is ingested from there.
    """

    shared = False

    def __init__(self, uploads: Path) -> None:
        self._uploads = uploads
        self._jobs: dict[str, Job] = {}
        self._queue: deque[str] = deque()
        self._waiting: dict[str, list[Path]] = {}  # job id -> its files, in `job.files` order
        # Finished job ids by outcome, oldest finished first: only these are ever forgotten
        # (KEEP_JOBS of each, as in Redis); a queued or running job is some client's upload.
        self._finished: dict[Status, deque[str]] = {"done": deque(), "failed": deque()}
        self._lock = threading.Lock()

    def submit(self, files: Sequence[tuple[str, BinaryIO]], collection: str = DEFAULT) -> Job:
        job = new_job([name for name, _ in files], collection)
        waiting: list[Path] = []
        try:
            for _, content in files:
                # Named after its job: a leftover of a stopped process is told from the file
                # of a job still queued (service/leftovers.py).
                waiting.append(hold_upload(self._uploads, content, f"{QUEUED_PREFIX}{job.id}-"))
        except BaseException:
            for path in waiting:
                path.unlink(missing_ok=True)
            raise
        with self._lock:
            self._waiting[job.id] = waiting
            self._jobs[job.id] = job
            self._queue.append(job.id)
        return job

    def claim(self, worker: str) -> Job | None:
        with self._lock:
            if not self._queue:
                return None
            job = replace(
                self._jobs[self._queue.popleft()], status="running", started_at=now(), worker=worker
            )
            self._jobs[job.id] = job
            return job

    def take_files(self, job: Job, directory: Path) -> list[Path]:
        with self._lock:
            waiting = self._waiting.pop(job.id, [])
        if len(waiting) != len(job.files):
            raise FileNotFoundError(f"the uploaded files of job {job.id} are gone")
        return [
            place_upload(held, directory, name)
            for held, name in zip(waiting, job.files, strict=True)
        ]

    def heartbeat(self, job: Job) -> None:
        pass  # the worker is this process: it cannot die without the store

    def finish(self, job: Job, report: IngestReport | None, error: str | None) -> None:
        status: Status = "failed" if error is not None else "done"
        with self._lock:
            # A job that failed before taking its files (its collection was removed) no
            # longer needs them.
            untaken = self._waiting.pop(job.id, [])
            if job.id in self._jobs:
                self._jobs[job.id] = replace(
                    self._jobs[job.id], status=status, finished_at=now(), report=report, error=error
                )
                finished = self._finished[status]
                finished.append(job.id)
                while len(finished) > KEEP_JOBS:
                    self._jobs.pop(finished.popleft(), None)
        for path in untaken:
            path.unlink(missing_ok=True)

    def reap(self) -> int:
        return 0

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def counts(self) -> dict[Status, int]:
        counts: dict[Status, int] = dict.fromkeys(STATUSES, 0)
        with self._lock:
            for job in self._jobs.values():
                counts[job.status] += 1
        return counts

    def close(self) -> None:
        """Drop the files of the jobs still queued: they end with the process."""
        with self._lock:
            waiting, self._waiting = self._waiting, {}
        for paths in waiting.values():
            for path in paths:
                path.unlink(missing_ok=True)
