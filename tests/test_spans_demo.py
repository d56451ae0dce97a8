"""Issue 17's examples on the demo corpus with the real bundled model."""

from __future__ import annotations

import pytest

from rag.pipeline import Pipeline
from rag.text.script import fold_script

pytestmark = pytest.mark.slow


def test_who_chaired_is_answered_by_the_sentence_naming_the_chair(demo_pipeline: Pipeline) -> None:
    answer = demo_pipeline.ask("谁主持了全国质量技术监督工作座谈会？")
    assert not answer.abstained
    assert "梅克保" in answer.answer
    assert answer.short_answer is not None and answer.short_answer.text == "梅克保"


def test_a_paraphrased_month_question_is_answered_not_abstained(demo_pipeline: Pipeline) -> None:
    answer = demo_pipeline.ask("每年9月是什么活动月？")
    assert not answer.abstained
    assert "质量月" in fold_script(answer.answer)


def test_a_question_about_years_finds_them_in_the_title(demo_pipeline: Pipeline) -> None:
    answer = demo_pipeline.ask("《质量发展纲要》覆盖哪些年份？")
    assert not answer.abstained
    assert "2011-2020" in answer.answer


def test_who_is_the_director_reads_as_a_name(demo_pipeline: Pipeline) -> None:
    answer = demo_pipeline.ask("质检总局局长是谁？")
    assert answer.short_answer is not None
    assert answer.short_answer.text == "支树平"
    [cited] = [c for c in answer.citations if c.n == answer.short_answer.citation]
    assert cited.quote[answer.short_answer.quote_start : answer.short_answer.quote_end] == "支树平"
