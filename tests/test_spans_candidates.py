"""Candidate answer spans: names, dates, numbers with units, titles, phrases, at exact offsets."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rag.answer.spans.candidates import balanced, find_candidates, foldable
from rag.answer.spans.features import prepare, word_boundaries
from rag.answer.spans.select import candidates_for


def spans(text: str, **kwargs: object) -> dict[str, str]:
    return {text[c.start : c.end]: c.kind for c in find_candidates(text, **kwargs)}


def test_person_names_come_from_the_tagger_even_when_the_dictionary_lacks_them() -> None:
    found = spans("质检总局副局长、党组副书记梅克保主持会议。")
    assert found["梅克保"] == "person"


def test_a_title_before_a_name_is_a_phrase_not_a_person() -> None:
    found = spans("质检总局局长、党组书记支树平出席会议并讲话。")
    assert found["支树平"] == "person"
    assert found.get("党组书记支树平") != "person"


def test_dates_ranges_and_numbers_with_units() -> None:
    found = spans("2012年7月2日发布,《质量发展纲要(2011-2020年)》覆盖10年,有300多个城市参加。")
    assert found["2012年7月2日"] == "date"
    assert found["2011-2020年"] == "date"
    assert found["300多个"] == "number"


def test_ordinals_keep_their_di_and_areas_their_unit() -> None:
    found = spans("涞滩镇面积为70.99平方公里,参与了第十三届选举。")
    assert found["70.99平方公里"] == "number"
    assert found["第十三届"] == "number"


def test_an_enumeration_is_one_candidate() -> None:
    found = spans("自2006年起,零食物语在上海、北京、顺德建立销售点。")
    assert found["上海、北京、顺德"] == "list"
    found = spans("它们是中国教育网、新华社和国家广电总局。")
    assert found["中国教育网、新华社和国家广电总局"] == "list"
    assert not any(kind == "list" and "," in s for s, kind in found.items())


def test_quoted_titles_with_and_without_their_marks() -> None:
    found = spans("9月是全國“質量月”,學習《質量發展綱要》。")
    assert found["“質量月”"] == "title"
    assert found["質量月"] == "title"
    assert found["質量發展綱要"] == "title"


def test_a_transliterated_name_is_one_span() -> None:
    assert spans("作曲者为格奥尔基·伊万诺夫。")["格奥尔基·伊万诺夫"] == "person"


def test_phrases_stay_inside_a_clause_and_only_where_asked() -> None:
    text = "他擅长创作诗歌,能写一手好字。"
    assert spans(text)["写一手好字"] == "phrase"
    assert "写一手好字" not in spans(text, phrases_in=())
    assert not any("," in s for s in spans(text))


def test_traditional_text_is_tagged_folded_but_spans_index_the_original() -> None:
    text = "國務院副總理王岐山在北京主持召開質量工作座談會。"
    found = spans(text)
    assert found["王岐山"] == "person"
    assert "北京" in found


@settings(max_examples=60, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from("质量月局长支树平2011年-。,“”《》的是在9个人國際"), max_size=40
    )
)
def test_every_candidate_is_a_non_empty_span_inside_the_text(text: str) -> None:
    assert len(foldable(text)) == len(text)
    for c in find_candidates(text):
        assert 0 <= c.start < c.end <= len(text)


def test_a_span_that_cuts_a_title_or_bracket_in_two_is_no_candidate() -> None:
    question = prepare("Aeronomy这个词是在哪个期刊发表的文章中首次提及？")
    text = "这个词在1946年在《自然》发表的文章中首次提及（见附录）。"
    candidates, _ = candidates_for(question, text, foldable(text))
    found = {text[c.start : c.end] for c in candidates}
    assert "《自然》" in found and "自然" in found
    assert not any(not balanced(span) for span in found)
    assert "1946年在《自然" not in found
    assert balanced("《自然》（见附录）") and not balanced("见附录）")


def test_word_edges_carry_the_class_of_the_words_on_either_side() -> None:
    text = "他在华盛顿海军工厂工作。"
    edges = word_boundaries(text, [(0, len(text))])
    at = text.index("海军")
    # 华盛顿 ends where a noun starts: a candidate ending there is cut short.
    assert edges[at] == ("name", "noun")
    assert edges[0][0] == "edge"  # nothing before the text
    assert edges[text.index("。")][1] == "edge"  # punctuation is an edge
