"""Calibrate abstention: answer support for answerable vs out-of-corpus questions.

    python -m eval.studies.abstention ../shared/datasets data/demo [--contexts N] [--after M]

Answerable: questions of a CMRC 2018 + DRCD slice (the first articles holding N contexts of
each set, behind those holding the first M: `eval.datasets.first_contexts`) asked over an
index of half its articles (every other one), about the indexed half. Unanswerable: the
questions about the other half, asked over the same index (a corpus lacking their article,
on the same kind of subjects), plus the questions of the whole slice asked over the demo
corpus, plus a few everyday questions. For each rule (`rag.answer.extractive.confident`:
a threshold on the best passage's score + a weight x the answer's support) it prints the
share of answerable questions still answered, of unanswerable ones abstained on, and the
precision and recall of abstaining as a detector of unanswerable questions (what `rag eval`
reports).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from embeddings.factory import make_embedder
from eval.datasets import SquadSet, first_contexts, load_squad, write_corpus
from rag.answer.extractive import ExtractiveComposer, ExtractiveConfig, confident
from rag.pipeline import Pipeline, open_pipeline
from rag.settings import Settings

EVERYDAY = [
    "今天北京天气怎么样？",
    "上海迪士尼门票多少钱？",
    "如何申请美国签证？",
    "苹果公司的总部在哪里？",
    "2022年世界杯冠军是哪个国家？",
]
SETS = ("cmrc2018_dev.json", "drcd_dev.json")
WEIGHTS = (0.5, 1.0, 2.0)  # of the support against the best passage's score


def signals(pipeline: Pipeline, question: str) -> tuple[float, float]:
    """(best passage score, answer support) with abstention switched off."""
    composer = pipeline.composer
    if not isinstance(composer, ExtractiveComposer):
        raise TypeError("abstention calibration is for the extractive composer")
    retrieval = pipeline.search(question, pipeline.settings.top_k)
    best = retrieval.passages[0].score if retrieval.passages else 0.0
    return best, composer.answer_support(question, retrieval.passages)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="abstention calibration")
    parser.add_argument("datasets", type=Path)
    parser.add_argument("demo", type=Path)
    parser.add_argument("--contexts", type=int, default=200, help="contexts of each set")
    parser.add_argument(
        "--after", type=int, default=0, help="skip the articles holding the first M contexts"
    )
    args = parser.parse_args(argv)
    settings = Settings(abstain_confidence=0.0, abstain_below=0.0, min_support=0.0)
    embedder = make_embedder(settings.embedder, settings.embedder_options())
    sets = [
        first_contexts(load_squad(args.datasets / name), args.contexts, args.after) for name in SETS
    ]
    indexed = [halved(s) for s in sets]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        write_corpus(indexed, corpus)
        on_topic = open_pipeline(settings, embedder, Path(tmp) / "slice")
        on_topic.ingest([corpus])
        off_topic = open_pipeline(settings, embedder, Path(tmp) / "demo")
        off_topic.ingest([args.demo])
        kept_files = {a.file for s in indexed for a in s.articles}
        questions = [q for s in sets for q in s.questions]
        answerable = [signals(on_topic, q.question) for q in questions if q.file in kept_files]
        unanswerable = [
            signals(on_topic, q.question) for q in questions if q.file not in kept_files
        ]
        unanswerable += [signals(off_topic, q) for q in [q.question for q in questions] + EVERYDAY]
    print(f"{len(answerable)} answerable, {len(unanswerable)} unanswerable questions")
    print(f"{'rule':32s} answered abstained(=recall) precision")
    before = ExtractiveConfig(abstain_confidence=0.0, abstain_below=0.5, min_support=0.35)
    rules = [("either below 0.50 / 0.35 (before)", before)]
    rules += [
        (
            f"score + {w} x support < {c:.2f}",
            ExtractiveConfig(abstain_confidence=c, support_weight=w),
        )
        for w in WEIGHTS
        for c in np.arange(0.60, 1.21, 0.02)
    ]
    for name, config in rules:
        wrong = sum(not confident(config, b, s) for b, s in answerable)
        right = sum(not confident(config, b, s) for b, s in unanswerable)
        kept = 1 - wrong / len(answerable)
        precision = right / ((right + wrong) or 1)
        recall = right / len(unanswerable)
        print(f"{name:32s} {kept:8.3f} {recall:9.3f} {precision:9.3f}")
    return 0


def halved(squad: SquadSet) -> SquadSet:
    """Every other article of `squad` (the indexed half), with its questions."""
    kept = squad.articles[::2]
    files = {a.file for a in kept}
    return SquadSet(squad.name, kept, tuple(q for q in squad.questions if q.file in files))


if __name__ == "__main__":
    raise SystemExit(main())
