"""Where the embedding engine runs (`RAG_DEVICE=auto|cpu|cuda`) and with which precision."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

DeviceName: TypeAlias = Literal["auto", "cpu", "cuda"]
Precision: TypeAlias = Literal["fp32", "bf16", "fp16", "int8"]

# Texts per forward pass. On a GPU larger batches keep it busy; on a CPU a batch only has
# to be large enough to amortise the per-call overhead, and smaller ones pad less.
CPU_BATCH = 32
CUDA_BATCH = 256


@dataclass(frozen=True)
class Placement:
    """The device the engine uses, its numeric precision and texts per forward pass."""

    device: Literal["cpu", "cuda"]
    precision: Precision
    batch_size: int


def select_placement(
    requested: DeviceName, cuda_available: bool, cpu_precision: Precision = "fp32"
) -> Placement:
    """Chooses the device.

    Args:
        requested: "cuda" insists on a GPU, "cpu" never uses one, "auto" takes a GPU when
            torch sees one.
        cuda_available: What `torch.cuda.is_available()` says (injected, so this is
            testable without a GPU).
        cpu_precision: The CPU backend's precision; on CUDA it is always fp16.

    Raises:
        RuntimeError: "cuda" was requested and there is no usable GPU.
    """
    if requested not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {requested!r}")
    if requested == "cuda" and not cuda_available:
        raise RuntimeError(
            "RAG_DEVICE=cuda but torch sees no CUDA GPU (a CPU-only torch, or no driver); "
            "use RAG_DEVICE=auto or cpu"
        )
    if requested != "cpu" and cuda_available:
        return Placement("cuda", "fp16", CUDA_BATCH)
    # int8 groups CPU_BATCH texts too, but its engine runs each one alone (`OnnxEngine`).
    return Placement("cpu", cpu_precision, CPU_BATCH)


def cuda_available(requested: DeviceName) -> bool:
    """Whether torch sees a CUDA GPU, asked only where the answer can be yes.

    Importing torch costs seconds, and the ONNX engine runs without it: "cpu", no torch,
    or Linux without a GPU driver answer no without importing it.
    """
    if requested == "cpu" or not gpu_driver_present():
        return False
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


# What a GPU driver leaves on Linux: NVIDIA's (CUDA), WSL 2's GPU bridge (CUDA under
# Windows) and AMD's (ROCm, which torch also reports through `torch.cuda`).
GPU_DRIVER_PATHS = (
    Path("/proc/driver/nvidia/version"),
    Path("/dev/nvidiactl"),
    Path("/dev/dxg"),
    Path("/dev/kfd"),
)


def gpu_driver_present(paths: Sequence[Path] = GPU_DRIVER_PATHS) -> bool:
    """False only where it is certain torch could see no GPU: Linux without a GPU driver.

    Elsewhere (another OS, or a driver) torch is asked.
    """
    if not sys.platform.startswith("linux"):
        return True
    return any(path.exists() for path in paths)
