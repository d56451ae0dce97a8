"""Calibrate abstention: answer support for answerable vs out-of-corpus questions.

    python -m eval.studies.abstention ../shared/datasets data/demo

Answerable: questions of a CMRC 2018 + DRCD slice asked over an index of that slice.
Unanswerable: the same questions asked over the demo corpus (which does not hold their
answers), plus a few everyday questions. For each threshold pair it prints the share of
answerable questions still answered and of unanswerable ones abstained on.
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
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        write_corpus(sets, corpus)
        on_topic = open_pipeline(settings, embedder, Path(tmp) / "slice")
        on_topic.ingest([corpus])
        off_topic = open_pipeline(settings, embedder, Path(tmp) / "demo")
        off_topic.ingest([args.demo])
        questions = [q.question for s in sets for q in s.questions]
        answerable = [signals(on_topic, q) for q in questions]
        unanswerable = [signals(off_topic, q) for q in questions + EVERYDAY]
    print(f"{len(answerable)} answerable, {len(unanswerable)} unanswerable questions")
    print("abstain_below min_support answered(answerable) abstained(unanswerable)")
    for below in (0.0, 0.35, 0.5):
        for support in (0.3, 0.35, 0.4, 0.45, 0.5, 0.55):
            kept = sum(b >= below and s >= support for b, s in answerable) / len(answerable)
            refused = sum(b < below or s < support for b, s in unanswerable) / len(unanswerable)
            print(f"{below:13.2f} {support:11.2f} {kept:22.3f} {refused:24.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
