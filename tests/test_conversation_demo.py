"""The issue's conversation on the demo corpus, with the real model: a follow-up about a speech."""

from __future__ import annotations

import pytest

from rag.pipeline import Pipeline
from rag.types import Turn
from tests.conftest import DEMO

pytestmark = pytest.mark.skipif(not DEMO.is_dir(), reason="the demo corpus is missing")

FIRST = "王岐山在哪里主持召开质量工作座谈会？"
FOLLOW_UP = "他在会上说了什么？"
HEADLINE = "王岐山在質量工作座談會上指出"


def test_the_follow_up_is_answered_with_what_he_said_not_the_headline(
    demo_pipeline: Pipeline,
) -> None:
    first = demo_pipeline.ask(FIRST)
    assert "北京" in first.answer

    answer = demo_pipeline.ask(FOLLOW_UP, history=[Turn(FIRST, first.answer)])

    assert answer.question == FOLLOW_UP
    assert answer.standalone_question == "王岐山在会上说了什么？"
    assert not answer.answer.startswith(HEADLINE)
    (citation, *_) = answer.citations
    assert citation.file == "001_f59391d5d2b02854.txt" and citation.paragraph > 1
    # What he said: a sentence reporting his words, by name.
    assert "王岐山" in answer.answer and any(v in answer.answer for v in ("說,", "指出,"))


def test_without_the_history_the_follow_up_is_asked_as_it_is(demo_pipeline: Pipeline) -> None:
    answer = demo_pipeline.ask(FOLLOW_UP)

    assert answer.standalone_question == FOLLOW_UP
