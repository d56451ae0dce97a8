"""What an index is built with, and the plain types and errors of writing to one."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

from rag.store.base import PassageStore
from rag.text.tokenize import DEFAULT_TOKENIZER
from rag.types import Chunk, Document

# An index created before the backend was recorded was built with this one.
DEFAULT_BACKEND = "local"


class IndexMismatchError(ValueError):
    """The index on disk was built with settings that cannot serve this configuration."""


class NoIndexError(FileNotFoundError):
    """There is no index in the directory."""


@dataclass(frozen=True)
class IndexConfig:
    """What an index was built with; a mismatch on open is an error, not silent garbage.

    `tokenizer` None (`RAG_TOKENIZER` unset) asks for no tokenizer in particular: `Index`
    opens an existing index with the one it records and creates a new one with
    `DEFAULT_TOKENIZER` (`with_tokenizer_of`). The config of an open index, and any config
    read from a store, always names one.
    """

    embedder: str
    dim: int
    tokenizer: str | None
    chunk_size: int
    dedupe_threshold: float
    shingle_size: int
    minhash_perm: int
    backend: str = DEFAULT_BACKEND  # a name of `rag.store.factory.BACKENDS`

    def as_meta(self) -> dict[str, str]:
        if self.tokenizer is None:
            raise ValueError("a config to record names its tokenizer: see with_tokenizer_of")
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}

    def with_tokenizer_of(self, built: str | None) -> IndexConfig:
        """This config with its tokenizer decided: the one asked for, else `built` (the
        index's, None for a new index), else the newest (`DEFAULT_TOKENIZER`)."""
        if self.tokenizer is not None:
            return self
        return replace(self, tokenizer=built or DEFAULT_TOKENIZER)

    @classmethod
    def from_store(cls, store: PassageStore) -> IndexConfig:
        """What an existing index was built with, from its metadata."""
        try:
            meta = {f.name: store.get_meta(f.name) for f in fields(cls)}
        except sqlite3.OperationalError as err:  # not a store this program wrote
            raise ValueError(f"not an index store ({err})") from None
        if meta["backend"] is None:
            meta["backend"] = DEFAULT_BACKEND
        missing = [k for k, v in meta.items() if v is None]
        if missing:
            raise ValueError(f"index metadata lacks {', '.join(missing)}")
        return cls(
            embedder=str(meta["embedder"]),
            dim=int(str(meta["dim"])),
            tokenizer=str(meta["tokenizer"]),
            chunk_size=int(str(meta["chunk_size"])),
            dedupe_threshold=float(str(meta["dedupe_threshold"])),
            shingle_size=int(str(meta["shingle_size"])),
            minhash_perm=int(str(meta["minhash_perm"])),
            backend=str(meta["backend"]),
        )


@dataclass(frozen=True)
class NewDocument:
    """A document ready to index: the name citations use, its content, its chunks."""

    file: str
    document: Document
    chunks: Sequence[Chunk]


@dataclass
class AddResult:
    passages: int = 0  # chunks of the documents
    new_passages: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    reused_vectors: int = 0  # new passages whose vector came from the file's previous version

    @property
    def merged(self) -> int:
        return self.exact_duplicates + self.near_duplicates
