"""The job store's contract, run against the in-memory store and the Redis one alike.

`stores(n)` gives n handles on one set of jobs: for Redis, n stores with clients of their
own (n replicas); in memory, one store n times (its only sharing is within a process).
Then what only a shared store does: jobs across replicas, workers that die, Redis down.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path

import pytest
import redis

from bench.redis_server import RedisServer
from rag.pipeline import IngestReport, Skipped
from service.jobs import Job, JobQueue, JobStore
from service.jobs_memory import MemoryJobStore
from service.jobs_redis import RedisJobStore
from service.leftovers import sweep_leftovers
from service.shared import StateUnavailable

Stores = Callable[[int], list[JobStore]]
PREFIX = "test:jobs:"


def redis_store(url: str, lease_s: float = 30.0) -> RedisJobStore:
    return RedisJobStore(redis.Redis.from_url(url), PREFIX, url, lease_s)


@pytest.fixture(params=["memory", "redis"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    made: list[JobStore] = []
    if request.param == "memory":
        memory = MemoryJobStore(tmp_path / "submitted")

        def make(n: int) -> list[JobStore]:
            made.append(memory)
            return [memory] * n

    else:
        server: RedisServer = request.getfixturevalue("redis_server")

        def make(n: int) -> list[JobStore]:
            handles: list[JobStore] = [redis_store(server.url) for _ in range(n)]
            made.extend(handles)
            return handles

    yield make
    for store in made:
        store.close()


def files(*names: str) -> list[tuple[str, BytesIO]]:
    return [(name, BytesIO(f"{name} 的内容。\n".encode())) for name in names]


def test_a_submitted_job_is_queued_with_its_files(stores: Stores) -> None:
    [store] = stores(1)
    job = store.submit(files("a.txt", "b.txt"))

    seen = store.get(job.id)
    assert seen is not None
    assert (seen.status, seen.files, seen.started_at) == ("queued", ["a.txt", "b.txt"], None)
    assert store.counts() == {"queued": 1, "running": 0, "done": 0, "failed": 0}
    assert store.get("no-such-job") is None


def test_a_job_keeps_the_collection_it_ingests_into(stores: Stores) -> None:
    submitting, claiming = stores(2)  # with Redis, another replica claims it
    job = submitting.submit(files("a.txt"), "regs")

    claimed = claiming.claim("worker-1")
    seen = submitting.get(job.id)

    assert claimed is not None and claimed.collection == "regs"
    assert seen is not None and seen.collection == "regs"
    assert submitting.submit(files("b.txt")).collection == "default"


def test_jobs_are_claimed_oldest_first_and_each_once(stores: Stores) -> None:
    first_store, second_store = stores(2)
    first = first_store.submit(files("a.txt"))
    second = first_store.submit(files("b.txt"))

    claimed = first_store.claim("worker-1")
    assert claimed is not None and claimed.id == first.id
    assert (claimed.status, claimed.worker) == ("running", "worker-1")
    again = second_store.claim("worker-2")
    assert again is not None and again.id == second.id
    assert first_store.claim("worker-1") is None and second_store.claim("worker-2") is None
    assert first_store.counts()["running"] == 2


def test_concurrent_claims_never_share_a_job(stores: Stores) -> None:
    handles = stores(4)
    submitted = {handles[0].submit(files(f"{n}.txt")).id for n in range(40)}
    claimed: list[str] = []
    lock = threading.Lock()

    def claim_all(store: JobStore, worker: str) -> None:
        while (job := store.claim(worker)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [
        threading.Thread(target=claim_all, args=(store, f"worker-{n}"))
        for n, store in enumerate(handles)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(submitted)  # every job once, none twice


def test_a_claimed_job_s_files_are_written_where_its_worker_ingests(
    stores: Stores, tmp_path: Path
) -> None:
    [store] = stores(1)
    store.submit([("报告（一）.txt", BytesIO("第一段。\n".encode())), ("b.md", BytesIO(b"# b\n"))])
    job = store.claim("worker")
    assert job is not None

    paths = store.take_files(job, tmp_path / "uploads")
    assert [p.name for p in paths] == ["报告（一）.txt", "b.md"]
    assert paths[0].read_text(encoding="utf-8") == "第一段。\n"
    assert paths[1].read_bytes() == b"# b\n"
    assert all(p.parent == tmp_path / "uploads" for p in paths)


def test_queued_jobs_of_one_file_name_each_take_their_own_file(
    stores: Stores, tmp_path: Path
) -> None:
    """In memory, both were written to the upload directory under their name at once: the
    later replaced the earlier, which went into the earlier job's collection, and the later
    job found no file ("no such file", its job "done")."""
    [store] = stores(1)
    store.submit([("x.txt", BytesIO("甲版本。".encode()))], "kb1")
    store.submit([("x.txt", BytesIO("乙版本。".encode()))])

    taken = []
    for directory in (tmp_path / "kb1-uploads", tmp_path / "submitted"):
        job = store.claim("worker")
        assert job is not None
        [path] = store.take_files(job, directory)
        taken.append((path, path.read_text(encoding="utf-8")))

    assert taken == [
        (tmp_path / "kb1-uploads" / "x.txt", "甲版本。"),
        (tmp_path / "submitted" / "x.txt", "乙版本。"),
    ]


def test_a_finished_job_keeps_its_report_or_its_error(stores: Stores) -> None:
    [store] = stores(1)
    good, bad = store.submit(files("a.txt")), store.submit(files("b.txt"))
    report = IngestReport(files=1, paragraphs=3, chunks=2, new_passages=2, seconds=0.5)
    report.skipped.append(Skipped("/srv/uploads/c.pdf", "no text layer"))
    first, second = store.claim("w"), store.claim("w")
    assert first is not None and second is not None

    store.finish(first, report, None)
    store.finish(second, None, "ValueError: broken")

    done, failed = store.get(good.id), store.get(bad.id)
    assert done is not None and failed is not None
    assert (done.status, done.report, done.error) == ("done", report, None)
    assert done.finished_at is not None
    assert (failed.status, failed.report, failed.error) == ("failed", None, "ValueError: broken")
    assert store.counts() == {"queued": 0, "running": 0, "done": 1, "failed": 1}


def test_only_finished_jobs_are_forgotten_past_the_limit(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The in-memory store forgot the oldest job once it held KEEP_JOBS, queued or running:
    a script uploading one file per request faster than they were ingested had its
    earliest jobs dropped unrun (their files deleted) after a 202, and polling them got 404.
    Only finished jobs are forgotten (KEEP_JOBS of each outcome), oldest finished first."""
    monkeypatch.setattr("service.jobs_memory.KEEP_JOBS", 2)
    monkeypatch.setattr("service.jobs_redis.KEEP_JOBS", 2)
    [store] = stores(1)
    submitted = [store.submit(files(f"{n}.txt")).id for n in range(5)]

    assert [job.status for job in map(store.get, submitted) if job] == ["queued"] * 5
    claimed = [store.claim("w") for _ in submitted]
    assert [job.id for job in claimed if job] == submitted  # none dropped unrun
    for job in claimed:
        assert job is not None
        store.finish(job, IngestReport(files=1), None)

    kept = [job_id for job_id in submitted if store.get(job_id) is not None]
    assert kept == submitted[-2:]  # the two latest finished
    assert store.counts() == {"queued": 0, "running": 0, "done": 2, "failed": 0}


def test_only_finished_jobs_are_forgotten_past_the_number_kept(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The in-memory store forgot its oldest jobs past KEEP_JOBS whatever their status: a
    # script uploading a folder file by file, faster than the worker ingests, had its
    # first uploads accepted (202) and then silently dropped, their jobs 404.
    monkeypatch.setattr("service.jobs_memory.KEEP_JOBS", 3)
    monkeypatch.setattr("service.jobs_redis.KEEP_JOBS", 3)
    [store] = stores(1)
    finished = store.submit(files("0.txt"))
    job = store.claim("w")
    assert job is not None
    store.finish(job, IngestReport(files=1), None)
    queued = [store.submit(files(f"{n}.txt")) for n in range(1, 6)]

    for n, submitted in enumerate(queued, 1):
        claimed = store.claim("w")
        assert claimed is not None and claimed.id == submitted.id
        [path] = store.take_files(claimed, tmp_path / "uploads")
        assert path.read_text(encoding="utf-8") == f"{n}.txt 的内容。\n"
        store.finish(claimed, IngestReport(files=1), None)
    # The last KEEP_JOBS to finish are kept.
    kept = [store.get(j.id) is not None for j in [finished, *queued]]
    assert kept == [False, False, False, True, True, True]


def test_a_job_that_ends_without_taking_its_files_lets_them_go(
    stores: Stores, tmp_path: Path
) -> None:
    """A job into a collection removed while it was queued fails before it takes its files:
    they stayed on disk until the process ended (in memory), or 24 h in Redis's memory."""
    [store] = stores(1)
    store.submit(files("a.txt", "b.txt"))
    claimed = store.claim("w")
    assert claimed is not None

    store.finish(claimed, None, "NoSuchCollection: no collection 'gone'")

    with pytest.raises(FileNotFoundError):
        store.take_files(claimed, tmp_path / "late")
    assert list((tmp_path / "submitted").glob("*")) == []  # the in-memory store's files


def test_a_worker_runs_each_job_and_records_the_outcome(stores: Stores, tmp_path: Path) -> None:
    first_store, second_store = stores(2)
    ran: list[tuple[str, list[str]]] = []

    def ingest(name: str) -> Callable[[object], IngestReport]:
        def run(paths: object) -> IngestReport:
            names = [Path(p).name for p in paths]  # type: ignore[attr-defined]
            ran.append((name, names))
            if "bad.txt" in names:
                raise ValueError("cannot read bad.txt")
            return IngestReport(files=len(names))

        return run

    workers = [
        JobQueue(first_store, ingest("one"), tmp_path / "one", poll_s=0.05),
        JobQueue(second_store, ingest("two"), tmp_path / "two", poll_s=0.05),
    ]
    try:
        jobs = [workers[n % 2].submit(files(f"{n}.txt")) for n in range(6)]
        jobs.append(workers[0].submit(files("bad.txt")))
        outcome = {job.id: wait_finished(second_store, job.id) for job in jobs}
    finally:
        for worker in workers:
            worker.shutdown()

    assert sorted(name for _, names in ran for name in names) == sorted(
        [f"{n}.txt" for n in range(6)] + ["bad.txt"]
    )  # each job ran once, by one worker or the other
    assert [outcome[j.id].status for j in jobs] == ["done"] * 6 + ["failed"]
    assert outcome[jobs[-1].id].error == "ValueError: cannot read bad.txt"


def wait_finished(store: JobStore, job_id: str, timeout: float = 120) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = store.get(job_id)
        if job is not None and job.status in {"done", "failed"}:
            return job
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} did not finish: {store.get(job_id)}")


DAY = 24 * 3600


def age(path: Path, seconds: float) -> Path:
    """Dates a file's last write `seconds` back, as if written then."""
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_old_upload_files_no_live_job_needs_are_removed(stores: Stores, tmp_path: Path) -> None:
    """A process killed while a job was queued or a file written leaves hidden files that
    nothing removes; the upload directory may be shared by replicas, so only an old file no
    queued or running job names is one."""
    [store] = stores(1)
    finished = store.submit(files("b.txt"))
    claimed = store.claim("w")
    assert claimed is not None and claimed.id == finished.id
    store.finish(claimed, IngestReport(files=1), None)
    queued = store.submit(files("a.txt"))
    shared = tmp_path / "shared"
    (shared / "collections" / "c").mkdir(parents=True)
    for name in (
        f".queued-{queued.id}-k1",  # queued two days ago, still waiting: kept
        f".queued-{finished.id}-k2",  # its job ended, its process died before removing it
        ".queued-x8h2k_v",  # named before files were named after their job
        "collections/c/.upload-3fj_a",  # a process died writing it
        "a.txt",  # an upload under its own name
    ):
        (shared / name).write_bytes(b"x")
        age(shared / name, 2 * DAY)
    (shared / ".queued-0123abcd-k3").write_bytes(b"x")  # another replica's, a second ago

    removed = sweep_leftovers(shared, store)

    assert sorted(p.relative_to(shared).as_posix() for p in removed) == [
        f".queued-{finished.id}-k2",
        ".queued-x8h2k_v",
        "collections/c/.upload-3fj_a",
    ]
    assert sorted(p.name for p in shared.rglob("*") if p.is_file()) == sorted(
        [f".queued-{queued.id}-k1", ".queued-0123abcd-k3", "a.txt"]
    )


def test_a_worker_starting_removes_what_a_crashed_run_left_and_keeps_queued_files(
    tmp_path: Path,
) -> None:
    uploads = tmp_path / "uploads"
    crashed = MemoryJobStore(uploads)
    lost = crashed.submit(files("lost.txt"))  # ...and the process was killed: no close()
    store = MemoryJobStore(uploads)
    live = store.submit(files("a.txt"))
    for path in uploads.iterdir():
        age(path, 2 * DAY)  # the live job has waited that long too
    ingested: list[str] = []

    def ingest(paths: list[Path]) -> IngestReport:
        ingested.extend(p.read_text(encoding="utf-8") for p in paths)
        return IngestReport(files=len(paths))

    worker = JobQueue(store, ingest, uploads, poll_s=0.05)  # type: ignore[arg-type]
    try:
        left = sorted(p.name for p in uploads.iterdir())  # swept before the worker claims
        assert wait_finished(store, live.id).status == "done"
    finally:
        worker.shutdown()
        store.close()

    assert not any(lost.id in name for name in left), left
    assert ingested == ["a.txt 的内容。\n"]
    assert sorted(p.name for p in uploads.iterdir()) == ["a.txt"]


# -- what only the shared store does ------------------------------------------------------


def test_a_job_whose_worker_died_is_marked_failed_not_running(
    redis_server: RedisServer,
) -> None:
    store = redis_store(redis_server.url)
    job = store.submit(files("a.txt"))
    claimed = store.claim("host:123:abc")
    assert claimed is not None
    assert store.reap() == 0  # alive: its lease stands

    # The worker's process died: no heartbeat renews the lease, which runs out.
    store._redis.delete(f"{PREFIX}lease:{job.id}")
    assert store.reap() == 1

    failed = store.get(job.id)
    assert failed is not None and failed.status == "failed"
    assert failed.error is not None and "host:123:abc" in failed.error
    assert "upload the files again" in failed.error
    assert store.counts() == {"queued": 0, "running": 0, "done": 0, "failed": 1}
    assert store.reap() == 0


def test_a_lease_runs_out_unless_renewed(redis_server: RedisServer) -> None:
    renewed, short = redis_store(redis_server.url, lease_s=60), redis_store(redis_server.url, 0.2)
    client = redis.Redis.from_url(redis_server.url)
    alive = renewed.submit(files("a.txt"))
    alive_job = renewed.claim("w1")
    dead = renewed.submit(files("b.txt"))
    assert alive_job is not None and short.claim("w2") is not None
    client.pexpire(f"{PREFIX}lease:{alive.id}", 500)  # as if about to run out

    renewed.heartbeat(alive_job)
    assert client.pttl(f"{PREFIX}lease:{alive.id}") > 30_000  # a full lease again
    time.sleep(1.0)  # well past the 0.2 s lease of the job nobody renewed

    assert renewed.reap() == 1
    statuses = [renewed.get(j.id).status for j in (alive, dead)]  # type: ignore[union-attr]
    assert statuses == ["running", "failed"]


def test_files_gone_from_redis_fail_the_job_with_a_reason(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    store = redis_store(redis_server.url)
    job = store.submit(files("a.txt"))
    store._redis.delete(f"{PREFIX}files:{job.id}")  # as after FILES_TTL_S
    claimed = store.claim("w")
    assert claimed is not None

    with pytest.raises(FileNotFoundError, match="upload them again"):
        store.take_files(claimed, tmp_path)


def test_redis_going_away_once_the_files_are_on_disk_does_not_fail_their_job(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Freeing the files in Redis after writing them failed the job (and its end then
    # dropped the files from Redis too): the upload was lost for a cleanup.
    from service.uploads import store_upload

    store = RedisJobStore(
        redis.Redis.from_url(redis_server.url, socket_timeout=2, socket_connect_timeout=2),
        PREFIX,
        "redis://127.0.0.1",
    )
    store.submit(files("a.txt"))
    claimed = store.claim("w")
    assert claimed is not None

    def write_then_lose_redis(*args: object) -> Path:
        path = store_upload(*args)  # type: ignore[arg-type]
        redis_server.stop()
        return path

    monkeypatch.setattr("service.jobs_redis.store_upload", write_then_lose_redis)
    [path] = store.take_files(claimed, tmp_path)  # for the worker to ingest
    assert path.read_text(encoding="utf-8") == "a.txt 的内容。\n"


def test_redis_down_is_state_unavailable_not_a_driver_error(
    redis_server: RedisServer,
) -> None:
    store = RedisJobStore(
        redis.Redis.from_url(redis_server.url, socket_timeout=2, socket_connect_timeout=2),
        PREFIX,
        "redis://127.0.0.1",
    )
    job = store.submit(files("a.txt"))
    redis_server.stop()

    for call in (
        lambda: store.submit(files("b.txt")),
        lambda: store.get(job.id),
        lambda: store.claim("w"),
        store.counts,
        store.reap,
    ):
        with pytest.raises(StateUnavailable, match=r"Redis at redis://127\.0\.0\.1"):
            call()
