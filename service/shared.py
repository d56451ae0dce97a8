"""Where the service keeps its state: in this process, or in Redis shared by its replicas.

The state is the ingestion jobs (with uploaded files until they run) and the widget keys'
rate-limit counters; the index's write lock follows the same setting (`rag.store.locking`).
Without `RAG_REDIS_URL` all of it lives in the process, and a second replica would keep its
own; with it, any replica can take any request. The factories here pick the implementation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from limits.storage import MemoryStorage, RedisStorage, Storage

if TYPE_CHECKING:
    from service.jobs import JobStore
    from service.settings import ServiceSettings

# Seconds a request waits on Redis before it is answered 503: a dead Redis must not hold
# requests until the client gives up.
REDIS_TIMEOUT_S = 5.0


class StateUnavailable(RuntimeError):
    """The shared state (Redis) cannot be reached: the service answers 503, not 500."""


def describe_url(url: str) -> str:
    """`url` without its password, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def describe_state(settings: ServiceSettings) -> str:
    """What the start-up log says about where the state is."""
    if settings.redis_url:
        return (
            f"jobs, uploads in flight, rate limits and the write lock are shared in Redis at "
            f"{describe_url(settings.redis_url)} (prefix {settings.redis_prefix!r}): "
            "replicas with the same RAG_REDIS_URL act as one service"
        )
    return (
        "jobs, uploads in flight and rate limits are kept in this process's memory: another "
        "replica would not share them (set RAG_REDIS_URL to run several replicas)"
    )


def make_job_store(settings: ServiceSettings) -> JobStore:
    if settings.redis_url:
        import redis

        from service.jobs_redis import RedisJobStore

        client = redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
        )
        return RedisJobStore(
            client, f"{settings.redis_prefix}:jobs:", describe_url(settings.redis_url)
        )
    from service.jobs_memory import MemoryJobStore

    return MemoryJobStore(settings.uploads)


def make_rate_storage(settings: ServiceSettings) -> Storage:
    """Counters of the widget rate limit (`service.auth.Gate`)."""
    if settings.redis_url:
        return RedisStorage(
            settings.redis_url,
            key_prefix=f"{settings.redis_prefix}:limits",
            wrap_exceptions=True,  # a `limits.errors.StorageError`, whatever the driver raised
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
        )
    return MemoryStorage()
