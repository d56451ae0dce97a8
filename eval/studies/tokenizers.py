"""Which tokenisation should the lexical index use? BM25 alone, per tokeniser, on both datasets.

    python -m eval.studies.tokenizers ../shared/datasets [--limit N]

Indexes every context of CMRC 2018 dev and DRCD dev (script-folded) with each tokeniser and
reports BM25 paragraph hit@1/hit@5 for the questions in their own script and converted to
the other, plus indexing and query time. No embedding is involved, so it runs in a minute.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

from eval.datasets import load_squad
from eval.metrics import hit_at, mean
from rag.store.bm25s import Bm25sLexicalIndex
from rag.text.script import fold_script, to_script
from rag.text.tokenize import TOKENIZERS

FILES = {"cmrc2018_dev.json": "hant", "drcd_dev.json": "hans"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="BM25 hit@k per tokeniser")
    parser.add_argument("datasets", type=Path)
    parser.add_argument("--limit", type=int, default=0)
    args = parser.parse_args(argv)

    sets = [(load_squad(args.datasets / f), other) for f, other in FILES.items()]
    keys: list[tuple[str, int]] = []
    folded: list[str] = []
    for s, _ in sets:
        for article in s.articles:
            for n, text in enumerate(article.paragraphs, start=1):
                keys.append((article.file, n))
                folded.append(fold_script(text))
    results: dict[str, Any] = {}
    for name, tokenize in TOKENIZERS.items():
        t = time.perf_counter()
        index = Bm25sLexicalIndex.build(list(range(len(keys))), [tokenize(f) for f in folded])
        build_s = time.perf_counter() - t
        row: dict[str, Any] = {"index_seconds": round(build_s, 2)}
        for s, other in sets:
            questions = list(s.questions)
            if args.limit:
                questions = random.Random(0).sample(questions, min(args.limit, len(questions)))
            for script in (None, other):
                ranks: list[int | None] = []
                t = time.perf_counter()
                for q in questions:
                    text = to_script(q.question, script) if script else q.question  # type: ignore[arg-type]
                    hits = index.search(tokenize(fold_script(text)), 5)
                    gold = (q.file, q.paragraph)
                    rank = next(
                        (i for i, (pid, _) in enumerate(hits, 1) if keys[pid] == gold), None
                    )
                    ranks.append(rank)
                per_q = (time.perf_counter() - t) / max(len(questions), 1) * 1000
                label = f"{s.name}/{script or 'original'}"
                row[label] = {
                    "hit@1": round(mean([hit_at(r, 1) for r in ranks]), 4),
                    "hit@5": round(mean([hit_at(r, 5) for r in ranks]), 4),
                    "ms_per_query": round(per_q, 2),
                }
        results[name] = row
        print(json.dumps({name: row}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
