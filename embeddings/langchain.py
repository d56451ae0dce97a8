"""Adapter exposing any `Embedder` as a LangChain `Embeddings`."""

from __future__ import annotations

from langchain_core.embeddings import Embeddings

from embeddings.base import Embedder


class LangChainEmbeddings(Embeddings):
    """Lets LangChain components (vector stores, retrievers) use our embedders.

    Documents take the passage role and queries the query role, so asymmetric models such
    as e5 get the right prefix on each side.
    """

    def __init__(self, embedder: Embedder, batch_size: int = 32) -> None:
        self.embedder = embedder
        self.batch_size = batch_size

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = self.embedder.embed(
            texts, kind="passage", batch_size=self.batch_size
        ).tolist()
        return vectors

    def embed_query(self, text: str) -> list[float]:
        vector: list[float] = self.embedder.embed_query(text).tolist()
        return vector
