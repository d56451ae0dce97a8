"""Sentence choice by meaning: do e5 vectors of sentences pick the answering one?

    python -m eval.studies.sentence_vectors ../shared/datasets [--contexts 150]

Most answers that miss although the right passage came first cite a sentence that shares
more words with the question than the answering one (docs/benchmarks.md, issue 17). This
measures whether e5-small's sense of meaning would choose better, on gold contexts of CMRC
2018 dev and DRCD dev (`--contexts` sampled paragraphs of each, all their questions), as the
share of questions whose first chosen sentence holds the gold answer's start:
- the composer's own first pick (its IDF-weighted cover of the question's words, with the
  typed-answer bonus);
- `late`: the cosine of the question's vector to the mean of the sentence's token states
  from the paragraph's one forward pass ("late chunking": no extra pass at ingest);
- `alone`: the cosine to the sentence embedded by itself (one more pass per sentence);
- each blended with the composer's gain (`gain + weight x cosine`), the weight chosen on
  one set and measured on the other.
Runs the converted model on torch (fp32): a study, not the service's engine.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.convert import PROMPTS, ensure_converted, normalization_table
from embeddings.options import DEFAULT_DATA_DIR
from rag.answer.extractive import ExtractiveComposer, ExtractiveConfig
from rag.settings import Settings
from rag.text.script import fold_script
from rag.text.sentences import split_sentences
from rag.text.tokenize import DEFAULT_TOKENIZER, get_tokenizer
from rag.types import Passage, ScoredPassage

SETS = ("cmrc2018_dev.json", "drcd_dev.json")
WEIGHTS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
Span = tuple[int, int]


@dataclass(frozen=True)
class Row:
    """One question: its gold sentence, and each sentence's composer gain and cosines."""

    gold: Span
    composer: Span | None  # the composer's first pick
    gain: dict[Span, float]
    late: dict[Span, float]
    alone: dict[Span, float]


class Encoder:
    """The converted e5-small on torch: token states and mean-pooled, normalised vectors."""

    def __init__(self, data_dir: Path) -> None:
        import torch
        from tokenizers import Tokenizer
        from transformers import AutoModel

        folder = ensure_converted(data_dir).path
        self._torch = torch
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._normalization = normalization_table(folder)
        self._model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()

    def states(self, kind: str, text: str) -> tuple[np.ndarray, list[Span]]:
        """Token states with <s> and </s> (the first 510 content tokens), and each token's
        character span in `text` ((-1, -1) for the specials)."""
        prefix = PROMPTS[kind]
        encoding = self._tokenizer.encode(
            prefix + text.translate(self._normalization), add_special_tokens=False
        )
        ids = [0, *encoding.ids[:510], 2]
        shift = len(prefix)
        spans = [(-1, -1), *((a - shift, b - shift) for a, b in encoding.offsets[:510]), (-1, -1)]
        with self._torch.inference_mode():
            tensor = self._torch.tensor([ids])
            hidden = self._model(input_ids=tensor, attention_mask=tensor * 0 + 1)
        return hidden.last_hidden_state[0].numpy(), spans

    def vector(self, kind: str, text: str) -> np.ndarray:
        return _unit(self.states(kind, text)[0].mean(0))


def _unit(v: np.ndarray) -> np.ndarray:
    return np.asarray(v / (np.linalg.norm(v) + 1e-12))


class _Lexicon:
    """IDF over the sampled paragraphs' sentences, for the composer's question weights."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.tokenize = get_tokenizer(Settings().tokenizer or DEFAULT_TOKENIZER)
        self._df: Counter[str] = Counter()
        self._n = 0
        for text in texts:
            for a, b in split_sentences(text):
                self._df.update(set(self.tokenize(fold_script(text[a:b]))))
                self._n += 1

    def idf(self, tokens: Iterable[str]) -> dict[str, float]:
        n, df = self._n, self._df
        return {t: math.log((n - df[t] + 0.5) / (df[t] + 0.5) + 1) for t in tokens}


def composer_gains(
    composer: ExtractiveComposer, question: str, passage: ScoredPassage
) -> tuple[dict[Span, float], Span | None]:
    """Each sentence's share of the question as the composer's first pick weighs it (its
    `_choose` with nothing covered yet), and the sentence it picks first."""
    selection = composer.select(question, [passage])
    gains = {
        (s.start, s.end): composer.gain(s, selection.weights, selection.total or 1.0)
        for s in selection.sentences
    }
    first = selection.chosen[0] if selection.chosen else None
    return gains, ((first.start, first.end) if first else None)


def measure_set(path: Path, contexts: int, encoder: Encoder, seed: int) -> list[Row]:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    paragraphs = [p for article in data for p in article["paragraphs"]]
    random.Random(seed).shuffle(paragraphs)
    paragraphs = paragraphs[:contexts]
    composer = ExtractiveComposer(ExtractiveConfig(), _Lexicon(p["context"] for p in paragraphs))
    rows = []
    for paragraph in paragraphs:
        text = paragraph["context"]
        sentences = [(a, b) for a, b in split_sentences(text) if text[a:b].strip()]
        states, spans = encoder.states("passage", text)
        late, alone = {}, {}
        for a, b in sentences:
            tokens = [i for i, (s, _) in enumerate(spans) if s >= 0 and a <= s < b]
            if tokens:  # past the first 510 tokens a sentence has no state
                late[(a, b)] = _unit(states[tokens].mean(0))
            alone[(a, b)] = encoder.vector("passage", text[a:b])
        passage = ScoredPassage(Passage(1, text, ()), 1.0)
        for qa in paragraph["qas"]:
            answer = qa["answers"][0]
            start = answer["answer_start"]
            if text[start : start + len(answer["text"])] != answer["text"]:
                continue  # an offset that does not point at its answer
            gold = next((s for s in sentences if s[0] <= start < s[1]), None)
            if gold is None:
                continue
            q = encoder.vector("query", qa["question"])
            gains, first = composer_gains(composer, qa["question"], passage)
            rows.append(
                Row(
                    gold,
                    first,
                    gains,
                    {s: float(v @ q) for s, v in late.items()},
                    {s: float(v @ q) for s, v in alone.items()},
                )
            )
    return rows


def accuracy(rows: Sequence[Row], cosine: str | None, weight: float) -> float:
    """Share of rows whose best sentence by `gain + weight x cosine` is the gold one; the
    composer's own pick when `cosine` is None, the cosine alone when `weight` is inf."""
    hits = 0
    for row in rows:
        if cosine is None:
            hits += row.composer == row.gold
            continue
        sims: dict[Span, float] = getattr(row, cosine)
        if not sims:
            continue
        if math.isinf(weight):
            scores = sims
        else:
            scores = {span: row.gain.get(span, 0.0) + weight * sim for span, sim in sims.items()}
        # Ties go to the earlier sentence, as the composer's do.
        hits += max(scores, key=lambda span: (scores[span], -span[0])) == row.gold
    return hits / len(rows) if rows else 0.0


def report(rows: dict[str, list[Row]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, own in rows.items():
        other = next(r for n, r in rows.items() if n != name)
        entry: dict[str, Any] = {"questions": len(own), "composer": accuracy(own, None, 0)}
        for cosine in ("late", "alone"):
            fitted = max(WEIGHTS, key=lambda weight: accuracy(other, cosine, weight))
            entry[cosine] = {
                "alone": accuracy(own, cosine, math.inf),
                "blend_weight_from_other_set": fitted,
                "blend": accuracy(own, cosine, fitted),
            }
        out[name] = entry
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", type=Path)
    parser.add_argument("--contexts", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    encoder = Encoder(DEFAULT_DATA_DIR)
    rows = {
        name: measure_set(args.datasets / name, args.contexts, encoder, args.seed) for name in SETS
    }
    print(json.dumps(report(rows), indent=2))


if __name__ == "__main__":
    main()
