"""Builds an embedder from its configured name (`RAG_EMBEDDER`)."""

from __future__ import annotations

from embeddings.base import Embedder
from embeddings.e5 import E5Embedder
from embeddings.sentence_transformers import SentenceTransformerEmbedder

SENTENCE_TRANSFORMERS_PREFIX = "sentence-transformers:"

EMBEDDER_NAMES: tuple[str, ...] = (
    E5Embedder.name,
    f"{SENTENCE_TRANSFORMERS_PREFIX}<model name or path>",
)


def make_embedder(name: str) -> Embedder:
    """Builds (and loads) the embedder called `name`.

    Args:
        name: "e5-small", or "sentence-transformers:" followed by a sentence-transformers
            model name or a local model directory.

    Returns:
        The loaded embedder; its `name` equals `name`.

    Raises:
        ValueError: `name` is not one of `EMBEDDER_NAMES`.
        ImportError: The backend's optional dependency is not installed.
    """
    if name == E5Embedder.name:
        return E5Embedder()
    if name.startswith(SENTENCE_TRANSFORMERS_PREFIX):
        model = name.removeprefix(SENTENCE_TRANSFORMERS_PREFIX).strip()
        if model:
            return SentenceTransformerEmbedder(model)
    raise ValueError(f"unknown embedder {name!r}; valid names: {', '.join(EMBEDDER_NAMES)}")
