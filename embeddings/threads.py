"""How many cores the engine may use, and which vector instructions the CPU offers."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

# Best first: what `rag bench` reports and the backends key on.
_INSTRUCTION_SETS = (
    ("amx_bf16", "AMX-BF16"),
    ("avx512_bf16", "AVX512-BF16"),
    ("avx512_vnni", "AVX512-VNNI"),
    ("avx512f", "AVX512"),
    ("avx2", "AVX2"),
)


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs the container's cgroup quota allows (cgroup v2 `cpu.max`), or None for no quota."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return int(quota) / int(period)


def available_cores(
    environ: Mapping[str, str] | None = None, cgroup_root: Path = Path("/sys/fs/cgroup")
) -> int:
    """Threads for the engine's one pool: the cores this process may run on.

    `OMP_NUM_THREADS` wins when set, as every OpenMP runtime honours it; otherwise the CPU
    affinity mask (taskset, a container's cpuset), capped by the cgroup CPU quota
    (`docker --cpus`), which `os.cpu_count()` ignores.
    """
    environ = os.environ if environ is None else environ
    requested = environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if requested.isdigit() and int(requested) > 0:
        return int(requested)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    quota = cgroup_cpu_limit(cgroup_root)
    if quota is not None:
        cores = min(cores, max(1, int(quota)))
    return cores


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (empty where /proc/cpuinfo is missing)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def instruction_set(flags: frozenset[str]) -> str:
    """The best vector instruction set among `flags`, for reports: "AVX512-BF16", say."""
    return next((name for flag, name in _INSTRUCTION_SETS if flag in flags), "baseline")


def has_vnni(flags: frozenset[str]) -> bool:
    """True where int8 dot products run natively (AVX512-VNNI, AVX-VNNI or AMX-INT8): what
    ONNX Runtime's quantised MatMuls are fast on."""
    return bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})


def has_fast_bf16(flags: frozenset[str]) -> bool:
    """True where bf16 matmuls run natively (AVX512-BF16 or AMX), not emulated."""
    return bool(flags & {"avx512_bf16", "amx_bf16"})
