"""Choosing the short answer: hand examples, and its offsets always inside the cited quote."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rag.answer.extractive import ExtractiveComposer, ExtractiveConfig
from rag.answer.spans.select import best_span
from tests.test_answer import FlatLexicon, scored


def short(question: str, text: str) -> str | None:
    span = best_span(question, text)
    return None if span is None else text[span.start : span.end]


def test_who_is_answered_by_the_name_next_to_the_title_asked_about() -> None:
    text = "质检总局局长、党组书记支树平出席会议并讲话。"
    assert short("质检总局局长是谁？", text) == "支树平"


def test_who_did_something_is_the_name_before_the_verb() -> None:
    text = "质检总局副局长、党组副书记梅克保主持会议,副局长孙大伟出席会议。"
    assert short("谁主持了会议？", text) == "梅克保"


def test_when_is_answered_by_a_date() -> None:
    text = "中国质量奖于2012年设立,每两年评选一次。"
    assert short("中国质量奖是哪一年设立的？", text) == "2012年"


def test_how_many_is_answered_by_a_number_with_its_unit() -> None:
    text = "今年的质量月活动共有300多个城市参加。"
    assert short("质量月活动有多少个城市参加？", text) == "300多个"


def test_why_and_how_keep_the_sentence() -> None:
    text = "质量是基础,安全是底线,所以要抓好质量工作。"
    assert best_span("为什么要抓好质量工作？", text) is None
    assert best_span("如何抓好质量工作？", text) is None


def test_the_composer_gives_the_short_answer_with_its_citation() -> None:
    composer = ExtractiveComposer(ExtractiveConfig(context_chars=0), FlatLexicon())
    passages = [scored(1, "会议在北京召开。质检总局局长支树平出席会议并讲话。", 0.8, at=100)]
    answer = composer.compose("质检总局局长是谁？", passages)
    assert answer.short_answer is not None
    s, [c] = answer.short_answer, answer.citations
    assert (s.text, s.citation) == ("支树平", 1)
    assert c.quote[s.quote_start : s.quote_end] == "支树平"
    assert (s.char_start, s.char_end) == (114, 117)


def test_an_abstention_has_no_short_answer() -> None:
    composer = ExtractiveComposer(ExtractiveConfig(), FlatLexicon())
    answer = composer.compose("质检总局局长是谁？", [scored(1, "天气很好。", 0.1)])
    assert answer.abstained and answer.short_answer is None


PIECES = [
    "质检总局局长支树平出席会议并讲话。",
    "副局长梅克保主持会议。",
    "9月是全國“質量月”。",
    "国务院颁发了《质量发展纲要(2011-2020年)》。",
    "共有300多个城市参加,",
    "  会议在北京召开  ",
    "他指出,质量是基础。",
]
QUESTIONS = [
    "质检总局局长是谁？",
    "谁主持了会议？",
    "每年9月是什么活动月？",
    "《质量发展纲要》覆盖哪些年份？",
    "有多少个城市参加？",
    "会议在哪里召开？",
    "为什么要抓质量？",
]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=6),
    st.sampled_from(QUESTIONS),
    st.integers(min_value=0, max_value=500),
)
def test_a_short_answer_lies_inside_its_cited_quote_at_valid_offsets(
    pieces: list[str], question: str, at: int
) -> None:
    composer = ExtractiveComposer(ExtractiveConfig(min_support=0.0), FlatLexicon())
    text = "".join(pieces)
    answer = composer.compose(question, [scored(1, text, 0.9, at=at)])
    s = answer.short_answer
    if s is None:
        return
    [c] = [c for c in answer.citations if c.n == s.citation]
    assert 0 <= s.quote_start < s.quote_end <= len(c.quote)
    assert c.quote[s.quote_start : s.quote_end] == s.text == s.text.strip()
    assert c.char_start <= s.char_start < s.char_end <= c.char_end
    assert text[s.char_start - at : s.char_end - at] == s.text
