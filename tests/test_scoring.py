"""Evaluation metrics on small hand-computed examples."""

from __future__ import annotations

from typing import Any

import pytest

from eval.datasets import Question
from eval.metrics import answer_hit, char_f1, exact_match
from eval.runner import Outcome
from eval.scoring import (
    Scored,
    duplicate_share,
    failures,
    first_gold_rank,
    hit_curve,
    holds_gold,
    latency,
    quote_at_offsets,
    score,
    summarise,
)

GOLD = Question("q1", "谁是局长？", ("支树平",), file="a.txt", paragraph=2)


def passage(text: str, *places: tuple[str, int]) -> dict[str, Any]:
    return {
        "id": 0,
        "text": text,
        "score": 0.5,
        "sources": [{"file": f, "paragraph": p} for f, p in places],
    }


def citation(file: str, paragraph: int, quote: str = "", start: int = 0) -> dict[str, Any]:
    return {
        "n": 1,
        "file": file,
        "paragraph": paragraph,
        "quote": quote,
        "char_start": start,
        "char_end": start + len(quote),
    }


def answer(
    text: str = "局长是支树平。[1]",
    passages: list[dict[str, Any]] | None = None,
    citations: list[dict[str, Any]] | None = None,
    abstained: bool = False,
    total_ms: float = 10.0,
) -> dict[str, Any]:
    return {
        "answer": text,
        "abstained": abstained,
        "passages": passages if passages is not None else [passage("x", ("a.txt", 2))],
        "citations": citations if citations is not None else [citation("a.txt", 2)],
        "timings_ms": {"embed": total_ms / 2, "total": total_ms},
    }


def outcome(question: Question, answered: dict[str, Any] | None) -> Outcome:
    error = None if answered is not None else "RuntimeError: boom"
    return Outcome(question, question.question, answered, error, 0.01)


def no_sources(_: str) -> str | None:
    return None


# -- the gold passage -------------------------------------------------------------------------


def test_a_squad_gold_is_a_file_and_paragraph() -> None:
    assert holds_gold(passage("…", ("b.txt", 1), ("a.txt", 2)), GOLD)
    assert not holds_gold(passage("…", ("a.txt", 3)), GOLD)


def test_a_jsonl_gold_is_the_file_holding_the_evidence_in_either_script() -> None:
    q = Question("d", "?", ("质量和诚信意识",), file="a.txt", evidence="要強化質量和誠信意識")

    assert holds_gold(passage("企业要强化质量和 诚信意识。", ("a.txt", 9)), q)
    assert not holds_gold(passage("企业要强化质量。", ("a.txt", 9)), q)
    assert not holds_gold(passage("企业要强化质量和诚信意识。", ("b.txt", 9)), q)


def test_without_evidence_any_passage_of_the_file_is_gold() -> None:
    q = Question("d", "?", (), file="a.txt")
    assert holds_gold(passage("anything", ("a.txt", 5)), q)


def test_the_rank_is_the_first_passage_holding_the_gold() -> None:
    passages = [passage("…", ("a.txt", 1)), passage("…", ("a.txt", 2)), passage("…", ("a.txt", 2))]
    assert first_gold_rank(passages, GOLD) == 2
    assert first_gold_rank(passages[:1], GOLD) is None


# -- quotes and duplicates --------------------------------------------------------------------


def test_a_quote_is_valid_when_the_source_at_its_offsets_cleans_to_it() -> None:
    source = "标题\n局长  支树平\n"
    assert quote_at_offsets(citation("a.txt", 2, "局长  支树平", 3), source)  # as is
    assert quote_at_offsets(citation("a.txt", 2, "局长 支树平", 3) | {"char_end": 10}, source)
    assert not quote_at_offsets(citation("a.txt", 2, "局长 支树平", 0), source)


def test_duplicate_share_counts_repeats_of_earlier_passages() -> None:
    base = "质检总局召开全国质量技术监督工作座谈会，支树平出席会议并讲话。"
    passages = [
        passage(base),
        passage(base.replace("，", ",")),  # same text, other punctuation: exact duplicate
        passage("質檢總局召開全國質量技術監督工作座談會，支樹平出席會議並講話。"),  # other script
        passage("企业要强化质量和诚信意识，全面提升产品质量。"),
    ]
    assert duplicate_share(passages) == pytest.approx(2 / 4)
    assert duplicate_share([]) == 0.0


def test_near_duplicates_count_as_duplicates() -> None:
    base = (
        "质检总局召开全国质量技术监督工作座谈会，质检总局局长、党组书记支树平出席会议并讲话。"
        "他要求认真落实党中央、国务院的决策部署，进一步研究质监工作的职能定位。"
    )
    one_word = base.replace("认真", "切实")  # 3-gram Jaccard ~0.92
    rewritten = base[: len(base) // 2] + "企业要强化质量和诚信意识。"  # ~0.5

    assert duplicate_share([passage(base), passage(one_word)]) == 0.5
    assert duplicate_share([passage(base), passage(rewritten)]) == 0.0


# -- one question -----------------------------------------------------------------------------


def test_a_right_answer_has_no_failure_reasons() -> None:
    scored = score(outcome(GOLD, answer()), no_sources)

    assert (scored.rank, scored.answer_hit, scored.citation_ok) == (1, 1.0, True)
    assert scored.reasons == []
    assert scored.quotes_valid is None  # sources not readable here: not judged


@pytest.mark.parametrize(
    ("answered", "reasons"),
    [
        (answer(passages=[passage("…", ("b.txt", 1))]), ["passage_miss"]),
        (answer(text="不知道。[1]"), ["answer_miss"]),
        (answer(citations=[citation("b.txt", 2)]), ["citation_wrong"]),
        (answer(citations=[]), ["citation_wrong"]),
        (
            answer(text="文档中没有找到这个问题的答案。", citations=[], abstained=True),
            ["answer_miss", "citation_wrong", "should_answer"],
        ),
        (None, ["error"]),
    ],
)
def test_failures_name_their_reasons(answered: dict[str, Any] | None, reasons: list[str]) -> None:
    assert score(outcome(GOLD, answered), no_sources).reasons == reasons


def test_an_unanswerable_question_must_abstain() -> None:
    q = Question("u", "迪士尼门票多少钱？", (), kind="unanswerable")

    answered = score(outcome(q, answer()), no_sources)
    abstained = score(outcome(q, answer(citations=[], abstained=True)), no_sources)

    assert answered.reasons == ["should_abstain"]
    assert abstained.reasons == []
    assert answered.rank is None and answered.answer_hit is None


def test_a_quote_not_found_at_its_offsets_is_a_failure() -> None:
    cited = answer(citations=[citation("a.txt", 2, "支树平", 0)])
    scored = score(outcome(GOLD, cited), lambda file: "局长是支树平")

    assert scored.quotes_valid is False
    assert scored.reasons == ["quote_invalid"]


def test_a_blank_gold_answer_is_no_hit() -> None:
    # " " folded and stripped of white space is "", which occurs in every answer.
    assert answer_hit("完全无关的回答", [" ", "\u3000\n"]) == 0.0
    assert answer_hit("局长是支树平", [" ", "支 树平"]) == 1.0
    assert exact_match("", ["  "]) == 0.0 and char_f1("无关", [" "]) == 0.0


@pytest.mark.parametrize("gold", ["。", " 。 ", "——", "…", "！？"])
def test_a_gold_answer_of_only_punctuation_is_no_hit(gold: str) -> None:
    # Exact match and F1 drop punctuation, leaving such a gold nothing to match; the answer
    # hit looked for it as written, and 。 ends almost every answer: each one was a hit.
    said = f"完全无关的回答{gold}。"
    assert answer_hit(said, [gold]) == 0.0
    assert exact_match(said, [gold]) == 0.0 and char_f1(said, [gold]) == 0.0
    assert answer_hit("局长是支树平。", [gold, "支树平"]) == 1.0  # the real gold still counts


# -- the run ----------------------------------------------------------------------------------


def run_of_five() -> list[Scored]:
    """Ranks 1, 3 and a miss; an abstention on an unanswerable question; an error."""
    q2 = Question("q2", "?", ("六个严格",), file="a.txt", paragraph=2)
    q3 = Question("q3", "?", ("长效机制",), file="a.txt", paragraph=2)
    q4 = Question("q4", "?", (), kind="unanswerable")
    other = passage("…", ("b.txt", 1))
    return [
        score(outcome(GOLD, answer(total_ms=10)), no_sources),
        score(
            outcome(q2, answer("强调六个严格", [other, other, passage("…", ("a.txt", 2))])),
            no_sources,
        ),
        score(outcome(q3, answer("不知道", [other], [citation("b.txt", 1)])), no_sources),
        score(outcome(q4, answer("没有", [other], [], abstained=True, total_ms=30)), no_sources),
        score(outcome(GOLD, None), no_sources),
    ]


def test_the_run_metrics_by_hand() -> None:
    metrics = summarise(run_of_five(), top_k=5)

    # The failed question (the fifth) was asked and not answered: a miss, not left out.
    assert metrics["questions"] == 5 and metrics["errors"] == 1
    assert (metrics["answerable"], metrics["unanswerable"]) == (4, 1)
    assert metrics["hit@1"] == pytest.approx(1 / 4, abs=1e-4)
    assert metrics["hit@3"] == metrics["hit@5"] == pytest.approx(2 / 4, abs=1e-4)
    assert metrics["hit@10"] is None  # only 5 passages were asked for
    assert metrics["mrr@10"] is None  # nor MRR@10: named by the 5 ranks it saw
    assert metrics["mrr@5"] == pytest.approx((1 + 1 / 3 + 0 + 0) / 4, abs=1e-4)
    assert metrics["answer_hit"] == pytest.approx(2 / 4, abs=1e-4)
    assert metrics["citation_accuracy"] == pytest.approx(2 / 4, abs=1e-4)
    assert metrics["abstention_precision"] == 1.0 and metrics["abstention_recall"] == 1.0
    assert metrics["answer_chars_median"] == len("强调六个严格")


def test_a_failed_question_is_a_miss_in_every_rate_of_success() -> None:
    # Left out of the denominators, 9 errors in 10 questions reported the one answered
    # question's 100%: only the `errors` count told the run was a failure.
    unanswerable = Question("u", "?", (), kind="unanswerable")
    right = [score(outcome(GOLD, answer()), no_sources)]
    right.append(score(outcome(unanswerable, answer(abstained=True)), no_sources))
    failed = [score(outcome(GOLD, None), no_sources)] * 2
    failed.append(score(outcome(unanswerable, None), no_sources))

    metrics = summarise(right + failed, top_k=10)

    assert metrics["errors"] == 3
    for key in ("hit@1", "hit@10", "mrr@10", "answer_hit", "citation_accuracy"):
        assert metrics[key] == pytest.approx(1 / 3, abs=1e-4), key
    assert metrics["abstention_recall"] == 0.5
    assert hit_curve(right + failed, 2) == {"1": 0.3333, "2": 0.3333}
    spans = dict(citation=1, quote_start=0, quote_end=3, char_start=0, char_end=3)
    shortly = answer() | {"short_answer": {"text": "支树平", **spans}}
    short = summarise([score(outcome(GOLD, shortly), no_sources), failed[0]], top_k=10)
    assert short["short_em"] == short["short_f1"] == short["short_answered"] == 0.5


@pytest.mark.parametrize(("top_k", "key", "absent"), [(3, "mrr@3", "mrr@10"), (20, "mrr@10", None)])
def test_mrr_is_named_by_the_ranks_it_saw(top_k: int, key: str, absent: str | None) -> None:
    # With --top-k 3 the value was MRR@3 (a gold passage at rank 4..10 was never retrieved)
    # under the name mrr@10, beside an empty hit@10; runs at --top-k 3 and 10 compared it.
    q2 = Question("q2", "?", ("六个严格",), file="a.txt", paragraph=2)
    other = passage("…", ("b.txt", 1))
    ranked = (
        [passage("…", ("a.txt", 2))] if top_k < 10 else [other] * 11 + [passage("…", ("a.txt", 2))]
    )
    scored = [
        score(outcome(GOLD, answer()), no_sources),
        score(outcome(q2, answer(passages=[other, *ranked][:top_k])), no_sources),
    ]
    metrics = summarise(scored, top_k)

    assert metrics[key] == (0.75 if top_k < 10 else 0.5)
    assert absent is None or metrics[absent] is None
    assert [k for k in metrics if k.startswith("mrr@") and metrics[k] is not None] == [key]


def test_the_hit_curve_and_latency_by_stage() -> None:
    scored = run_of_five()

    assert hit_curve(scored, 3) == {"1": 0.25, "2": 0.25, "3": 0.5}  # the error a miss
    assert latency(scored)["total"] == {"p50": 10.0, "p95": 30.0, "max": 30.0}
    assert latency(scored)["embed"]["max"] == 15.0


def test_failures_come_worst_first_with_their_gold() -> None:
    listed = failures(run_of_five(), lambda q: "evidence of " + q.id)

    assert [f["id"] for f in listed] == ["q1", "q3"]
    assert listed[0]["reasons"] == ["error"]
    assert listed[1]["gold"] == {
        "file": "a.txt",
        "paragraph": 2,
        "answers": ["长效机制"],
        "evidence": "evidence of q3",
    }
    assert listed[1]["citations"][0]["file"] == "b.txt"


def test_abstention_precision_needs_unanswerable_questions() -> None:
    said_no = answer(text="文档中没有找到这个问题的答案。", citations=[], abstained=True)
    metrics = summarise(
        [score(outcome(GOLD, said_no), no_sources), score(outcome(GOLD, answer()), no_sources)], 5
    )

    assert metrics["abstained"] == 0.5
    assert metrics["abstention_precision"] is None and metrics["abstention_recall"] is None
