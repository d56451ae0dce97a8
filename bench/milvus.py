"""The Milvus backend against the local one: retrieval quality, identical answers, latency.

    python -m bench.milvus ../shared/datasets --contexts 200 --questions 400

Builds a local index of a fixed slice of CMRC 2018 dev + DRCD dev (the first `--contexts`
contexts of each, whole articles), copies it into Milvus Lite with `rag migrate` (the same
vectors: this compares backends, not embeddings), and asks the same sampled questions of
both: hit@1 and hit@5, how many answers and citations are identical, retrieval latency.
Then the demo corpus with the seed questions (../shared/qa/seeds-dev.jsonl). Finally the
BM25 decision: Milvus's own BM25 scores against the exact rescoring the backend does, on
the demo corpus after an edit and a removal. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from embeddings.base import Embedder
from embeddings.factory import make_embedder
from eval.datasets import Question, first_contexts, load_jsonl, load_squad, write_corpus
from eval.metrics import first_hit_rank, hit_at, mean
from rag.index.migrate import migrate
from rag.pipeline import Pipeline, open_pipeline
from rag.settings import Settings
from rag.store.location import location_from_settings
from rag.types import Answer

FILES = ("cmrc2018_dev.json", "drcd_dev.json")
PROGRESS_EVERY = 200
ROOT = Path(__file__).resolve().parent.parent


def seen(answer: Answer) -> Any:
    """What a user sees of an answer, passage ids aside."""
    return (
        answer.answer,
        answer.abstained,
        [(c.file, c.paragraph, c.char_start, c.char_end, c.quote) for c in answer.citations],
        [(p.passage.text, p.score, p.passage.sources) for p in answer.passages],
    )


def hit_rates(ranks: dict[str, list[int | None]], same: int) -> dict[str, Any]:
    """Hit rates so far of each backend, and how many answers were identical."""
    return {
        "identical_answers": same,
        **{
            name: {
                "hit@1": round(mean([hit_at(r, 1) for r in ranks[name]]), 4),
                "hit@5": round(mean([hit_at(r, 5) for r in ranks[name]]), 4),
            }
            for name in ranks
        },
    }


def compare(
    pipelines: dict[str, Pipeline], questions: list[Question], k: int = 5
) -> dict[str, Any]:
    ranks: dict[str, list[int | None]] = {name: [] for name in pipelines}
    retrieval_ms: dict[str, list[float]] = {name: [] for name in pipelines}
    same = 0
    for done, q in enumerate(questions, 1):
        answers = {}
        for name, pipeline in pipelines.items():
            answer = pipeline.ask(q.question, k)
            answers[name] = answer
            t = answer.timings_ms
            retrieval_ms[name].append(sum(t.get(s, 0.0) for s in ("lexical", "dense_search")))
            places = [{(s.file, s.paragraph) for s in p.passage.sources} for p in answer.passages]
            ranks[name].append(
                first_hit_rank(places, (q.file or "", q.paragraph or 0)) if q.file else None
            )
        same += seen(answers["local"]) == seen(answers["milvus"])
        if done % PROGRESS_EVERY == 0:
            # A long run that is stopped still leaves figures: the questions are a random
            # sample, so every prefix of them is one too.
            cpu = round(time.process_time())
            print(
                json.dumps({"done": done, "cpu_s": cpu, **hit_rates(ranks, same)}), file=sys.stderr
            )
    return {
        "questions": len(questions),
        "identical_answers": same,
        **{
            name: {
                "hit@1": round(mean([hit_at(r, 1) for r in ranks[name]]), 4),
                "hit@5": round(mean([hit_at(r, 5) for r in ranks[name]]), 4),
                "retrieval_p50_ms": round(statistics.median(retrieval_ms[name]), 1),
            }
            for name in pipelines
        },
    }


def both(root: Path, corpus: Path, embedder: Embedder) -> dict[str, Pipeline]:
    local = Settings(index_dir=root / "local")
    pipeline = open_pipeline(local, embedder)
    pipeline.ingest([corpus])
    pipeline.close()
    milvus = Settings(index_dir=root / "milvus", backend="milvus")
    migrate(root / "local", location_from_settings(milvus))
    return {"local": open_pipeline(local, embedder), "milvus": open_pipeline(milvus, embedder)}


def bm25_drift(root: Path, embedder: Embedder, questions: list[Question]) -> dict[str, Any]:
    """Milvus's BM25 scores against exact rescoring, after an edit and a removal."""
    from rag.store.milvus_search import MilvusLexicalIndex

    corpus = root / "demo"
    shutil.copytree(ROOT / "data" / "demo", corpus)
    pipelines = {
        name: open_pipeline(Settings(index_dir=root / f"drift-{name}", backend=name), embedder)
        for name in ("local", "milvus")
    }
    for pipeline in pipelines.values():
        pipeline.ingest([corpus])
    first, second = sorted(corpus.iterdir())[:2]
    with second.open("a", encoding="utf-8") as f:
        f.write("\n补充说明：本文件被修改，新增这一段以改变其内容。\n")
    for pipeline in pipelines.values():
        pipeline.ingest([corpus])
        pipeline.remove(first.name)
    out = {}
    for exact in (True, False):
        MilvusLexicalIndex.exact = exact
        out["exact rescoring" if exact else "milvus bm25 scores"] = compare(pipelines, questions)
    MilvusLexicalIndex.exact = True
    for pipeline in pipelines.values():
        pipeline.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("datasets", type=Path)
    parser.add_argument("--contexts", type=int, default=200, help="contexts per dataset")
    parser.add_argument("--questions", type=int, default=400, help="questions per dataset")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    embedder = make_embedder(Settings().embedder)
    summary: dict[str, Any] = {"contexts_per_dataset": args.contexts}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sets = [first_contexts(load_squad(args.datasets / f), args.contexts) for f in FILES]
        write_corpus(sets, root / "corpus")
        pipelines = both(root, root / "corpus", embedder)
        summary["passages"] = pipelines["local"].counts()["passages"]
        cpu = round(time.process_time())
        print(json.dumps({"passages": summary["passages"], "cpu_s": cpu}), file=sys.stderr)
        for s in sets:
            questions = list(s.questions)
            questions = random.Random(args.seed).sample(
                questions, min(args.questions, len(questions))
            )
            summary[s.name] = compare(pipelines, questions)
            print(json.dumps({s.name: summary[s.name]}), file=sys.stderr)
        for pipeline in pipelines.values():
            pipeline.close()
        seeds = load_jsonl(ROOT.parent / "shared" / "qa" / "seeds-dev.jsonl")
        demo = both(root / "seeds", ROOT / "data" / "demo", embedder)
        summary["seeds-dev"] = compare(demo, seeds)
        for pipeline in demo.values():
            pipeline.close()
        summary["bm25 after an edit and a removal (demo, seeds-dev)"] = bm25_drift(
            root, embedder, seeds
        )
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
