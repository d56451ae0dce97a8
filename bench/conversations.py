"""Follow-up rewrites compared on a conversation set: hit@1, answer hit, exact rewrites.

    python -m bench.conversations /tmp/conv/cmrc2018_dev

reads a set written by `python -m eval.conversations` (followups.jsonl, switch.jsonl, docs/)
and the index `rag eval ... --index DIR/index` built over its docs (built here if missing),
and asks every follow-up through each way of making it stand alone:

- `gold`: the gold standalone question (the target: the same question asked alone);
- `none`: the follow-up as it is (a service without conversations);
- `concat`: the previous question and the follow-up, one after the other;
- `rules-ellipsis-<mode>`: the deterministic rewrite, with each ellipsis rule (`Ellipsis`).

`switch` asks each conversation's first question after another conversation's last turn
(a new topic): a rewrite should leave it alone. Retrievals are cached by query text, so a
rewrite equal to the gold question costs nothing more: the embedder is the slow part.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, get_args

from eval.datasets import Question, load_jsonl
from rag.conversation.rules import Ellipsis, RuleConfig, RuleRewriter
from rag.pipeline import Pipeline
from rag.retrieve.retriever import Retrieval
from rag.text.script import fold_script
from rag.types import Turn

TOP_K = 5
# A question of the set -> the query searched for it.
Rewrite = Callable[[Question], str]


def _concat(question: str, history: Sequence[Turn]) -> str:
    return f"{history[-1].question} {question}" if history else question


def rewrites() -> dict[str, Rewrite]:
    variants: dict[str, Rewrite] = {
        "gold": lambda q: q.standalone or q.question,
        "none": lambda q: q.question,
        "concat": lambda q: _concat(q.question, q.history),
    }
    for mode in get_args(Ellipsis):
        variants[f"rules-ellipsis-{mode}"] = _rules(mode)
    return variants


def _rules(mode: Ellipsis) -> Rewrite:
    rules = RuleRewriter(RuleConfig(ellipsis=mode))
    return lambda q: rules.condense(q.question, q.history)


class Asker:
    """Retrieval and the composed answer per query text, each computed once."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.cache: dict[str, tuple[Retrieval, str]] = {}

    def __call__(self, query: str) -> tuple[Retrieval, str]:
        if query not in self.cache:
            retrieval = self.pipeline.search(query, TOP_K)
            answer = self.pipeline.composer.compose(query, retrieval.passages)
            self.cache[query] = (retrieval, answer.answer)
        return self.cache[query]


def _hit(retrieval: Retrieval, q: Question, k: int) -> bool:
    return any(
        (s.file, s.paragraph) == (q.file, q.paragraph)
        for p in retrieval.passages[:k]
        for s in p.passage.sources
    )


def _answer_hit(answer: str, q: Question) -> bool:
    text = "".join(fold_script(answer).split())
    return any("".join(fold_script(a).split()) in text for a in q.answers)


def measure(questions: list[Question], rewrite: Rewrite, ask: Asker) -> dict[str, Any]:
    hits1 = hits5 = answered = exact = unchanged = 0
    for q in questions:
        query = rewrite(q)
        retrieval, answer = ask(query)
        hits1 += _hit(retrieval, q, 1)
        hits5 += _hit(retrieval, q, TOP_K)
        answered += _answer_hit(answer, q)
        exact += query == q.standalone
        unchanged += query == q.question
    n = len(questions) or 1
    return {
        "questions": len(questions),
        "hit@1": round(hits1 / n, 4),
        f"hit@{TOP_K}": round(hits5 / n, 4),
        "answer_hit": round(answered / n, 4),
        "rewrite_exact": round(exact / n, 4),
        "unchanged": round(unchanged / n, 4),
    }


def run(directory: Path) -> dict[str, Any]:
    from embeddings.factory import make_embedder
    from rag.pipeline import open_pipeline
    from rag.settings import get_settings

    followups = load_jsonl(directory / "followups.jsonl")
    switch = load_jsonl(directory / "switch.jsonl")
    settings = get_settings()
    pipeline = open_pipeline(
        settings, make_embedder(settings.embedder, settings.embedder_options()), directory / "index"
    )
    started = time.perf_counter()
    with pipeline:
        if not len(pipeline):
            pipeline.ingest([directory / "docs"])
        ask = Asker(pipeline)
        report: dict[str, Any] = {"set": str(directory), "top_k": TOP_K, "followups": {}}
        for name, rewrite in rewrites().items():
            report["followups"][name] = measure(followups, rewrite, ask)
            print(name, report["followups"][name], file=sys.stderr, flush=True)
        report["switch"] = {
            name: measure(switch, rewrite, ask)
            for name, rewrite in rewrites().items()
            if name != "gold"
        }
        report["hit@1_by_turn"] = {
            turn: {
                name: measure(
                    [q for q in followups if f"-turn{turn}-" in (q.kind or "")], rewrite, ask
                )["hit@1"]
                for name, rewrite in rewrites().items()
            }
            for turn in (2, 3)
        }
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["queries_embedded"] = len(ask.cache)
    return report


def main() -> None:
    directory = Path(sys.argv[1])
    report = run(directory)
    (directory / "bench.json").write_text(json.dumps(report, ensure_ascii=False, indent=2))
    print(json.dumps(report, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
