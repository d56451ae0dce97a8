"""Calibrate abstention: answer support for answerable vs out-of-corpus questions.

    python -m eval.studies.abstention ../shared/datasets data/demo

Answerable: questions of a CMRC 2018 + DRCD slice asked over an index of half its articles
(every other one), about the indexed half. Unanswerable: the questions about the other half,
asked over the same index (a corpus lacking their article, on the same kind of subjects),
plus the questions of the whole slice asked over the demo corpus, plus a few everyday
questions. For each threshold pair it prints the share of answerable questions still
answered, of unanswerable ones abstained on, and the precision and recall of abstaining as
a detector of unanswerable questions (what `rag eval` reports).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from embeddings.factory import make_embedder
from eval.datasets import SquadSet, load_squad, write_corpus
from rag.answer.extractive import ExtractiveComposer
from rag.pipeline import Pipeline, open_pipeline
from rag.settings import Settings

EVERYDAY = [
    "今天北京天气怎么样？",
    "上海迪士尼门票多少钱？",
    "如何申请美国签证？",
    "苹果公司的总部在哪里？",
    "2022年世界杯冠军是哪个国家？",
]
SLICE = {"cmrc2018_dev.json": 40, "drcd_dev.json": 6}


def sliced(path: Path, articles: int) -> SquadSet:
    full = load_squad(path)
    kept = full.articles[:articles]
    files = {a.file for a in kept}
    return SquadSet(full.name, kept, tuple(q for q in full.questions if q.file in files))


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
    args = parser.parse_args(argv)
    settings = Settings(abstain_below=0.0, min_support=0.0)
    embedder = make_embedder(settings.embedder, settings.embedder_options())
    sets = [sliced(args.datasets / name, n) for name, n in SLICE.items()]
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
    print("below support answered abstained(=recall) precision")
    for below in (0.0, 0.35, 0.5, 0.6, 0.7):
        for support in (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7):
            wrong = sum(b < below or s < support for b, s in answerable)
            right = sum(b < below or s < support for b, s in unanswerable)
            kept = 1 - wrong / len(answerable)
            precision = right / ((right + wrong) or 1)
            recall = right / len(unanswerable)
            row = (below, support, kept, recall, precision)
            print("{:5.2f} {:7.2f} {:8.3f} {:9.3f} {:9.3f}".format(*row))
    return 0


def halved(squad: SquadSet) -> SquadSet:
    """Every other article of `squad` (the indexed half), with its questions."""
    kept = squad.articles[::2]
    files = {a.file for a in kept}
    return SquadSet(squad.name, kept, tuple(q for q in squad.questions if q.file in files))


if __name__ == "__main__":
    raise SystemExit(main())
