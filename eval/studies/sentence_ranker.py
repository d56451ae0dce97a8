"""Sentence choice by a learned linear ranker: does weighing more evidence pick better?

    python -m eval.studies.sentence_ranker ../shared/datasets [--contexts N]
    python -m eval.studies.sentence_ranker ../shared/datasets --index DIR --contexts N --after M

The composer picks its first sentence by one hand-set sum (the IDF-weighted cover of the
question's words, half for words only elsewhere in the passage, plus a bonus for a typed
answer next to the question's anchor word). This fits a conditional logit (a softmax over
the sentences of the passage the composer picked from) on FEATURES the composer could
compute cheaply, on one dev set (CMRC 2018 or DRCD), and measures on the other, as the
share of questions whose first-ranked sentence holds the gold answer, beside the
composer's own pick. Either on gold contexts (`--contexts` sampled paragraphs, 0: all), or
in the open domain (`--index`: an index of a slice of both sets, `eval.datasets.
first_contexts`, built there and kept, each question asked of it; a question counts where
the composer's passage holds a gold answer, the rest as misses for both).

A measured negative (docs/benchmarks.md, issue 17): the gains are 0-3 points on the first
sentence, and none in the open-domain answer hit, so the composer keeps its sum.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eval.metrics import answer_hit
from eval.studies.sentence_vectors import SETS, _Lexicon
from rag.answer.extractive import (
    ANSWER_SLOT,
    SLOTS,
    ExtractiveComposer,
    ExtractiveConfig,
    Selection,
    grow,
)
from rag.answer.spans.candidates import foldable
from rag.answer.spans.features import Question, prepare
from rag.answer.spans.select import Span as ScoredSpan
from rag.answer.spans.select import best_span
from rag.types import Passage, ScoredPassage

Span = tuple[int, int]
FEATURES = (
    "gain",  # the composer's own key: cover of the question, typed-answer bonus included
    "typed",  # a typed answer next to the question's anchor word
    "is_top",  # the sentence with the most direct cover of the question's words
    "after_top",  # the sentence right after it
    "before_top",  # and right before it
    "left_anchor",  # longest end (<= 6 characters) of the question before its wh-word, here
    "right_anchor",  # longest start (<= 6) of the question after its wh-word, here
    "bigrams",  # share of the question's character bigrams found here
    "first",  # the passage's first sentence
    "position",  # index / number of sentences
    "log_len",  # log of its length in characters
    "best_span",  # the span scorer's share for the passage's best span, if it is here
)
_ANCHOR = 6


@dataclass(frozen=True)
class Evidence:
    """What the composer knows of one sentence of the passage: offsets and its cover."""

    start: int
    end: int
    gain: float  # the composer's key before any rank discount
    direct: float  # share of the question's words in the sentence itself
    typed: bool


def _suffix_found(text: str, part: str) -> int:
    n = 0
    while n < min(len(part), _ANCHOR) and part[len(part) - n - 1 :] in text:
        n += 1
    return n


def _prefix_found(text: str, part: str) -> int:
    n = 0
    while n < min(len(part), _ANCHOR) and part[: n + 1] in text:
        n += 1
    return n


def sentence_features(
    question: Question, folded: str, sentences: Sequence[Evidence], span: ScoredSpan | None
) -> np.ndarray:
    """One row of FEATURES per sentence (in passage order); `folded` is the passage folded."""
    bigrams = {question.folded[i : i + 2] for i in range(len(question.folded) - 1)}
    n = len(sentences)
    rows = np.zeros((n, len(FEATURES)))
    for i, s in enumerate(sentences):
        text = folded[s.start : s.end]
        rows[i] = (
            s.gain,
            float(s.typed),
            0.0,
            0.0,
            0.0,
            _suffix_found(text, question.left) / _ANCHOR,
            _prefix_found(text, question.right) / _ANCHOR,
            sum(g in text for g in bigrams) / (len(bigrams) or 1),
            float(i == 0),
            i / n,
            math.log(max(s.end - s.start, 1)),
            span.score if span is not None and s.start <= span.start < s.end else 0.0,
        )
    if n:
        top = max(range(n), key=lambda i: (sentences[i].direct, -i))
        rows[top, 2] = 1.0
        if top + 1 < n:
            rows[top + 1, 3] = 1.0
        if top > 0:
            rows[top - 1, 4] = 1.0
    return rows


@dataclass(frozen=True)
class Row:
    """One question on its gold context: the sentences, their features, the picks."""

    right: np.ndarray  # which sentences hold the gold answer (at least one)
    composer: int  # index of the composer's first pick by cover
    x: np.ndarray  # sentences x FEATURES
    spans: tuple[Span, ...]  # the sentences
    answer: Span | None  # the gold answer's offsets, when known (gold contexts)


def sentence_rows(
    composer: ExtractiveComposer,
    question: str,
    passages: Sequence[ScoredPassage],
    selection: Selection,
) -> tuple[list[Any], np.ndarray]:
    """The sentences of the passage of the composer's first pick, and each one's FEATURES."""
    rank = selection.chosen[0].rank
    own = [s for s in selection.sentences if s.rank == rank]
    weights, total = selection.weights, selection.total
    words = sum(v for w, v in weights.items() if w not in SLOTS) or 1.0
    evidence = [
        Evidence(
            s.start,
            s.end,
            composer.gain(s, weights, total),
            sum(weights[t] for t in s.terms if t not in SLOTS) / words,
            ANSWER_SLOT in s.terms,
        )
        for s in own
    ]
    q = prepare(question)
    text = passages[rank].passage.text
    folded = foldable(text)
    span = best_span(q, text, folded=folded) if q.kind != "why_how" else None
    return own, sentence_features(q, folded, evidence, span)


def gold_context_rows(path: Path, contexts: int, seed: int) -> tuple[list[Row], int]:
    """Rows of `contexts` sampled paragraphs (0: all), each its own one passage, and how many
    questions the composer gave no sentence for (a miss for every ranker)."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    paragraphs = [p for article in data for p in article["paragraphs"]]
    random.Random(seed).shuffle(paragraphs)
    paragraphs = paragraphs[:contexts] if contexts else paragraphs
    composer = ExtractiveComposer(ExtractiveConfig(), _Lexicon(p["context"] for p in paragraphs))
    rows, unanswered = [], 0
    for paragraph in paragraphs:
        text = paragraph["context"]
        passages = [ScoredPassage(Passage(1, text, ()), 1.0)]
        for qa in paragraph["qas"]:
            answer = qa["answers"][0]
            start = answer["answer_start"]
            if text[start : start + len(answer["text"])] != answer["text"]:
                continue  # an offset that does not point at its answer
            selection = composer.select(qa["question"], passages)
            if not selection.chosen:
                unanswered += 1
                continue
            own, x = sentence_rows(composer, qa["question"], passages, selection)
            spans = tuple((s.start, s.end) for s in own)
            right = np.asarray([a <= start < b for a, b in spans])
            if right.any():
                pick = own.index(selection.chosen[0])
                answer_span = (start, start + len(answer["text"]))
                rows.append(Row(right, pick, x, spans, answer_span))
    return rows, unanswered


def open_domain_rows(
    datasets: Path, index: Path, contexts: int, after: int
) -> dict[str, tuple[list[Row], int]]:
    """Rows of the questions of a slice of each set (`first_contexts(set, contexts, after)`),
    asked of an index of both slices, where the composer's first sentence comes from a
    passage holding a gold answer; and how many questions it was not."""
    from embeddings.factory import make_embedder
    from eval.datasets import first_contexts, load_squad, write_corpus
    from rag.pipeline import open_pipeline
    from rag.settings import Settings

    settings = Settings()
    sets = [first_contexts(load_squad(datasets / name), contexts, after) for name in SETS]
    pipeline = open_pipeline(
        settings, make_embedder(settings.embedder, settings.embedder_options()), index
    )
    with tempfile.TemporaryDirectory() as tmp:
        write_corpus(sets, Path(tmp))
        pipeline.ingest([Path(tmp)])
    composer = pipeline.composer
    assert isinstance(composer, ExtractiveComposer)
    out = {}
    for name, squad in zip(SETS, sets, strict=True):
        rows, other = [], 0
        for q in squad.questions:
            passages = pipeline.search(q.question, 10).passages
            selection = composer.select(q.question, passages)
            if not selection.chosen:
                other += 1
                continue
            own, x = sentence_rows(composer, q.question, passages, selection)
            text = passages[selection.chosen[0].rank].passage.text
            spans = tuple((s.start, s.end) for s in own)
            right = np.asarray(
                [any(answer_hit(text[a:b], [g]) for g in q.answers) for a, b in spans]
            )
            if not right.any():
                other += 1
                continue
            rows.append(Row(right, own.index(selection.chosen[0]), x, spans, None))
        out[name] = (rows, other)
    pipeline.close()
    return out


Model = tuple[np.ndarray, np.ndarray, np.ndarray]  # weights, mean, scale


def fit(rows: Sequence[Row], l2: float = 1.0) -> Model:
    """Conditional logit on standardised features (a softmax over each question's
    sentences, the right ones' summed probability the likelihood), with an L2 penalty of
    `l2` per question."""
    from scipy.optimize import minimize

    stacked = np.vstack([r.x for r in rows])
    mean, scale = stacked.mean(0), stacked.std(0) + 1e-9
    xs = [(r.x - mean) / scale for r in rows]

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = 0.0, np.zeros_like(w)
        for x, r in zip(xs, rows, strict=True):
            z = x @ w
            z -= z.max()
            e = np.exp(z)
            right = np.where(r.right, e, 0.0)
            total += float(math.log(e.sum()) - math.log(right.sum()))
            grad += (e / e.sum()) @ x - (right / right.sum()) @ x
        n = len(xs)
        return total / n + l2 * float(w @ w) / (2 * n), grad / n + l2 * w / n

    result = minimize(loss, np.zeros(stacked.shape[1]), jac=True, method="L-BFGS-B")
    return result.x, mean, scale


def accuracy(rows: Sequence[Row], unanswered: int, model: Model | None, budget: int = 0) -> float:
    """Share of questions whose first pick (the composer's, or by `model`) is the gold
    sentence, or (`budget` > 0) whose pick grown to `budget` characters holds the whole gold
    answer. Questions the composer gave no sentence for count as misses."""
    hits = 0
    for r in rows:
        pick = r.composer
        if model is not None:
            w, mean, scale = model
            pick = int(np.argmax(((r.x - mean) / scale) @ w))  # ties: the earlier sentence
        if budget and r.answer is not None:
            a, b = grow(r.spans, pick, budget)
            hits += a <= r.answer[0] and r.answer[1] <= b
        else:
            hits += bool(r.right[pick])
    return hits / (len(rows) + unanswered)


def raw_weights(model: Model) -> dict[str, float]:
    """The weights on unstandardised features: the mean shifts every sentence of a question
    alike, so only the scale matters."""
    w, _, scale = model
    return {name: round(float(v), 4) for name, v in zip(FEATURES, w / scale, strict=True)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", type=Path)
    parser.add_argument("--contexts", type=int, default=0, help="sampled paragraphs (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--l2", type=float, default=1.0)
    parser.add_argument(
        "--index",
        type=Path,
        help="open domain: ask the questions of a slice (--contexts, --after) of an index of it",
    )
    parser.add_argument("--after", type=int, default=0)
    args = parser.parse_args(argv)
    if args.index:
        data = open_domain_rows(args.datasets, args.index, args.contexts, args.after)
    else:
        data = {
            name: gold_context_rows(args.datasets / name, args.contexts, args.seed) for name in SETS
        }
    models = {name: fit(rows, args.l2) for name, (rows, _) in data.items()}
    out: dict[str, Any] = {}
    for name, (rows, unanswered) in data.items():
        other = next(n for n in data if n != name)
        out[name] = {
            "questions": len(rows) + unanswered,
            "first_sentence": {
                "composer": round(accuracy(rows, unanswered, None), 3),
                "ranker_fit_on_other_set": round(accuracy(rows, unanswered, models[other]), 3),
                "ranker_fit_on_this_set": round(accuracy(rows, unanswered, models[name]), 3),
            },
            "window_of_100_holds_the_answer": {
                "composer": round(accuracy(rows, unanswered, None, 100), 3),
                "ranker_fit_on_other_set": round(accuracy(rows, unanswered, models[other], 100), 3),
            },
            "weights_fit_here": raw_weights(models[name]),
        }
    print(json.dumps(out, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
