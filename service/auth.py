"""Who may do what: API keys mapped to roles, the widget key's origin check and rate limit."""

from __future__ import annotations

import hmac
import math
import time
from dataclasses import dataclass
from enum import StrEnum

from limits import parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, Storage
from limits.strategies import MovingWindowRateLimiter

from service.settings import ServiceSettings
from service.shared import StateUnavailable


class Role(StrEnum):
    ADMIN = "admin"
    QUERY = "query"
    PUBLISHABLE = "publishable"


class Action(StrEnum):
    ASK = "ask"
    SEARCH = "search"
    CITE = "cite"  # read a cited paragraph
    MANAGE = "manage"  # list, upload and delete documents; read jobs


PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(Action),
    Role.QUERY: frozenset({Action.ASK, Action.SEARCH, Action.CITE}),
    # A publishable key sits in a web page: it may do what a visitor of the widget does.
    Role.PUBLISHABLE: frozenset({Action.ASK, Action.CITE}),
}


@dataclass(frozen=True)
class Caller:
    role: Role
    key: str | None  # None when the service runs without keys


class AccessDenied(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


class Gate:
    """Decides, per request, whether a key may take an action.

    Args:
        settings: The keys, origins and widget rate limit.
        counters: Where the rate limit counts requests (`service.shared.make_rate_storage`:
            in Redis, replicas share one count per key and client); default: this process.
    """

    def __init__(self, settings: ServiceSettings, counters: Storage | None = None) -> None:
        self.open = settings.open_access
        self._keys = [
            *((key, Role.ADMIN) for key in settings.admin_keys),
            *((key, Role.QUERY) for key in settings.query_keys),
            *((key, Role.PUBLISHABLE) for key in settings.publishable_keys),
        ]
        self._origins = frozenset(o.rstrip("/") for o in settings.allowed_origins)
        try:
            self._rate = parse(settings.widget_rate_limit)
        except ValueError as err:
            raise ValueError(
                f"RAG_WIDGET_RATE_LIMIT {settings.widget_rate_limit!r} is not a rate "
                "such as '30/minute'"
            ) from err
        self._limiter = MovingWindowRateLimiter(counters or MemoryStorage())

    def role_of(self, key: str) -> Role | None:
        # Constant-time comparisons: response timing must not reveal a key's prefix.
        found = None
        for known, role in self._keys:
            if hmac.compare_digest(known.encode(), key.encode()):
                found = role
        return found

    def check(
        self, action: Action, key: str | None, origin: str | None, own_origin: str, client: str
    ) -> Caller:
        """The caller, or AccessDenied with the status and message the client should get."""
        if self.open:
            return Caller(Role.ADMIN, None)
        if not key:
            raise AccessDenied(
                401,
                "an API key is required: send 'Authorization: Bearer <key>'",
                {"WWW-Authenticate": "Bearer"},
            )
        role = self.role_of(key)
        if role is None:
            raise AccessDenied(401, "invalid API key", {"WWW-Authenticate": "Bearer"})
        if action not in PERMISSIONS[role]:
            raise AccessDenied(403, f"a {role.value} key may not {action.value}")
        if role is Role.PUBLISHABLE:
            self._check_widget(key, origin, own_origin, client)
        return Caller(role, key)

    def _check_widget(self, key: str, origin: str | None, own_origin: str, client: str) -> None:
        origin = (origin or "").rstrip("/")
        if origin != own_origin and origin not in self._origins:
            raise AccessDenied(
                403,
                f"publishable keys are accepted only from allowed origins, not {origin or 'none'}",
            )
        try:
            admitted = self._limiter.hit(self._rate, key, client)
            reset = 0.0 if admitted else self._window_reset(key, client)
        except StorageError as err:
            cause = err.storage_error
            raise StateUnavailable(
                f"the shared rate limiter (Redis) is unavailable ({type(cause).__name__}: {cause})"
            ) from err
        if not admitted:
            retry = max(1, math.ceil(reset - time.time()))
            raise AccessDenied(
                429,
                f"rate limit of {self._rate} exceeded; retry in {retry} s",
                {"Retry-After": str(retry)},
            )

    def _window_reset(self, key: str, client: str) -> float:
        return float(self._limiter.get_window_stats(self._rate, key, client).reset_time)

    @property
    def allowed_origins(self) -> list[str]:
        return sorted(self._origins)
