"""The job store of several replicas: jobs, their queue and their uploaded files in Redis.

Keys, under `<RAG_REDIS_PREFIX>:jobs:`:
    queue            list of queued job ids, oldest first
    job:<id>         hash: the job record (what `GET /v1/jobs/{id}` shows)
    files:<id>       hash: file name -> uploaded bytes, until a worker takes them (or its
                     job ends without them)
    lease:<id>       the worker running the job; expires unless renewed (`heartbeat`)
    running          set of running job ids
    done, failed     sorted sets of finished job ids by finish time (kept: `KEEP_JOBS` each)

Each change of state is one Lua script, so it is atomic: a job is popped from the queue and
marked running by the same script (no two workers ever claim one job, and none is lost
between the two), and a job whose lease ran out is found and marked failed by one script.
The scripts name their keys from a prefix rather than declaring them all, so this needs one
Redis (or a primary with replicas), not Redis Cluster.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from rag.collections import DEFAULT
from rag.pipeline import IngestReport
from service.jobs import (
    KEEP_JOBS,
    LEASE_S,
    STATUSES,
    Job,
    Status,
    new_job,
    now,
    report_from_json,
    report_to_json,
)
from service.shared import StateUnavailable
from service.uploads import store_upload

if TYPE_CHECKING:
    import redis

log = logging.getLogger("rag.service")

# Uploaded files wait this long for a worker; then they are dropped (and the job fails
# when claimed) rather than held in Redis's memory for ever.
FILES_TTL_S = 24 * 3600

CLAIM = """
local id = redis.call('LPOP', KEYS[1])
if not id then return false end
redis.call('HSET', ARGV[1] .. 'job:' .. id, 'status', 'running', 'started_at', ARGV[3],
           'worker', ARGV[2])
redis.call('SET', ARGV[1] .. 'lease:' .. id, ARGV[2], 'PX', ARGV[4])
redis.call('SADD', KEYS[2], id)
return redis.call('HGETALL', ARGV[1] .. 'job:' .. id)
"""

FINISH = """
local key = ARGV[1] .. 'job:' .. ARGV[2]
redis.call('SREM', KEYS[1], ARGV[2])
redis.call('DEL', ARGV[1] .. 'lease:' .. ARGV[2])
redis.call('DEL', ARGV[1] .. 'files:' .. ARGV[2])
if redis.call('EXISTS', key) == 0 then return 0 end
redis.call('HSET', key, 'status', ARGV[3], 'finished_at', ARGV[4], 'report', ARGV[5],
           'error', ARGV[6])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
local finished = KEYS[2]
if ARGV[3] == 'failed' then finished = KEYS[3] end
redis.call('ZADD', finished, ARGV[7], ARGV[2])
local keep = tonumber(ARGV[8])
for _, old in ipairs(redis.call('ZRANGE', finished, 0, -(keep + 1))) do
  redis.call('DEL', ARGV[1] .. 'job:' .. old)
end
redis.call('ZREMRANGEBYRANK', finished, 0, -(keep + 1))
return 1
"""

REAP = """
local reaped = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. 'lease:' .. id) == 0 then
    redis.call('SREM', KEYS[1], id)
    local key = ARGV[1] .. 'job:' .. id
    if redis.call('HGET', key, 'status') == 'running' then
      local worker = redis.call('HGET', key, 'worker') or '?'
      redis.call('HSET', key, 'status', 'failed', 'finished_at', ARGV[2],
                 'error', ARGV[3] .. worker .. ARGV[4])
      redis.call('DEL', ARGV[1] .. 'files:' .. id)
      redis.call('ZADD', KEYS[2], ARGV[5], id)
    end
    reaped = reaped + 1
  end
end
return reaped
"""

LOST = (
    "WorkerLost: the replica running this job (",
    ") stopped before it finished; upload the files again (files already ingested are "
    "skipped as unchanged)",
)


class RedisJobStore:
    """Jobs shared by every replica pointed at the same Redis and prefix.

    Args:
        client: A redis-py client (bytes responses: uploaded files are bytes).
        prefix: Key prefix, `<RAG_REDIS_PREFIX>:jobs:`.
        where: How to name this Redis in errors (its URL without the password).
        lease_s: How long a running job survives its worker's last heartbeat.
    """

    shared = True

    def __init__(
        self, client: redis.Redis, prefix: str, where: str, lease_s: float = LEASE_S
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._where = where
        self._lease_ms = int(lease_s * 1000)
        self._claim = client.register_script(CLAIM)
        self._finish = client.register_script(FINISH)
        self._reap = client.register_script(REAP)

    def _key(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    @contextmanager
    def _reaching(self) -> Iterator[None]:
        import redis

        try:
            yield
        except redis.RedisError as err:
            raise StateUnavailable(
                f"the shared job store (Redis at {self._where}) is unavailable: "
                f"{type(err).__name__}: {err}"
            ) from err

    def submit(self, files: Sequence[tuple[str, BinaryIO]], collection: str = DEFAULT) -> Job:
        job = new_job([name for name, _ in files], collection)
        contents = {name: content.read() for name, content in files}
        record = {"id": job.id, "files": json.dumps(job.files), "status": job.status}
        record["created_at"] = job.created_at
        record["collection"] = job.collection
        with self._reaching():
            pipe = self._redis.pipeline(transaction=True)
            if contents:
                pipe.hset(self._key("files", job.id), mapping=contents)  # type: ignore[arg-type]
                pipe.expire(self._key("files", job.id), FILES_TTL_S)
            pipe.hset(self._key("job", job.id), mapping=record)  # type: ignore[arg-type]
            pipe.rpush(self._key("queue"), job.id)
            pipe.execute()
        return job

    def claim(self, worker: str) -> Job | None:
        with self._reaching():
            # The claimed job's record comes back from the same script: a claim is never
            # lost between two calls (it would be reaped as its worker's, 30 s later).
            found = self._claim(
                keys=[self._key("queue"), self._key("running")],
                args=[self._prefix, worker, now(), self._lease_ms],
            )
        if not found:
            return None
        fields = cast(list[bytes], found)
        return _job(dict(zip(fields[::2], fields[1::2], strict=True)))

    def take_files(self, job: Job, directory: Path) -> list[Path]:
        key = self._key("files", job.id)
        with self._reaching():
            stored = cast(dict[bytes, bytes], self._redis.hgetall(key))
        contents = {_text(name): data for name, data in stored.items()}
        missing = [name for name in job.files if name not in contents]
        if missing:
            raise FileNotFoundError(
                f"the uploaded files {missing} of job {job.id} are gone from Redis (they are "
                f"kept {FILES_TTL_S // 3600} h for a worker); upload them again"
            )
        paths = [store_upload(directory, name, BytesIO(contents[name])) for name in job.files]
        try:
            with self._reaching():
                self._redis.delete(key)  # on disk now: free Redis's memory
        except StateUnavailable as err:
            # Only a cleanup: the job's end (`FINISH`) or the TTL frees them. Failing the
            # job for it would lose an upload that is safely on disk.
            log.warning("could not free the files of job %s in Redis: %s", job.id, err)
        return paths

    def heartbeat(self, job: Job) -> None:
        with self._reaching():
            self._redis.set(
                self._key("lease", job.id), job.worker or "?", px=self._lease_ms, xx=True
            )

    def finish(self, job: Job, report: IngestReport | None, error: str | None) -> None:
        status: Status = "failed" if error is not None else "done"
        payload = "" if report is None else json.dumps(report_to_json(report))
        args: list[str | float] = [self._prefix, job.id, status, now(), payload, error or ""]
        args += [time.time(), KEEP_JOBS]
        with self._reaching():
            self._finish(
                keys=[self._key("running"), self._key("done"), self._key("failed")], args=args
            )

    def reap(self) -> int:
        with self._reaching():
            return int(
                self._reap(
                    keys=[self._key("running"), self._key("failed")],
                    args=[self._prefix, now(), *LOST, time.time()],
                )
            )

    def get(self, job_id: str) -> Job | None:
        with self._reaching():
            raw = cast(dict[bytes, bytes], self._redis.hgetall(self._key("job", job_id)))
        return _job(raw) if raw else None

    def counts(self) -> dict[Status, int]:
        with self._reaching():
            pipe = self._redis.pipeline(transaction=False)
            pipe.llen(self._key("queue"))
            pipe.scard(self._key("running"))
            pipe.zcard(self._key("done"))
            pipe.zcard(self._key("failed"))
            values = pipe.execute()
        return dict(zip(STATUSES, (int(v) for v in values), strict=True))

    def close(self) -> None:
        self._redis.close()


def _job(raw: dict[bytes, bytes]) -> Job:
    """A job from its hash in Redis."""
    record = {_text(k): _text(v) for k, v in raw.items()}
    report: dict[str, Any] | None = None
    if record.get("report"):
        report = json.loads(record["report"])
    return Job(
        id=record["id"],
        files=json.loads(record["files"]),
        status=cast(Status, record["status"]),
        created_at=record["created_at"],
        started_at=record.get("started_at") or None,
        finished_at=record.get("finished_at") or None,
        report=None if report is None else report_from_json(report),
        error=record.get("error") or None,
        worker=record.get("worker") or None,
        collection=record.get("collection") or DEFAULT,
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
