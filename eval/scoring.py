"""Scoring outcomes against gold: per question, then the run's metrics, per kind and overall."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from eval.datasets import Question
from eval.metrics import answer_hit, char_f1, exact_match, hit_at, mean, reciprocal_rank
from eval.runner import Outcome
from eval.stats import percentiles
from rag.ingest.clean import clean_text
from rag.ingest.dedupe import normalised_shingles
from rag.text.identity import normalise
from rag.text.offsets import MappedText
from rag.text.script import fold_script

# Passages at least this similar (Jaccard of character 3-grams) count as duplicates in a top-k.
DUPLICATE_JACCARD = 0.85
HIT_KS = (1, 3, 5, 10)
MRR_K = 10  # MRR@10, or MRR@top_k under it
MAX_FAILURES = 300

# file name as citations give it -> the decoded source text, or None if it cannot be read
SourceText = Callable[[str], str | None]


@dataclass(frozen=True)
class Scored:
    """One outcome measured. None means "does not apply" (no gold to compare with)."""

    outcome: Outcome
    answerable: bool
    rank: int | None = None  # first passage holding the gold, 1-based
    has_gold_place: bool = False
    answer_hit: float | None = None
    citation_ok: bool | None = None
    quotes_valid: bool | None = None
    duplicate_share: float | None = None
    # The short answer against the gold (no short answer scores 0), and whether it lies in
    # its cited quote at valid offsets (None when there is none).
    short_em: float | None = None
    short_f1: float | None = None
    short_valid: bool | None = None
    reasons: list[str] = field(default_factory=list)


def is_answerable(question: Question) -> bool:
    return question.kind != "unanswerable"


def holds_gold(passage: Mapping[str, Any], question: Question) -> bool:
    """Whether a retrieved passage is the gold one.

    With a gold paragraph (SQuAD), the passage must hold that paragraph of that file; with
    only a file and an evidence string (JSONL), it must come from the file and contain the
    evidence (script-folded); with only a file, come from it.
    """
    places: set[tuple[str, int]] = {(s["file"], s["paragraph"]) for s in passage["sources"]}
    if question.paragraph is not None:
        return (question.file, question.paragraph) in places
    if question.file is None or question.file not in {f for f, _ in places}:
        return False
    if question.evidence:
        return _compact(question.evidence) in _compact(passage["text"])
    return True


def _compact(text: str) -> str:
    return "".join(fold_script(text).split())


def first_gold_rank(passages: Sequence[Mapping[str, Any]], question: Question) -> int | None:
    for rank, passage in enumerate(passages, start=1):
        if holds_gold(passage, question):
            return rank
    return None


def citation_names_gold(citation: Mapping[str, Any], question: Question) -> bool:
    if citation["file"] != question.file:
        return False
    return question.paragraph is None or citation["paragraph"] == question.paragraph


def quote_at_offsets(citation: Mapping[str, Any], source: str) -> bool:
    """The source between the citation's offsets is its quote, as is or once cleaned."""
    span = source[citation["char_start"] : citation["char_end"]]
    quote = str(citation["quote"])
    return span == quote or clean_text(MappedText.from_source(span)).text == quote


def duplicate_share(passages: Sequence[Mapping[str, Any]]) -> float:
    """Share of the top-k that repeats an earlier passage (same normalised text, or near)."""
    if not passages:
        return 0.0
    seen: list[tuple[str, frozenset[str]]] = []
    duplicates = 0
    for passage in passages:
        norm, grams = _fingerprint(passage["text"])
        if any(norm == n or _jaccard(grams, g) >= DUPLICATE_JACCARD for n, g in seen):
            duplicates += 1
        seen.append((norm, grams))
    return duplicates / len(passages)


@lru_cache(maxsize=16384)
def _fingerprint(text: str) -> tuple[str, frozenset[str]]:
    """Normalised text (what `content_hash` hashes) and its character 3-grams.

    Cached: a run meets the same passages again and again, and script folding (OpenCC, pure
    Python) was most of the scoring time.
    """
    norm = normalise(text)
    return norm, frozenset(normalised_shingles(norm, 3))


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def score(outcome: Outcome, source_text: SourceText) -> Scored:
    question, answer = outcome.question, outcome.answer
    answerable = is_answerable(question)
    has_place = question.file is not None and answerable
    if answer is None:
        return _failed(outcome, answerable, has_place)
    passages, citations = answer["passages"], answer["citations"]
    rank = first_gold_rank(passages, question) if has_place else None
    hit = (
        answer_hit(answer["answer"], question.answers) if answerable and question.answers else None
    )
    cited = citation_names_gold(citations[0], question) if has_place and citations else None
    if has_place and not citations:
        cited = False
    quotes = _quotes_valid(citations, source_text)
    short = answer.get("short_answer")
    short_text = short["text"] if short and not answer["abstained"] else ""
    golds = question.answers if answerable else ()
    reasons = []
    if has_place and rank is None:
        reasons.append("passage_miss")
    if hit == 0.0:
        reasons.append("answer_miss")
    if cited is False:
        reasons.append("citation_wrong")
    if quotes is False:
        reasons.append("quote_invalid")
    if not answerable and not answer["abstained"]:
        reasons.append("should_abstain")
    if answerable and answer["abstained"]:
        reasons.append("should_answer")
    return Scored(
        outcome,
        answerable,
        rank=rank,
        has_gold_place=has_place,
        answer_hit=hit,
        citation_ok=cited,
        quotes_valid=quotes,
        duplicate_share=duplicate_share(passages),
        short_em=exact_match(short_text, golds) if golds else None,
        short_f1=char_f1(short_text, golds) if golds else None,
        short_valid=short_inside_quote(short, citations) if short else None,
        reasons=reasons,
    )


def _failed(outcome: Outcome, answerable: bool, has_place: bool) -> Scored:
    """A question whose answering failed (an HTTP error, a timeout): asked and not
    answered, so a miss in every measure of success that applies to it. Left out as "does
    not apply", a run with many errors reported better ratios than it earned."""
    golds = outcome.question.answers if answerable else ()
    return Scored(
        outcome,
        answerable,
        has_gold_place=has_place,
        answer_hit=0.0 if golds else None,
        citation_ok=False if has_place else None,
        short_em=0.0 if golds else None,
        short_f1=0.0 if golds else None,
        reasons=["error"],
    )


def short_inside_quote(short: Mapping[str, Any], citations: Sequence[Mapping[str, Any]]) -> bool:
    """The short answer slices its citation's quote back to its text, inside its offsets."""
    cited = [c for c in citations if c["n"] == short["citation"]]
    if not cited:
        return False
    c, a, b = cited[0], short["quote_start"], short["quote_end"]
    return bool(
        0 <= a < b <= len(c["quote"])
        and c["quote"][a:b] == short["text"]
        and c["char_start"] <= short["char_start"] <= short["char_end"] <= c["char_end"]
    )


def _quotes_valid(citations: Sequence[Mapping[str, Any]], source_text: SourceText) -> bool | None:
    checked = []
    for citation in citations:
        source = source_text(citation["file"])
        if source is not None:
            checked.append(quote_at_offsets(citation, source))
    return all(checked) if checked else None


# -- aggregation ------------------------------------------------------------------------------


def _ratio(values: Sequence[float | bool | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return round(mean(present), 4) if present else None


def mrr_key(top_k: int) -> str:
    """The key of the run's MRR in its metrics: `mrr@10`, or `mrr@<top_k>` below 10."""
    return f"mrr@{min(MRR_K, top_k)}"


def summarise(scored: Sequence[Scored], top_k: int) -> dict[str, Any]:
    """The run's metrics over `scored` (every ratio None when nothing it applies to).

    A question that failed (`errors`) counts as a miss in every rate of success: hit@k,
    MRR, answer hit, citation accuracy, short EM and F1, short answers given, abstention
    recall. The measures of the answers given (quotes valid, duplicate rate, short valid,
    abstained, abstention precision, median length) are over the answered questions: a
    failure has no quotes, passages or length to measure, and counting it as, say, no
    duplicates would flatter the run.

    A change to what a rate means for the same answers raises
    `eval.versions.SCORING_VERSION`: `--compare` then tells reports scored the old way.
    """
    answered = [s for s in scored if s.outcome.answer is not None]
    placed = [s for s in scored if s.has_gold_place]
    unanswerable = [s for s in scored if not s.answerable]
    abstained = [s for s in answered if s.outcome.answer and s.outcome.answer["abstained"]]
    metrics: dict[str, Any] = {
        "questions": len(scored),
        "answerable": sum(s.answerable for s in scored),
        "unanswerable": len(unanswerable),
        "errors": len(scored) - len(answered),
    }
    for k in HIT_KS:
        metrics[f"hit@{k}"] = _ratio([hit_at(s.rank, k) for s in placed]) if k <= top_k else None
    # Named by the ranks it saw: with --top-k 5, a gold passage at rank 6..10 was never
    # retrieved, so the value is MRR@5 and labelling it MRR@10 compared it with real MRR@10
    # runs. As hit@10, mrr@10 is then None ("not measured").
    metrics[f"mrr@{MRR_K}"] = None
    metrics[mrr_key(top_k)] = _ratio([reciprocal_rank(s.rank, min(MRR_K, top_k)) for s in placed])
    metrics["answer_hit"] = _ratio([s.answer_hit for s in scored])
    metrics["citation_accuracy"] = _ratio([s.citation_ok for s in scored])
    metrics["quotes_valid"] = _ratio([s.quotes_valid for s in answered])
    metrics["duplicate_rate"] = _ratio([s.duplicate_share for s in answered])
    metrics["short_em"] = _ratio([s.short_em for s in scored])
    metrics["short_f1"] = _ratio([s.short_f1 for s in scored])
    metrics["short_answered"] = _ratio(
        [bool(s.outcome.answer and s.outcome.answer.get("short_answer")) for s in scored]
    )
    metrics["short_valid"] = _ratio([s.short_valid for s in answered])
    # Precision and recall of abstaining as a detector of unanswerable questions: without
    # any in the set there is nothing to detect (abstentions still show in `abstained`).
    right = sum(not s.answerable for s in abstained)
    metrics["abstained"] = _ratio(
        [bool(s.outcome.answer and s.outcome.answer["abstained"]) for s in answered]
    )
    metrics["abstention_precision"] = (
        round(right / len(abstained), 4) if abstained and unanswerable else None
    )
    metrics["abstention_recall"] = round(right / len(unanswerable), 4) if unanswerable else None
    lengths = [
        len(s.outcome.answer["answer"])
        for s in answered
        if s.outcome.answer and not s.outcome.answer["abstained"]
    ]
    metrics["answer_chars_median"] = statistics.median(lengths) if lengths else None
    return metrics


def latency(scored: Sequence[Scored]) -> dict[str, dict[str, float]]:
    """p50/p95/max per stage of `timings_ms`, over the questions that report the stage."""
    stages: dict[str, list[float]] = {}
    for s in scored:
        if s.outcome.answer is not None:
            for stage, ms in s.outcome.answer.get("timings_ms", {}).items():
                stages.setdefault(stage, []).append(float(ms))
    return {stage: percentiles(values) for stage, values in stages.items()}


def hit_curve(scored: Sequence[Scored], top_k: int) -> dict[str, float]:
    placed = [s for s in scored if s.has_gold_place]  # a failed question is a miss at every k
    if not placed:
        return {}
    return {
        str(k): round(mean([hit_at(s.rank, k) for s in placed]), 4) for k in range(1, top_k + 1)
    }


def by_kind(scored: Sequence[Scored], top_k: int) -> dict[str, dict[str, Any]]:
    kinds = sorted({s.outcome.question.kind for s in scored if s.outcome.question.kind})
    return {
        kind: summarise([s for s in scored if s.outcome.question.kind == kind], top_k)
        for kind in kinds
    }


def failures(
    scored: Sequence[Scored], gold_evidence: Callable[[Question], str | None]
) -> list[Any]:
    """Failed questions, worst first (errors, then most reasons), at most MAX_FAILURES."""
    failed = [s for s in scored if s.reasons]
    failed.sort(key=lambda s: ("error" not in s.reasons, -len(s.reasons)))
    return [_failure(s, gold_evidence) for s in failed[:MAX_FAILURES]]


def _failure(s: Scored, gold_evidence: Callable[[Question], str | None]) -> dict[str, Any]:
    q, answer = s.outcome.question, s.outcome.answer or {}
    return {
        "id": q.id,
        "question": q.question,
        "asked": s.outcome.asked,
        "kind": q.kind,
        "reasons": s.reasons,
        "gold": {
            "file": q.file,
            "paragraph": q.paragraph,
            "answers": list(q.answers),
            "evidence": gold_evidence(q),
        },
        "answer": answer.get("answer", ""),
        "abstained": answer.get("abstained", False),
        "error": s.outcome.error,
        "citations": [
            {k: c[k] for k in ("n", "file", "paragraph", "quote", "char_start", "char_end")}
            for c in answer.get("citations", [])
        ],
        "rank": s.rank,
    }
