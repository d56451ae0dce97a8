"""Text embedders behind one interface, built by name; heavy backends load only when built."""

from embeddings.base import Embedder, Kind, Vectors
from embeddings.e5 import E5Embedder
from embeddings.factory import EMBEDDER_NAMES, make_embedder
from embeddings.sentence_transformers import SentenceTransformerEmbedder

__all__ = [
    "EMBEDDER_NAMES",
    "E5Embedder",
    "Embedder",
    "Kind",
    "SentenceTransformerEmbedder",
    "Vectors",
    "make_embedder",
]
