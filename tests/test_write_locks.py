"""The index write lock's contract, for the file lock, the Redis lock and both layered.

Two lock objects on one index stand for two processes (the file lock is an `flock` per open
file, the Redis lock a token per object), so one process is enough to see them exclude
each other. Then what only the Redis lock does: renewal, a dead holder, Redis down.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from bench.redis_server import RedisServer
from rag.pipeline import open_pipeline
from rag.settings import Settings
from rag.store.lock import IndexBusyError, IndexLock, WriteLock
from rag.store.locking import LayeredLock, lock_key, shared_write_lock
from rag.store.redis_lock import LockUnavailableError, RedisWriteLock
from tests.fakes import HashEmbedder

MakeLock = Callable[..., IndexLock]


@pytest.fixture(params=["file", "redis", "layered"])
def make_lock(request: pytest.FixtureRequest, tmp_path: Path) -> MakeLock:
    """A factory of locks on one index: each call is another "process"."""
    directory = tmp_path / "index"
    directory.mkdir()
    if request.param == "file":
        return lambda timeout=0.0, on_wait=None: WriteLock(directory, timeout, on_wait)
    server: RedisServer = request.getfixturevalue("redis_server")
    settings = Settings(index_dir=directory, redis_url=server.url)

    def redis_lock(timeout: float = 0.0, on_wait: Callable[[str], None] | None = None) -> IndexLock:
        return RedisWriteLock.from_url(server.url, "test:write-lock", timeout, on_wait)

    if request.param == "redis":
        return redis_lock

    def layered(timeout: float = 0.0, on_wait: Callable[[str], None] | None = None) -> IndexLock:
        own = WriteLock(directory, timeout, on_wait)
        timed = settings.model_copy(update={"lock_timeout": timeout})
        lock = shared_write_lock(timed, str(directory.resolve()), own, on_wait)
        assert lock is not None
        return lock

    return layered


def test_one_holder_at_a_time(make_lock: MakeLock) -> None:
    first, second = make_lock(), make_lock()

    assert first.try_acquire() and first.held
    assert not second.try_acquire() and not second.held
    first.release()
    assert not first.held
    assert second.try_acquire()
    second.release()


def test_reentrant_within_the_holding_thread(make_lock: MakeLock) -> None:
    lock, other = make_lock(), make_lock()
    with lock():
        with lock():
            assert lock.held
        assert lock.held and not other.try_acquire()  # the inner release kept it
    assert other.try_acquire()
    other.release()


def test_a_waiting_writer_is_told_who_holds_it_and_gives_up(make_lock: MakeLock) -> None:
    holder = make_lock()
    told: list[str] = []
    waiter = make_lock(timeout=0.3, on_wait=told.append)
    with holder(), pytest.raises(IndexBusyError, match=r"gave up after 0\.3 s"):
        waiter.acquire()
    assert len(told) == 1 and "pid" in told[0]
    assert not waiter.held


def test_a_waiting_writer_gets_the_lock_when_it_is_released(make_lock: MakeLock) -> None:
    holder, waiter = make_lock(), make_lock(timeout=60)
    holder.acquire()
    got = threading.Event()

    def wait_then_hold() -> None:
        with waiter():
            got.set()

    thread = threading.Thread(target=wait_then_hold)
    thread.start()
    try:
        assert not got.wait(0.3)  # still held
    finally:
        holder.release()
    thread.join(timeout=60)
    assert got.is_set()


# -- the Redis lock ------------------------------------------------------------------------


def test_a_held_lock_outlives_its_lease_while_renewed(redis_server: RedisServer) -> None:
    holder = RedisWriteLock(redis.Redis.from_url(redis_server.url), "test:lock", 0, lease_s=3)
    other = RedisWriteLock.from_url(redis_server.url, "test:lock", 0)
    with holder():
        for _ in range(16):  # 8 s: more than twice the lease (renewed every second)
            assert not other.try_acquire()
            time.sleep(0.5)
    assert other.try_acquire()
    other.release()


def test_a_dead_holder_s_lock_frees_itself_when_its_lease_ends(
    redis_server: RedisServer,
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    dead = RedisWriteLock(client, "test:lock", 0, lease_s=0.5)
    assert dead.try_acquire()
    dead._stop_renewal()  # as if its process were killed: nobody renews, nobody releases

    waiter = RedisWriteLock.from_url(redis_server.url, "test:lock", 30)
    waiter.acquire()  # within the lease, not the 30 s wait
    assert waiter.held
    waiter.release()


def test_redis_down_refuses_the_write_clearly(redis_server: RedisServer) -> None:
    lock = RedisWriteLock(
        redis.Redis.from_url(redis_server.url, socket_connect_timeout=2), "test:lock", 5
    )
    redis_server.stop()

    with pytest.raises(LockUnavailableError, match=r"Redis did not answer.*no write was made"):
        lock.acquire()
    assert not lock.held
    assert isinstance(LockUnavailableError("x"), IndexBusyError)  # callers answer it as busy


def test_without_redis_an_index_takes_its_file_lock_only(
    tmp_path: Path, fake_embedder: HashEmbedder
) -> None:
    pipeline = open_pipeline(Settings(index_dir=tmp_path), fake_embedder)
    assert isinstance(pipeline._index._lock, WriteLock)
    pipeline.close()


def test_with_redis_a_writer_that_knows_only_the_file_lock_is_still_excluded(
    redis_server: RedisServer, tmp_path: Path, fake_embedder: HashEmbedder
) -> None:
    pipeline = open_pipeline(
        Settings(index_dir=tmp_path, redis_url=redis_server.url), fake_embedder
    )
    shared = pipeline._index._lock
    assert isinstance(shared, LayeredLock)
    plain = WriteLock(tmp_path, 0)  # `rag ingest` run without RAG_REDIS_URL

    with plain():
        assert not shared.try_acquire()
        # Refused as a whole: the Redis half taken on the way was given back.
        assert not redis.Redis.from_url(redis_server.url).exists(
            lock_key("rag", str(tmp_path.resolve()))
        )
    with shared():
        assert not plain.try_acquire()
    pipeline.close()


def test_replicas_that_spell_one_milvus_server_differently_share_its_write_lock(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    # The lock's key held the URI as written: a `rag ingest` with a trailing slash or a
    # capital in the host wrote at the same time as the service, into one Milvus index.
    from rag.pipeline import write_lock
    from rag.store.location import location_from_settings

    def lock(uri: str) -> IndexLock:
        settings = Settings(
            index_dir=tmp_path, backend="milvus", milvus_uri=uri, redis_url=redis_server.url
        )
        made = write_lock(settings, location_from_settings(settings), None)
        assert made is not None
        return made

    service = lock("http://milvus.example:19530")
    with service():
        for spelling in ("http://milvus.example:19530/", "HTTP://Milvus.Example:19530"):
            assert not lock(spelling).try_acquire(), spelling
