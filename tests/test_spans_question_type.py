"""What a question asks for, read from its question words, in either script."""

from __future__ import annotations

import pytest

from rag.answer.spans.question_type import question_type


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("质检总局局长是谁？", "who"),
        ("谁主持了全国质量技术监督工作座谈会？", "who"),
        ("會議由哪位副局長主持？", "who"),
        ("中国质量奖是什么时候设立的？", "when"),
        ("《质量发展纲要》覆盖哪些年份？", "when"),
        ("他哪一年出生？", "when"),
        ("總部位於哪個城市？", "where"),
        ("会议在哪里召开？", "where"),
        ("质量月活动有多少个城市参加？", "number"),
        ("该省有几个地级市？", "number"),
        ("每年9月是什么活动月？", "what"),
        ("《纲要》的全称是什么？", "what"),
        ("为什么要抓质量工作？", "why_how"),
        ("如何提高质量管理水平？", "why_how"),
        ("它是怎样形成的？", "why_how"),
    ],
)
def test_the_question_words_say_what_kind_of_answer_is_asked_for(question: str, kind: str) -> None:
    assert question_type(question) == kind


def test_a_reason_that_asks_for_a_typed_thing_asks_for_that_thing() -> None:
    assert question_type("傳說原因是他的《清平調》得罪了誰？") == "who"
    assert question_type("岳家軍的大本營定在鄂州的原因和哪一位宰相有關?") == "who"
    assert question_type("事故的原因是什么？") == "why_how"


def test_why_wins_over_the_what_inside_it() -> None:
    assert question_type("为什么会下雨？") == "why_how"
    assert question_type("是什么原因导致了事故？") == "why_how"
