"""What the embedders are built with, besides their name: plain data, filled from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from embeddings.device import DeviceName
from embeddings.e5_engines import Backend

__all__ = ["DEFAULT_BACKEND", "DEFAULT_DATA_DIR", "Backend", "DeviceName", "EmbedderOptions"]

# Where the converted model (and its ONNX export) is cached: one conversion per machine.
DEFAULT_DATA_DIR = Path.home() / ".cache" / "rag-zh"
# The fastest backend measured on these CPUs at equal quality (docs/benchmarks.md).
DEFAULT_BACKEND: Backend = "torch-bf16"


@dataclass(frozen=True)
class EmbedderOptions:
    """Where the converted model lives, the device, the CPU backend and the engine threads."""

    data_dir: Path = DEFAULT_DATA_DIR
    device: DeviceName = "auto"  # RAG_DEVICE
    backend: Backend = DEFAULT_BACKEND  # RAG_E5_BACKEND: the CPU engine of e5-small
    threads: int = 0  # RAG_EMBED_THREADS; 0: the cores this process may use
