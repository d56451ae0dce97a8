"""The keys file (`RAG_KEYS_FILE`): API keys scoped to collections, by their SHA-256 hash.

TOML or JSON (by the file's extension), a list of keys:

    [[keys]]
    name = "help center widget"          # optional, for people reading the file
    sha256 = "9f86d08...0f00a08"         # hex SHA-256 of the key; the key itself is not kept
    role = "publishable"                 # admin | query | publishable
    collections = ["help-center"]        # the collections it may use; ["*"]: all
    origins = ["https://help.example"]   # publishable keys: pages allowed to use it
    rate_limit = "60/minute"             # per key and client address; optional

JSON is the same as `{"keys": [{...}, ...]}`. Only hashes are stored, so the file can be
read by more people than the keys themselves. These keys add to the `RAG_*_KEYS` variables,
whose keys reach every collection.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rag.collections import check_name
from service.origins import origin_of

ALL_COLLECTIONS = "*"
ROLES = ("admin", "query", "publishable")


@dataclass(frozen=True)
class ScopedKey:
    """One entry of the keys file."""

    digest: bytes  # SHA-256 of the key
    role: str  # one of ROLES
    collections: frozenset[str] | None  # None: every collection
    origins: frozenset[str] | None  # None: RAG_ALLOWED_ORIGINS
    rate_limit: str | None
    name: str


def key_digest(key: str) -> bytes:
    """The SHA-256 of a key, as the keys file records it (in hex)."""
    return hashlib.sha256(key.encode()).digest()


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    role: str
    collections: list[str] = Field(min_length=1)
    origins: list[str] | None = None
    rate_limit: str | None = None

    @field_validator("role")
    @classmethod
    def _known_role(cls, value: str) -> str:
        if value not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        return value

    @field_validator("origins")
    @classmethod
    def _valid_origins(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [origin_of(entry) for entry in value]

    @field_validator("collections")
    @classmethod
    def _valid_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if name != ALL_COLLECTIONS:
                check_name(name)
        return value


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[_Entry]


def load_keys(path: Path) -> list[ScopedKey]:
    """The keys of `path`.

    Raises:
        ValueError: The file cannot be read or holds an invalid entry; the message names
            the file and the entry.
    """
    try:
        raw = path.read_bytes()
        data = json.loads(raw) if path.suffix.lower() == ".json" else tomllib.loads(raw.decode())
        parsed = _File.model_validate(data)
    except OSError as err:
        raise ValueError(f"RAG_KEYS_FILE {path}: cannot read it ({err.strerror})") from None
    except (ValueError, UnicodeDecodeError) as err:  # JSON, TOML and pydantic errors
        raise ValueError(f"RAG_KEYS_FILE {path}: {_describe(err)}") from None
    keys = []
    seen: dict[str, int] = {}
    for at, entry in enumerate(parsed.keys):
        digest = entry.sha256.lower()
        if digest in seen:
            # One key, two entries: which role and scope it got depended on their order.
            raise ValueError(
                f"RAG_KEYS_FILE {path}: keys.{seen[digest]} and keys.{at} are the same key "
                "(one sha256); give each key one entry"
            )
        seen[digest] = at
        scope = None if ALL_COLLECTIONS in entry.collections else frozenset(entry.collections)
        origins = None if entry.origins is None else frozenset(entry.origins)
        keys.append(
            ScopedKey(
                bytes.fromhex(entry.sha256),
                entry.role,
                scope,
                origins,
                entry.rate_limit,
                entry.name,
            )
        )
    return keys


def _describe(err: Exception) -> str:
    if isinstance(err, ValidationError):
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']}"
    return str(err)
