"""Short answers on gold contexts: fit the span scorer on one dev set, measure on the other.

    python -m eval.spans ../shared/datasets [--limit N] [--write]

For each direction (fit on CMRC 2018 dev, measure on DRCD dev, and back) it fits the
weights of `rag.spans.select` (a softmax over each question's candidate spans, in numpy)
and prints exact match and character F1 (SQuAD-style, script-folded) on the measuring set,
with the weights shipped at the start as a comparison. `--write` stores the CMRC-fit weights as the
shipped ones (`rag/spans/weights.py`): DRCD is then the held-out set.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eval.datasets import load_squad
from eval.metrics import char_f1, exact_match
from eval.metrics import normalise_answer as normalise
from rag.spans.candidates import foldable
from rag.spans.features import NAMES, candidate_features, prepare
from rag.spans.select import candidates_for
from rag.spans.weights import WEIGHTS

L2 = 1e-3


@dataclass(frozen=True)
class Item:
    """One question with its gold context's candidates, their features and labels."""

    kind: str
    context: str
    spans: list[tuple[int, int]]
    x: np.ndarray
    y: np.ndarray  # 1 where the candidate is a gold answer
    answers: tuple[str, ...]


def build(path: Path, limit: int | None) -> list[Item]:
    squad = load_squad(path)
    contexts = {a.file: a.paragraphs for a in squad.articles}
    cache: dict[str, Any] = {}
    items = []
    questions = squad.questions[:limit] if limit else squad.questions
    for q in questions:
        context = contexts[q.file or ""][(q.paragraph or 1) - 1]
        prepared = prepare(q.question)
        folded = cache.setdefault(context, foldable(context))
        candidates = candidates_for(prepared, context, folded)
        rows = candidate_features(prepared, folded, candidates) if candidates else []
        golds = {normalise(a) for a in q.answers}
        y = [float(normalise(context[c.start : c.end]) in golds) for c in candidates]
        items.append(
            Item(
                prepared.kind,
                context,
                [(c.start, c.end) for c in candidates],
                np.asarray(rows, dtype=np.float64).reshape(len(candidates), len(NAMES)),
                np.asarray(y),
                q.answers,
            )
        )
    return items


def fit(items: Sequence[Item], steps: int = 300, rate: float = 0.5) -> dict[str, float]:
    """Weights maximising the likelihood of the gold candidates under a softmax per question."""
    train = [i for i in items if i.y.any() and i.kind != "why_how"]
    w = np.zeros(len(NAMES))
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for step in range(1, steps + 1):
        grad = L2 * w
        for item in train:
            logits = item.x @ w
            p = np.exp(logits - logits.max())
            p /= p.sum()
            target = item.y / item.y.sum()
            grad += item.x.T @ (p - target) / len(train)
        # Adam: the features differ in scale by orders of magnitude.
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad**2
        w -= rate * 0.1 * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    return {name: round(float(x), 4) for name, x in zip(NAMES, w, strict=True) if abs(x) > 1e-4}


def measure(items: Sequence[Item], weights: Mapping[str, float]) -> dict[str, Any]:
    """EM and F1 over every question (no span counts 0), and over those given a span."""
    w = np.asarray([weights.get(n, 0.0) for n in NAMES])
    em, f1, given = [], [], 0
    by_kind: dict[str, list[float]] = {}
    for item in items:
        prediction = ""
        if item.kind != "why_how" and item.spans:
            a, b = item.spans[int(np.argmax(item.x @ w))]
            prediction = item.context[a:b]
            given += 1
        em.append(exact_match(prediction, item.answers))
        f1.append(char_f1(prediction, item.answers))
        by_kind.setdefault(item.kind, []).append(em[-1])
    n = len(items) or 1
    return {
        "questions": len(items),
        "em": round(sum(em) / n, 4),
        "f1": round(sum(f1) / n, 4),
        "spans_given": round(given / n, 4),
        "em_given": round(sum(em) / (given or 1), 4),
        "f1_given": round(sum(f1) / (given or 1), 4),
        "candidate_recall": round(sum(bool(i.y.any()) for i in items) / n, 4),
        "em_by_type": {k: [len(v), round(sum(v) / len(v), 4)] for k, v in sorted(by_kind.items())},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="short answers on gold contexts")
    parser.add_argument("datasets", type=Path)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--write", action="store_true", help="ship the CMRC-fit weights")
    args = parser.parse_args(argv)
    sets = {
        "cmrc2018_dev": build(args.datasets / "cmrc2018_dev.json", args.limit),
        "drcd_dev": build(args.datasets / "drcd_dev.json", args.limit),
    }
    report: dict[str, Any] = {}
    fitted: dict[str, dict[str, float]] = {}
    for train, test in (("cmrc2018_dev", "drcd_dev"), ("drcd_dev", "cmrc2018_dev")):
        fitted[train] = fit(sets[train])
        report[f"fit {train} -> measure {test}"] = {
            "shipped": measure(sets[test], WEIGHTS),
            "fitted": measure(sets[test], fitted[train]),
            "fitted_on_train": measure(sets[train], fitted[train]),
        }
    json.dump(report, sys.stdout, ensure_ascii=False, indent=2)
    print()
    if args.write:
        body = "\n".join(f"    {json.dumps(k)}: {v}," for k, v in fitted["cmrc2018_dev"].items())
        Path("rag/spans/weights.py").write_text(
            '"""The span scorer\'s weights by feature name, fit on CMRC 2018 dev by '
            "`python -m eval.spans --write`\n(DRCD dev is held out: docs/benchmarks.md)."
            '"""\n\nWEIGHTS: dict[str, float] = {\n' + body + "\n}\n",
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
