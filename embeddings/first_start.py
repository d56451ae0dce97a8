"""The first start of e5-small, each step in a child process: convert, export, quantise.

Each step runs once per data directory (file locks and atomic renames in
`embeddings.convert` and `embeddings.e5_engines.export_onnx`). Done in the embedder's own
process they left it, for its whole life, with torch imported and 1.55 GB resident (0.6 GB
after a start from the cache), having peaked at 3.7 GB: a service started on an empty data
directory carried that. A child per step returns its memory when it exits, and the peak is
the largest step's (quantising, 2.8 GB).

    python -m embeddings.first_start STEP DATA_DIR   (STEP: convert, onnx, int8-source, onnx-int8)

The int8 default exports an fp32 graph only to quantise it, and deletes it after: its
engine never reads it (450 MB). The fp32 backend's own export (`onnx`) is kept, and int8
is quantised from it where it exists.
"""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from embeddings.convert import Converted, converted_folder, ensure_converted, is_converted
from embeddings.e5_engines import (
    MISSING_EXPORT,
    ONNX_FP32,
    ONNX_INT8,
    ONNX_INT8_SOURCE,
    export_int8_source,
    export_onnx,
)

log = logging.getLogger("embeddings")
Run = Callable[..., "subprocess.CompletedProcess[str]"]
STEPS = ("convert", "onnx", "int8-source", "onnx-int8")
# A child's exit status when what it needs is not installed: its message is the error.
MISSING = 3


def steps_needed(folder: Path, onnx: bool, quantized: bool) -> list[str]:
    """The steps not yet done in the converted `folder` for an engine (ONNX `onnx`, int8 with
    `quantized`), in order."""
    steps = [] if is_converted(folder) else ["convert"]
    if not onnx:
        return steps
    if not quantized:
        return steps + ([] if (folder / ONNX_FP32).is_file() else ["onnx"])
    if (folder / ONNX_INT8).is_file():
        return steps
    have_source = any((folder / name).is_file() for name in (ONNX_FP32, ONNX_INT8_SOURCE))
    return steps + ([] if have_source else ["int8-source"]) + ["onnx-int8"]


def prepare(data_dir: Path, onnx: bool, quantized: bool, run: Run = subprocess.run) -> Converted:
    """Does the missing first-start steps, each in a child process; returns the converted
    folder and the seconds spent (0.0 when all was done before).

    Raises:
        ImportError: a step needs what is not installed (torch, to export), named before
            anything is done.
        RuntimeError: a step failed; the message ends with the child's last words.
    """
    folder = converted_folder(data_dir)
    steps = steps_needed(folder, onnx, quantized)
    if {"onnx", "int8-source"}.intersection(steps) and importlib.util.find_spec("torch") is None:
        raise ImportError(MISSING_EXPORT)
    started = time.perf_counter()
    if steps:
        # A warning, so that it shows where nothing configured logging (the CLI): half a
        # minute of silence at the first `rag ingest` would look like a hang.
        log.warning(
            "first start: preparing the bundled e5-small model in %s (%s; once, about 25 s "
            "on two cores)",
            data_dir,
            ", ".join(steps),
        )
    for step in steps:
        done = run(
            [sys.executable, "-m", "embeddings.first_start", step, str(data_dir)],
            capture_output=True,
            text=True,
        )
        said = done.stderr.strip().splitlines()[-1:] or ["(nothing)"]
        if done.returncode == MISSING:
            raise ImportError(said[0])
        if done.returncode != 0:
            raise RuntimeError(f"the first start of e5-small failed at {step!r}: {said[0]}")
    return Converted(folder, time.perf_counter() - started if steps else 0.0)


def run_step(step: str, data_dir: Path) -> None:
    folder = ensure_converted(data_dir).path
    if step in ("onnx", "onnx-int8"):
        export_onnx(folder, quantized=step == "onnx-int8")
    elif step == "int8-source":
        export_int8_source(folder)
    elif step != "convert":
        raise ValueError(f"unknown step {step!r}; steps: {', '.join(STEPS)}")


def main(argv: Sequence[str] | None = None) -> int:
    step, data_dir = argv if argv is not None else sys.argv[1:]
    try:
        run_step(step, Path(data_dir))
    except ImportError as err:
        print(err, file=sys.stderr)
        return MISSING
    return 0


if __name__ == "__main__":
    sys.exit(main())
