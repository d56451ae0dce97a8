"""The job store of a single replica: jobs in this process, uploaded files in its directory.

The default without `RAG_REDIS_URL`. Nothing is shared: another replica would neither see
these jobs nor run them, and queued jobs end with the process.
"""

from __future__ import annotations

import shutil
import threading
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from rag.collections import DEFAULT
from rag.pipeline import IngestReport
from service.jobs import KEEP_JOBS, STATUSES, Job, Status, new_job, now
from service.uploads import store_upload


class MemoryJobStore:
    """Jobs in a dict, the queue in a deque, files written to the upload directory at once.

    Args:
        uploads: The upload directory: a file is stored there when it is submitted (as
            before job stores), and ingested from there.
    """

    shared = False

    def __init__(self, uploads: Path) -> None:
        self._uploads = uploads
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queue: deque[str] = deque()
        self._lock = threading.Lock()

    def submit(self, files: Sequence[tuple[str, BinaryIO]], collection: str = DEFAULT) -> Job:
        job = new_job([name for name, _ in files], collection)
        for name, content in files:
            store_upload(self._uploads, name, content)
        with self._lock:
            self._jobs[job.id] = job
            self._queue.append(job.id)
            while len(self._jobs) > KEEP_JOBS:
                self._jobs.popitem(last=False)
        return job

    def claim(self, worker: str) -> Job | None:
        with self._lock:
            while self._queue:
                job = self._jobs.get(self._queue.popleft())
                if job is not None:
                    job = replace(job, status="running", started_at=now(), worker=worker)
                    self._jobs[job.id] = job
                    return job
        return None

    def take_files(self, job: Job, directory: Path) -> list[Path]:
        stored = [self._uploads / name for name in job.files]
        if directory.resolve() == self._uploads.resolve():
            return stored
        directory.mkdir(parents=True, exist_ok=True)
        return [Path(shutil.move(path, directory / path.name)) for path in stored]

    def heartbeat(self, job: Job) -> None:
        pass  # the worker is this process: it cannot die without the store

    def finish(self, job: Job, report: IngestReport | None, error: str | None) -> None:
        status: Status = "failed" if error is not None else "done"
        with self._lock:
            if job.id in self._jobs:
                self._jobs[job.id] = replace(
                    self._jobs[job.id], status=status, finished_at=now(), report=report, error=error
                )

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
        pass
