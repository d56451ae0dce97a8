"""Where an index lives: a backend name with its settings and the collection name.

The local backend keeps an index in a directory; the Milvus backend in a few Milvus
collections, on a Milvus Lite file or a server. Everything that opens an index is handed a
`Location` instead of assuming a directory, so the storage seam (`rag.store.factory`) stays
the same for both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from rag.settings import Settings

DEFAULT_COLLECTION = "default"
# Milvus Lite's database file when `RAG_MILVUS_URI` is not set: inside the index directory.
LITE_FILE = "milvus.db"
_NAME = re.compile(r"[a-z0-9_-]{1,64}")
_SERVER_SCHEMES = r"(https?|tcp|grpc)"


@dataclass(frozen=True)
class MilvusTarget:
    """A Milvus deployment: a Lite file path, or `http(s)://host:port` of a server."""

    uri: str
    token: str | None = None
    db: str = "default"
    prefix: str = "rag_"  # collection names start with it, then the collection name

    def __post_init__(self) -> None:
        # One server, one spelling: the URI names its write lock in Redis (and its shared
        # client), so `http://Milvus:19530/` and `http://milvus:19530` must not be two
        # servers whose writers run at once on one index.
        parts = urlsplit(self.uri)
        if re.fullmatch(_SERVER_SCHEMES, parts.scheme, re.IGNORECASE):
            host = parts.netloc.rpartition("@")
            netloc = host[0] + host[1] + host[2].lower()
            uri = urlunsplit(parts._replace(scheme=parts.scheme.lower(), netloc=netloc))
            object.__setattr__(self, "uri", uri.rstrip("/"))

    @property
    def lite(self) -> bool:
        """Milvus Lite runs embedded on a local file; a server is reached over the network."""
        return not re.match(f"^{_SERVER_SCHEMES}://", self.uri)

    @property
    def lite_path(self) -> Path:
        return Path(self.uri.removeprefix("file://"))


@dataclass(frozen=True)
class Location:
    """An index: `backend` (a name of `rag.store.factory.BACKENDS`) and where its data is.

    `directory` is the local index directory (for Milvus Lite, the default home of its file;
    for a Milvus server, unused on disk). `collection` names the index among several.
    """

    backend: str
    directory: Path
    milvus: MilvusTarget | None = None
    collection: str = DEFAULT_COLLECTION

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.collection):
            raise ValueError(f"invalid collection name {self.collection!r} ([a-z0-9_-]{{1,64}})")
        if self.backend == "milvus" and self.milvus is None:
            raise ValueError("a milvus location needs a MilvusTarget")

    @classmethod
    def local(cls, directory: Path, collection: str = DEFAULT_COLLECTION) -> Location:
        return cls("local", directory, None, collection)

    def describe(self) -> str:
        """How messages name this index."""
        if self.milvus is None:
            return str(self.directory)
        where = self.milvus.uri if self.milvus.lite else f"{self.milvus.uri}/{self.milvus.db}"
        return f"milvus {where} collection {self.milvus.prefix}{self.collection}"


def milvus_target(
    uri: str | None, token: str | None, db: str, prefix: str, directory: Path
) -> MilvusTarget:
    """The Milvus target of settings; no URI means a Lite file in the index directory."""
    return MilvusTarget(uri or str(directory / LITE_FILE), token, db, prefix)


def parse_milvus_url(url: str, token: str | None, db: str, prefix: str) -> MilvusTarget:
    """`milvus://host:port[/db]` (a server over HTTP), `milvus+https://...`, or a file path
    (Milvus Lite), as `rag migrate --to` takes them."""
    for scheme, http in (("milvus+https://", "https://"), ("milvus://", "http://")):
        if url.startswith(scheme):
            rest = url.removeprefix(scheme)
            host, _, path = rest.partition("/")
            if not host:
                raise ValueError(f"no host in {url!r}")
            return MilvusTarget(http + host, token, path or db, prefix)
    return MilvusTarget(url, token, db, prefix)


def location_from_settings(
    settings: Settings, directory: Path | None = None, collection: str = DEFAULT_COLLECTION
) -> Location:
    """The location of the index the settings name (`directory` overrides `index_dir`)."""
    directory = directory or settings.index_dir
    if settings.backend != "milvus":
        return Location(settings.backend, directory, None, collection)
    token = settings.milvus_token.get_secret_value() if settings.milvus_token else None
    target = milvus_target(
        settings.milvus_uri, token, settings.milvus_db, settings.milvus_prefix, directory
    )
    return Location("milvus", directory, target, collection)
