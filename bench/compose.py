"""Compose time of the extractive composer, with and without short answers, side by side.

    python -m bench.compose ../shared/datasets [--questions N] [--rounds R]

For N questions of each of CMRC 2018 dev and DRCD dev (seeded sample), the retrieval is
stood in for by five 300-character passages: the window of the gold context around its
answer first, then four windows of other contexts, with bigram IDF over all of them. Each
question is composed by both composers in turn (sentences only, as before issue 17; and the
default, with typed-answer sentence choice and the short answer), every per-text cache
cleared before each compose so that each one cuts its words afresh, as for passages a
service has not seen. Prints p50 and p90 in milliseconds for each, as JSON: wall-clock
time, and the thread's CPU time, which a machine busy with other work inflates less.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from eval.datasets import load_squad
from rag.answer.extractive import ExtractiveComposer, ExtractiveConfig
from rag.answer.spans.candidates import find_candidates, tagged_words
from rag.answer.spans.features import prepare
from rag.text.offsets import OffsetMap
from rag.text.script import fold_script
from rag.text.tokenize import bigram2_tokens
from rag.types import Passage, ScoredPassage, Source

WINDOW = 300


class BigramLexicon:
    """Bigram IDF over the benchmark's passages (what a new index's lexicon does, in memory)."""

    def __init__(self, texts: Iterable[str]) -> None:
        df: Counter[str] = Counter()
        n = 0
        for text in texts:
            df.update(set(bigram2_tokens(fold_script(text))))
            n += 1
        self.df, self.n = df, n

    def tokenize(self, folded: str) -> list[str]:
        return bigram2_tokens(folded)

    def idf(self, tokens: Iterable[str]) -> dict[str, float]:
        return {t: math.log(1 + (self.n - self.df[t] + 0.5) / (self.df[t] + 0.5)) for t in tokens}


def passage(pid: int, text: str, score: float) -> ScoredPassage:
    origin = OffsetMap((0,), (0,), (len(text),), len(text))
    source = Source(f"{pid}.txt", 1, 1, 1, 0, len(text), text, origin)
    return ScoredPassage(Passage(pid, text, (source,)), score)


def window(context: str, around: int, rng: random.Random) -> str:
    start = max(0, min(around - rng.randrange(WINDOW // 2), len(context) - WINDOW))
    return context[start : start + WINDOW]


def clear_caches() -> None:
    for cached in (tagged_words, find_candidates, prepare):
        cached.cache_clear()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="compose time with and without short answers")
    parser.add_argument("datasets", type=Path)
    parser.add_argument("--questions", type=int, default=200, help="per dataset")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    rng = random.Random(0)
    cases = []
    for name in ("cmrc2018_dev.json", "drcd_dev.json"):
        squad = load_squad(args.datasets / name)
        contexts = {a.file: a.paragraphs for a in squad.articles}
        every = [c for a in squad.articles for c in a.paragraphs]
        for q in rng.sample(list(squad.questions), args.questions):
            gold = contexts[q.file or ""][(q.paragraph or 1) - 1]
            at = max(0, gold.find(q.answers[0])) if q.answers else 0
            texts = [window(gold, at, rng)]
            texts += [window(c, rng.randrange(len(c)), rng) for c in rng.sample(every, 4)]
            cases.append((q.question, texts))
    lexicon = BigramLexicon(t for _, texts in cases for t in texts)
    composers = {
        "sentences_only": ExtractiveComposer(
            ExtractiveConfig(typed_weight=0.0, short_answers=False), lexicon
        ),
        "with_short_answers": ExtractiveComposer(ExtractiveConfig(), lexicon),
    }
    first = cases[0]
    for composer in composers.values():  # jieba's dictionary loads once, not in a timing
        composer.compose(first[0], [passage(1, first[1][0], 0.9)])
    times: dict[str, list[float]] = {name: [] for name in composers}
    cpu: dict[str, list[float]] = {name: [] for name in composers}
    for _ in range(args.rounds):
        for question, texts in cases:
            passages = [passage(i + 1, t, 0.9 - 0.1 * i) for i, t in enumerate(texts)]
            for name, composer in composers.items():
                clear_caches()
                start, start_cpu = time.perf_counter(), time.thread_time()
                composer.compose(question, passages)
                times[name].append((time.perf_counter() - start) * 1000)
                cpu[name].append((time.thread_time() - start_cpu) * 1000)
    report = {
        name: {
            "p50_ms": percentile(t, 0.5),
            "p90_ms": percentile(t, 0.9),
            "cpu_p50_ms": percentile(cpu[name], 0.5),
            "cpu_p90_ms": percentile(cpu[name], 0.9),
            "n": len(t),
        }
        for name, t in times.items()
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
