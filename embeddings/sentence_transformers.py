"""Any sentence-transformers model, by hub name or local path (needs the 'st' extra)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from embeddings.base import Embedder, Kind, Vectors
from embeddings.device import CPU_BATCH, Placement
from embeddings.quiet import quiet_model_loading

MISSING_BACKEND = (
    "the sentence-transformers backend needs the 'st' extra: "
    "pip install torch==2.13.0 && pip install '.[st]'"
)

# Prompt names a model's config may define for each role, most specific first.
# sentence-transformers itself calls the passage side "document".
_PROMPT_NAMES: dict[Kind, tuple[str, ...]] = {
    "query": ("query",),
    "passage": ("passage", "document"),
}


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model, L2-normalised, on the CPU or a CUDA GPU.

    Roles follow the model's own configured prompts ("query", "passage" or "document");
    a model without them (all-MiniLM-L6-v2, say) embeds both roles as plain text.
    """

    def __init__(self, model: str, placement: Placement | None = None) -> None:
        """Loads the model.

        Args:
            model: A hub name ("sentence-transformers/all-MiniLM-L6-v2") or a local directory.
                Set HF_HUB_OFFLINE=1 to forbid downloads.
            placement: The device (`embeddings.device.select_placement`); the CPU in fp32
                when None. On CUDA the model runs in fp16, `batch_size` texts a pass.

        Raises:
            ImportError: sentence-transformers (and so torch) is not installed.
        """
        # Imported here, not at module level: it pulls in torch, which `import embeddings`
        # and `import rag` must never need.
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ImportError(MISSING_BACKEND) from exc
        self.name = f"sentence-transformers:{model}"
        quiet_model_loading()
        self.placement = placement or Placement("cpu", "fp32", CPU_BATCH)
        self._model: Any = SentenceTransformer(model, device=self.placement.device)
        if self.placement.precision == "fp16":
            self._model.half()
        prompts: dict[str, str | None] = dict(self._model.prompts or {})
        # An explicit prompt per role, "" for plain text, so that a model's
        # default_prompt_name cannot leak into the role that should not have it.
        self._prompts: dict[Kind, str] = {
            kind: next((prompts[name] or "" for name in names if name in prompts), "")
            for kind, names in _PROMPT_NAMES.items()
        }
        self.dim = self._dimension()
        # Hugging Face fast tokenizers raise "Already borrowed" when two threads use
        # one at the same time.
        self._lock = threading.Lock()

    def embed_batch(self, texts: Sequence[str], kind: Kind) -> Vectors:
        with self._lock:
            vectors = self._model.encode(
                list(texts),
                prompt=self._prompts[kind],
                # On a CPU one pass of everything given: the caller's batch is the batch.
                batch_size=(
                    max(len(texts), 1)
                    if self.placement.device == "cpu"
                    else self.placement.batch_size
                ),
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    def _dimension(self) -> int:
        # The method was renamed in sentence-transformers 6; both may return None for
        # models whose last module does not declare it, so fall back to measuring.
        method = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        dim = method()
        if dim is None:
            dim = self._model.encode(["dimension probe"], convert_to_numpy=True).shape[1]
        return int(dim)
