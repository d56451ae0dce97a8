"""Test fakes: deterministic, model-free embedders for fast unit tests of the pipeline."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence

import numpy as np

from embeddings.base import Embedder, Kind, Vectors


class HashEmbedder(Embedder):
    """TEST FAKE, not a real model: a hashed bag of character bigrams, L2-normalised.

    Texts that share bigrams get similar vectors, which is enough to exercise indexing and
    retrieval without loading a model. Deterministic across processes (blake2b, not the
    salted built-in `hash`). Both roles embed alike. `calls` counts `embed_batch` calls and
    `texts_embedded` the texts they received, so tests can assert what was (re-)embedded.
    """

    name = "fake-hash"
    dim = 64
    salt = b""  # another salt puts the bigrams in other buckets: another vector space

    def __init__(self) -> None:
        self.calls = 0
        self.texts_embedded = 0

    def embed_batch(self, texts: Sequence[str], kind: Kind) -> Vectors:
        self.calls += 1
        self.texts_embedded += len(texts)
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in zip(vectors, texts, strict=True):
            # Boundary marks give every text, even "" or one character, at least one bigram,
            # so no row is all zeros and every row can be normalised.
            padded = f"\x02{text}\x03"
            for start in range(len(padded) - 1):
                row[_bucket(padded[start : start + 2], self.dim, self.salt)] += 1.0
            row /= np.linalg.norm(row)
        return vectors


def _bucket(bigram: str, dim: int, salt: bytes = b"") -> int:
    digest = hashlib.blake2b(bigram.encode("utf-8"), digest_size=8, salt=salt).digest()
    return int.from_bytes(digest, "little") % dim


class OtherHashEmbedder(HashEmbedder):
    """TEST FAKE: another vector space (salted buckets, 48 dimensions), as a second model
    would be: `rag reindex` moves an index from `HashEmbedder`'s space into this one."""

    name = "fake-hash-other"
    dim = 48
    salt = b"other"


class GatedEmbedder(HashEmbedder):
    """TEST FAKE: a HashEmbedder whose `gated` batches wait for `release` once `hold` is set.

    Gating passages lets a test freeze an ingestion midway, inside its store transaction,
    and look at what readers see meanwhile; gating queries keeps a request inside the
    service (and its admission slot) for as long as a test needs.
    """

    def __init__(self, gated: Kind = "passage") -> None:
        super().__init__()
        self.gated = gated
        self.hold = threading.Event()
        self.waiting = threading.Event()  # set while a batch is held
        self.release = threading.Event()

    def embed_batch(self, texts: Sequence[str], kind: Kind) -> Vectors:
        if kind == self.gated and self.hold.is_set():
            self.waiting.set()
            self.release.wait(timeout=30)
        return super().embed_batch(texts, kind)
