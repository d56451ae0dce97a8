"""Open-domain retrieval on CMRC 2018 + DRCD as one corpus: hit@k, cross-script loss, throughput.

    python -m eval.studies.open_domain ../shared/datasets [--limit N] [--sweep]

Builds a throwaway index of every context of both files (each article a document, each
context a paragraph), asks every question against the whole corpus, in its own script and
converted to the other, and prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.base import Embedder, Kind, Vectors
from embeddings.factory import make_embedder
from eval.datasets import Question, first_contexts, load_squad, write_corpus
from eval.metrics import (
    answer_hit,
    char_f1,
    exact_match,
    first_hit_rank,
    hit_at,
    mean,
    reciprocal_rank,
)
from eval.scoring import short_inside_quote
from rag.pipeline import open_pipeline
from rag.retrieve.fusion import fuse_rankings
from rag.settings import Settings
from rag.text.script import fold_script, to_script
from rag.wire import answer_payload


class QueryCache(Embedder):
    """An embedder whose query vectors are kept in a file between runs.

    Re-running the evaluation to measure a change of the composer then embeds no question
    again (the passages are in the kept `--index` already): on a busy machine the model is
    what takes the time. Retrieval itself still runs in full.
    """

    def __init__(self, inner: Embedder, path: Path) -> None:
        self.inner, self.path = inner, path
        self.name, self.dim = inner.name, inner.dim
        self.vectors: dict[str, np.ndarray] = {}
        if path.exists():
            with np.load(path) as stored:
                self.vectors = dict(zip(stored["texts"].tolist(), stored["vectors"], strict=True))

    def embed_batch(self, texts: Sequence[str], kind: Kind) -> Vectors:
        if kind != "query":
            return self.inner.embed_batch(texts, kind)
        missing = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if missing:
            self.vectors.update(zip(missing, self.inner.embed(missing, kind="query"), strict=True))
            np.savez(
                self.path,
                texts=np.asarray(list(self.vectors)),
                vectors=np.stack(list(self.vectors.values())),
            )
        return np.stack([self.vectors[t] for t in texts]).astype(np.float32)


FILES = {"cmrc2018_dev": ("cmrc2018_dev.json", "hant"), "drcd_dev": ("drcd_dev.json", "hans")}


def evaluate_retrieval(pipeline: Any, questions: list[Question]) -> dict[str, Any]:
    """hit@k and MRR of the passages `ask` would compose from, without composing."""
    ranks: list[int | None] = []
    for q in questions:
        retrieval = pipeline.search(q.question, 10)
        retrieved = [{(s.file, s.paragraph) for s in p.passage.sources} for p in retrieval.passages]
        ranks.append(first_hit_rank(retrieved, (q.file or "", q.paragraph or 0)))
    return {
        "questions": len(questions),
        "hit@1": round(mean([hit_at(r, 1) for r in ranks]), 4),
        "hit@5": round(mean([hit_at(r, 5) for r in ranks]), 4),
        "hit@10": round(mean([hit_at(r, 10) for r in ranks]), 4),
        "mrr@10": round(mean([reciprocal_rank(r) for r in ranks]), 4),
        "hits_at_1": sum(hit_at(r, 1) for r in ranks),
        "hits_at_5": sum(hit_at(r, 5) for r in ranks),
    }


def evaluate(
    pipeline: Any, questions: list[Question], script: str | None, sweep: list[tuple[float, float]]
) -> dict[str, Any]:
    ranks: list[int | None] = []
    hits: list[float] = []
    latencies: list[float] = []
    lengths: list[int] = []
    short_em: list[float] = []
    short_f1: list[float] = []
    short_valid: list[float] = []
    compose: list[float] = []
    sweep_ranks: dict[tuple[float, float], list[int | None]] = {w: [] for w in sweep}
    for q in questions:
        text = to_script(q.question, script) if script else q.question  # type: ignore[arg-type]
        t = time.perf_counter()
        answer = pipeline.ask(text, 10)
        latencies.append((time.perf_counter() - t) * 1000)
        retrieved = [{(s.file, s.paragraph) for s in p.passage.sources} for p in answer.passages]
        gold = (q.file or "", q.paragraph or 0)
        ranks.append(first_hit_rank(retrieved, gold))
        hits.append(answer_hit(answer.answer, q.answers))
        lengths.append(len(answer.answer))
        short = answer.short_answer.text if answer.short_answer and not answer.abstained else ""
        short_em.append(exact_match(short, q.answers))
        short_f1.append(char_f1(short, q.answers))
        if answer.short_answer is not None:
            payload = answer_payload(answer)
            valid = short_inside_quote(payload["short_answer"], payload["citations"])
            short_valid.append(float(valid))
        compose.append(answer.timings_ms.get("compose", 0.0))
        if sweep:
            dense, lexical, stored = pipeline.candidates(text, 50)
            for w, floor in sweep:
                top = [f.id for f in fuse_rankings(dense, lexical, w, floor)[:10]]
                places = [{(s.file, s.paragraph) for s in stored[i].sources} for i in top]
                sweep_ranks[(w, floor)].append(first_hit_rank(places, gold))
    latencies.sort()
    out: dict[str, Any] = {
        "questions": len(questions),
        "hit@1": round(mean([hit_at(r, 1) for r in ranks]), 4),
        "hit@5": round(mean([hit_at(r, 5) for r in ranks]), 4),
        "hit@10": round(mean([hit_at(r, 10) for r in ranks]), 4),
        "mrr@10": round(mean([reciprocal_rank(r) for r in ranks]), 4),
        "answer_hit": round(mean(hits), 4),
        "answer_chars_median": sorted(lengths)[len(lengths) // 2] if lengths else 0,
        "latency_ms_p50": round(latencies[len(latencies) // 2], 2) if latencies else 0,
        "short_em": round(mean(short_em), 4),
        "short_f1": round(mean(short_f1), 4),
        "short_given": len(short_valid),
        "short_valid": round(mean(short_valid), 4) if short_valid else None,
        "compose_ms_p50": round(sorted(compose)[len(compose) // 2], 2) if compose else 0,
    }
    if sweep:
        out["sweep"] = {
            f"w={w},floor={floor}": [
                round(mean([hit_at(r, 1) for r in rs]), 4),
                round(mean([hit_at(r, 5) for r in rs]), 4),
            ]
            for (w, floor), rs in sweep_ranks.items()
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("datasets", type=Path)
    parser.add_argument("--limit", type=int, default=0, help="questions per dataset (sampled)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--contexts",
        type=int,
        default=0,
        help="a fixed slice: the first articles holding N contexts of each dataset (0: all)",
    )
    parser.add_argument("--sweep", action="store_true", help="also try fusion weights")
    parser.add_argument(
        "--index", type=Path, help="index directory to keep and reuse (unchanged files are skipped)"
    )
    parser.add_argument(
        "--skip-bare",
        action="store_true",
        help="do not re-embed every passage with the bare embedder (saves the model's time)",
    )
    parser.add_argument(
        "--query-cache",
        type=Path,
        help="keep the questions' vectors in this .npz file between runs (with --index)",
    )
    parser.add_argument(
        "--original-only", action="store_true", help="ask in the original script only"
    )
    parser.add_argument(
        "--retrieval-only",
        action="store_true",
        help="hit@k and MRR only (original script): search without composing answers",
    )
    args = parser.parse_args(argv)

    settings = Settings()
    embedder: Embedder = make_embedder(settings.embedder, settings.embedder_options())
    if args.query_cache:
        embedder = QueryCache(embedder, args.query_cache)
    sets = [load_squad(args.datasets / f) for f, _ in FILES.values()]
    if args.contexts:
        sets = [first_contexts(s, args.contexts) for s in sets]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        write_corpus(sets, corpus)
        pipeline = open_pipeline(settings, embedder, args.index or Path(tmp) / "index")
        report = pipeline.ingest([corpus])
        passages = pipeline.counts()["passages"]
        _, folded = pipeline.passage_texts()
        bare = 0.0
        if not args.skip_bare:
            t = time.perf_counter()
            embedder.embed(folded, kind="passage")
            bare = time.perf_counter() - t
        summary: dict[str, Any] = {
            "settings": settings.model_dump(mode="json"),
            "ingest": {
                "files": report.files,
                "passages": passages,
                "chunks": report.chunks,
                "duplicates_merged": report.duplicates_merged,
                "seconds": round(report.seconds, 2),
                "passages_per_s": round(passages / report.seconds, 1) if report.seconds else None,
                "embed_seconds_in_pipeline": round(report.embed_seconds, 2),
                "bare_embedder_seconds": round(bare, 2) if bare else None,
                "bare_embedder_passages_per_s": round(passages / bare, 1) if bare else None,
                "pipeline_overhead": round(report.seconds / bare - 1, 3) if bare else None,
            },
        }
        print(json.dumps(summary["ingest"]), file=sys.stderr)
        sweep = (
            [(w, f) for w in (0.5, 0.6, 0.7, 0.8, 0.9) for f in (0.75, 0.8, 0.85)]
            if args.sweep
            else []
        )
        for s in sets:
            questions = list(s.questions)
            if args.limit:
                questions = random.Random(args.seed).sample(
                    questions, min(args.limit, len(questions))
                )
            other = FILES[s.name][1]
            if isinstance(embedder, QueryCache):  # in batches: many times faster than one by one
                embedder.embed([fold_script(q.question) for q in questions], kind="query")
            if args.retrieval_only:
                summary[s.name] = {"original": evaluate_retrieval(pipeline, questions)}
                print(json.dumps({s.name: summary[s.name]}, ensure_ascii=False), file=sys.stderr)
                continue
            if args.original_only:
                summary[s.name] = {"original": evaluate(pipeline, questions, None, sweep)}
                print(json.dumps({s.name: summary[s.name]}, ensure_ascii=False), file=sys.stderr)
                continue
            summary[s.name] = {
                "original": evaluate(pipeline, questions, None, sweep),
                f"to_{other}": evaluate(pipeline, questions, other, []),
            }
            orig, conv = summary[s.name]["original"], summary[s.name][f"to_{other}"]
            summary[s.name]["cross_script_loss_points"] = {
                k: round((orig[k] - conv[k]) * 100, 2) for k in ("hit@1", "hit@5", "answer_hit")
            }
            print(json.dumps({s.name: summary[s.name]}, ensure_ascii=False), file=sys.stderr)
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
