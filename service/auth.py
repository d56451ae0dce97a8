"""Who may do what: API keys mapped to roles and collections, the widget key's origin check
and rate limits."""

from __future__ import annotations

import hmac
import math
import time
from dataclasses import dataclass
from enum import StrEnum

from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, Storage
from limits.strategies import MovingWindowRateLimiter

from service.keys import ScopedKey, key_digest, load_keys
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
    # The collections the key may use; None: every one (keys from the environment).
    collections: frozenset[str] | None = None

    def may_use(self, collection: str) -> bool:
        return self.collections is None or collection in self.collections


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
        self._rate = _rate(settings.widget_rate_limit, "RAG_WIDGET_RATE_LIMIT")
        self._limiter = MovingWindowRateLimiter(counters or MemoryStorage())
        # Keys of RAG_KEYS_FILE, known by their hash only, each with its own scope.
        self._scoped: list[ScopedKey] = []
        self._scoped_rates: dict[bytes, RateLimitItem] = {}
        if settings.keys_file is not None:
            self._scoped = load_keys(settings.keys_file)
        _check_each_key_once(self._keys, self._scoped, settings)
        for scoped in self._scoped:
            if scoped.rate_limit is not None:
                where = f"rate_limit of key {scoped.name or scoped.digest.hex()[:8]}"
                self._scoped_rates[scoped.digest] = _rate(scoped.rate_limit, where)

    def role_of(self, key: str) -> Role | None:
        # Constant-time comparisons: response timing must not reveal a key's prefix.
        found = None
        for known, role in self._keys:
            if hmac.compare_digest(known.encode(), key.encode()):
                found = role
        return found

    def _scoped_key(self, key: str) -> ScopedKey | None:
        # Every entry compared, no early exit: timing must not tell which one matched.
        digest, found = key_digest(key), None
        for scoped in self._scoped:
            if hmac.compare_digest(scoped.digest, digest):
                found = scoped
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
        # A key of the environment reaches every collection; one of the file only its own.
        scoped = self._scoped_key(key) if role is None and self._scoped else None
        if scoped is not None:
            role = Role(scoped.role)
        if role is None:
            raise AccessDenied(401, "invalid API key", {"WWW-Authenticate": "Bearer"})
        if action not in PERMISSIONS[role]:
            raise AccessDenied(403, f"a {role.value} key may not {action.value}")
        scope = scoped.collections if scoped is not None else None
        if role is Role.PUBLISHABLE:
            origins = scoped.origins if scoped is not None else None
            self._check_origin(origin, own_origin, self._origins if origins is None else origins)
        rate = self._rate if role is Role.PUBLISHABLE else None
        if scoped is not None and scoped.digest in self._scoped_rates:
            rate = self._scoped_rates[scoped.digest]
        if rate is not None:
            self._check_rate(rate, key, client)
        return Caller(role, key, scope)

    def _check_origin(self, origin: str | None, own_origin: str, allowed: frozenset[str]) -> None:
        origin = (origin or "").rstrip("/")
        if origin != own_origin and origin not in allowed:
            raise AccessDenied(
                403,
                f"publishable keys are accepted only from allowed origins, not {origin or 'none'}",
            )

    def _check_rate(self, rate: RateLimitItem, key: str, client: str) -> None:
        # Counted under the key's hash: the counters (in Redis too) never hold a key.
        bucket = key_digest(key).hex()
        try:
            admitted = self._limiter.hit(rate, bucket, client)
            reset = 0.0 if admitted else self._window_reset(rate, bucket, client)
        except StorageError as err:
            cause = err.storage_error
            raise StateUnavailable(
                f"the shared rate limiter (Redis) is unavailable ({type(cause).__name__}: {cause})"
            ) from err
        if not admitted:
            retry = max(1, math.ceil(reset - time.time()))
            raise AccessDenied(
                429,
                f"rate limit of {rate} exceeded; retry in {retry} s",
                {"Retry-After": str(retry)},
            )

    def _window_reset(self, rate: RateLimitItem, bucket: str, client: str) -> float:
        return float(self._limiter.get_window_stats(rate, bucket, client).reset_time)

    @property
    def allowed_origins(self) -> list[str]:
        """Every origin some key is accepted from (for CORS)."""
        origins = set(self._origins)
        for scoped in self._scoped:
            origins |= scoped.origins or set()
        return sorted(origins)


def _check_each_key_once(
    keys: list[tuple[str, Role]], scoped: list[ScopedKey], settings: ServiceSettings
) -> None:
    """ValueError naming where, never the key, if a key is given twice with two meanings.

    A key in two `RAG_*_KEYS` got the last role listed; one in `RAG_*_KEYS` and in the keys
    file reached every collection, whatever scope its entry gave it (the environment's
    keys are looked up first), so a widget key moved into the file to be scoped was not.
    """
    roles: dict[str, Role] = {}
    for key, role in keys:
        if roles.setdefault(key, role) is not role:
            raise ValueError(
                f"a key is in both RAG_{roles[key].value.upper()}_KEYS and "
                f"RAG_{role.value.upper()}_KEYS: give each key one role"
            )
    digests = {key_digest(key): role for key, role in roles.items()}
    for at, entry in enumerate(scoped):
        if entry.digest in digests:
            where = f"keys.{at}" + (f" ({entry.name})" if entry.name else "")
            raise ValueError(
                f"RAG_KEYS_FILE {settings.keys_file}: {where} is also in "
                f"RAG_{digests[entry.digest].value.upper()}_KEYS, whose keys reach every "
                "collection; keep it in one place"
            )


def _rate(text: str, where: str) -> RateLimitItem:
    try:
        return parse(text)
    except ValueError as err:
        raise ValueError(f"{where} {text!r} is not a rate such as '30/minute'") from err
