"""The embedder interface: texts in, L2-normalised float32 vectors out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Literal, TypeAlias, get_args

import numpy as np
import numpy.typing as npt

Kind: TypeAlias = Literal["query", "passage"]
Vectors: TypeAlias = npt.NDArray[np.float32]

KINDS: tuple[str, ...] = get_args(Kind)


class Embedder(ABC):
    """A text embedding model.

    Every row an embedder returns has unit L2 norm, so the inner product of two vectors is
    their cosine similarity: the inner-product FAISS index and the dense retriever rely on it.
    Subclasses implement `embed_batch` only; batching and the query helper are built on it.
    """

    name: str
    dim: int

    @abstractmethod
    def embed_batch(self, texts: Sequence[str], kind: Kind) -> Vectors:
        """Embeds one batch of texts.

        Args:
            texts: At least one text.
            kind: "query" for search queries, "passage" for indexed text; asymmetric models
                (e5) encode the two differently.

        Returns:
            A float32 array of shape (len(texts), dim) with L2-normalised rows.
        """

    def embed(self, texts: Sequence[str], kind: Kind = "passage", batch_size: int = 32) -> Vectors:
        """Embeds any number of texts, `batch_size` at a time.

        Args:
            texts: The texts; may be empty.
            kind: "query" or "passage".
            batch_size: Texts per `embed_batch` call; bounds peak memory.

        Returns:
            A float32 array of shape (len(texts), dim) with L2-normalised rows.
        """
        # A str is a Sequence[str] too: without this check one text would become one
        # vector per character.
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts; use embed_query() for one text")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        batches = []
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            batches.append(self._checked(self.embed_batch(batch, kind), len(batch)))
        return batches[0] if len(batches) == 1 else np.concatenate(batches)

    def embed_query(self, text: str) -> Vectors:
        """Embeds one search query; returns a float32 vector of shape (dim,)."""
        vector: Vectors = self.embed([text], kind="query")[0]
        return vector

    def _checked(self, vectors: Vectors, count: int) -> Vectors:
        # A backend returning the wrong shape would otherwise surface much later as a
        # misaligned index, far from its cause.
        if vectors.shape != (count, self.dim):
            raise RuntimeError(
                f"{self.name} returned shape {vectors.shape}, expected ({count}, {self.dim})"
            )
        return vectors.astype(np.float32, copy=False)
