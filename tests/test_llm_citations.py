"""The citation checker of LLM answers, as pure functions: parse, drop, flag, quote."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rag.answer.llm.citations import (
    answer_sentences,
    check_citations,
    cited_numbers,
    quote_span,
    says_not_found,
    without_thinking,
)


@pytest.mark.parametrize(
    ("mark", "numbers"),
    [
        ("[1]", [1]),
        ("[1,3]", [1, 3]),
        ("[1, 3]", [1, 3]),
        ("[1，3]", [1, 3]),
        ("[1、3]", [1, 3]),
        ("［2］", [2]),
        ("［２］", [2]),  # full-width digits too
        ("[资料4]", [4]),
        ("[a]", []),
    ],
)
def test_every_way_of_writing_a_citation_is_read(mark: str, numbers: list[int]) -> None:
    assert cited_numbers(mark) == numbers


def test_citations_are_rewritten_one_number_per_mark() -> None:
    checked = check_citations("会议在北京召开[1,2]。局长出席［3］[3]。", passages=3)

    assert checked.text == "会议在北京召开[1][2]。局长出席[3]。"
    assert checked.cited == (1, 2, 3)
    assert checked.removed == ()
    assert checked.unsupported == ()


def test_citations_of_passages_that_were_not_given_are_removed() -> None:
    checked = check_citations("会议在北京召开[2,7]。局长是支树平[9]。", passages=3)

    assert checked.text == "会议在北京召开[2]。局长是支树平。"
    assert checked.removed == (7, 9)
    assert checked.cited == (2,)
    # Its only citation was invalid: nothing given vouches for the second sentence.
    assert checked.unsupported == ("局长是支树平。",)


def test_a_citation_number_too_long_to_read_is_removed_not_a_failure() -> None:
    """A model stuck repeating a digit wrote "[111…1]": past 4,300 digits int() refuses the
    number (ValueError), and the question got a 500, or an error event mid-stream."""
    checked = check_citations(f"局长是支树平[1][{'1' * 5000}]。会议很成功[{'2' * 5000}]。", 3)

    assert checked.text == "局长是支树平[1]。会议很成功。"
    assert checked.cited == (1,)
    assert checked.unsupported == ("会议很成功。",)


def test_a_sentence_without_a_citation_is_unsupported() -> None:
    checked = check_citations("会议在北京召开[1]。会议很成功。局长讲话[2]！", passages=2)

    assert checked.unsupported == ("会议很成功。",)
    assert [s.cites for s in checked.sentences] == [(1,), (), (2,)]


def test_a_citation_after_the_full_stop_belongs_to_the_sentence_before() -> None:
    checked = check_citations("会议在北京召开。[1] 局长讲话。[2][1]\n会议很成功", passages=2)

    assert [(s.text, s.cites) for s in checked.sentences] == [
        ("会议在北京召开。[1]", (1,)),
        ("局长讲话。[2][1]", (2, 1)),
        ("会议很成功", ()),
    ]
    assert checked.claims(1) == ["会议在北京召开。", "局长讲话。"]


def test_western_sentence_ends_split_but_decimals_do_not() -> None:
    text = "GDP grew 7.5 percent [1]. Prices rose? Yes [2]"
    spans = [text[a:b].strip() for a, b in answer_sentences(text)]

    assert spans == ["GDP grew 7.5 percent [1].", "Prices rose?", "Yes [2]"]
    assert check_citations(text, 2).unsupported == ("Prices rose?",)


def test_list_numbers_and_stray_marks_are_not_claims() -> None:
    checked = check_citations("1. 会议在北京召开[1]\n2. 局长讲话[1]\n。", passages=1)

    assert checked.unsupported == ()
    assert len(checked.sentences) == 2


def test_the_not_found_reply_is_recognised_in_either_script() -> None:
    assert says_not_found("文档中没有找到这个问题的答案。")
    assert says_not_found("文檔中沒有找到這個問題的答案")
    assert not says_not_found("会议在北京召开[1]。")


def test_a_reasoning_models_thinking_is_not_part_of_the_answer() -> None:
    answer = "会议在北京召开[1]。"
    assert without_thinking(f"<think>先看资料1……</think>\n{answer}") == answer
    assert without_thinking("<think>想到一半") == ""


def test_the_quote_is_the_passage_sentence_that_backs_the_claim() -> None:
    passage = "天气很好。质检总局局长支树平出席會議並講話。会议在下午结束。"

    start, end = quote_span(["局长支树平出席了会议"], passage)

    assert passage[start:end] == "质检总局局长支树平出席會議並講話。"  # across scripts too


def test_claims_backed_by_several_sentences_quote_from_the_first_to_the_last() -> None:
    passage = "天气很好。质检总局局长支树平出席会议。会议在北京召开。下午结束。"

    start, end = quote_span(["局长是支树平", "会议在北京召开"], passage)

    assert passage[start:end] == "质检总局局长支树平出席会议。会议在北京召开。"


def test_a_claim_the_passage_shares_nothing_with_quotes_the_whole_passage() -> None:
    assert quote_span(["毫不相干"], "天气很好。") == (0, len("天气很好。"))


MARK = st.builds(
    lambda ns, style: style.format(",".join(map(str, ns))),
    st.lists(st.integers(0, 12), min_size=1, max_size=3),
    st.sampled_from(["[{}]", "［{}］", "[资料{}]"]),
)
PIECE = st.one_of(MARK, st.sampled_from(["会议召开", "。", "！", "\n", " ", "局长讲话", "."]))


@given(st.lists(PIECE, max_size=20), st.integers(1, 6))
def test_only_given_passages_remain_cited(pieces: list[str], passages: int) -> None:
    checked = check_citations("".join(pieces), passages)

    left = [int(n) for n in re.findall(r"\[(\d+)\]", checked.text)]
    assert all(1 <= n <= passages for n in left)
    assert set(checked.cited) == set(left)
    assert not set(checked.removed) & set(range(1, passages + 1))
    # Every sentence is in the text, and a sentence is unsupported exactly when it cites none.
    assert all(s.text in checked.text for s in checked.sentences)
    assert all((s.text in checked.unsupported) == (not s.cites) for s in checked.sentences)
