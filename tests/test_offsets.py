"""Properties of MappedText and OffsetMap: every cleaned position maps back into the source."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from rag.text.offsets import MappedText

Edit = tuple[re.Pattern[str], str]
MAX_EDITED = 120
SOURCE_CHARS = "ab 中文\u3000\u00a0\n|?("
PATTERNS = [
    re.compile(p)
    for p in (r"a+", r"b", r"\s+", r"[ab]{2}", r"中", r"x?", r"\|", r"[^中]{3}", r"\s{2,}|[^\S ]")
]
DELETING = [re.compile(p) for p in (r"a+", r"b", r"\s+", r"[ab]{2}", r"中", r"\|", r"(?<=a)b")]
REPLACEMENTS = ["", "Z", "ZZZ", " ", r"\g<0>\g<0>", "长的替换文本"]

sources = st.text(alphabet=SOURCE_CHARS, max_size=30)
edits = st.lists(
    st.tuples(st.sampled_from(PATTERNS), st.sampled_from(REPLACEMENTS)), min_size=1, max_size=6
)
deletions = st.lists(st.sampled_from(DELETING), min_size=1, max_size=6)


def apply_edits(source: str, steps: list[Edit]) -> MappedText:
    mapped = MappedText.from_source(source)
    for pattern, repl in steps:
        edited = mapped.sub(pattern, repl)
        if len(edited) > MAX_EDITED:
            # Empty matches insert at every position: stop before the text explodes.
            break
        mapped = edited
    return mapped


@settings(deadline=None)
@given(sources, edits)
def test_offset_map_agrees_with_per_character_map(source: str, steps: list[Edit]) -> None:
    mapped = apply_edits(source, steps)
    offsets = mapped.offset_map()
    n = len(mapped)
    assert offsets.length == n
    for a in range(n + 1):
        for b in range(a, n + 1):
            assert offsets.source_span(a, b) == mapped.source_span(a, b), (a, b)


@settings(deadline=None)
@given(sources, edits)
def test_spans_stay_inside_the_source_and_in_order(source: str, steps: list[Edit]) -> None:
    mapped = apply_edits(source, steps)
    assert all(0 <= a <= b <= len(source) for a, b in zip(mapped.starts, mapped.ends, strict=True))
    assert list(mapped.starts) == sorted(mapped.starts)
    assert list(mapped.ends) == sorted(mapped.ends)


@settings(deadline=None)
@given(sources, deletions)
def test_after_deletions_each_char_is_the_source_char_at_its_start(
    source: str, patterns: list[re.Pattern[str]]
) -> None:
    mapped = apply_edits(source, [(p, "") for p in patterns])
    offsets = mapped.offset_map()
    for i, ch in enumerate(mapped.text):
        a, b = offsets.source_span(i, i + 1)
        assert (a, b) == (mapped.starts[i], mapped.starts[i] + 1)
        assert source[a] == ch
    # Deleting never reorders: the cleaned text is a subsequence of its source span.
    a, b = offsets.source_span(0, len(mapped))
    rest = iter(source[a:b])
    assert all(ch in rest for ch in mapped.text)


@settings(deadline=None)
@given(sources, st.data())
def test_strip_and_slices_keep_the_map(source: str, data: st.DataObject) -> None:
    mapped = MappedText.from_source(source, offset=7).sub(re.compile(r"\s{2,}"), " ").strip()
    i = data.draw(st.integers(0, len(mapped)))
    j = data.draw(st.integers(i, len(mapped)))
    part = mapped[i:j]
    assert part.text == mapped.text[i:j]
    if part.text:
        assert part.offset_map().source_span(0, len(part)) == mapped.source_span(i, j)


def test_copied_text_slices_back_exactly() -> None:
    source = "前文  发(fā)展 后文"
    mapped = MappedText.from_source(source).sub(re.compile(r"\(fā\)"), "")
    mapped = mapped.sub(re.compile(r"\s{2,}"), " ")
    assert mapped.text == "前文 发展 后文"
    a, b = mapped.offset_map().source_span(mapped.text.index("后文"), len(mapped))
    assert source[a:b] == "后文"
    # A span over a deletion covers the deleted characters too.
    a, b = mapped.offset_map().source_span(mapped.text.index("发"), mapped.text.index("展") + 1)
    assert source[a:b] == "发(fā)展"


def test_entity_pieces_map_each_char_to_the_whole_entity() -> None:
    source = "A&amp;B"
    mapped = MappedText.from_pieces([("A", 0, 1), ("&", 1, 6), ("B", 6, 7)])
    offsets = mapped.offset_map()
    assert mapped.text == "A&B"
    assert offsets.source_span(1, 2) == (1, 6)
    assert source[slice(*offsets.source_span(0, 3))] == source


def test_empty_span_at_the_end_of_a_replacement_points_past_it() -> None:
    # Regression: OffsetMap used to return the start of a trailing replacement piece.
    mapped = MappedText.from_pieces([("&", 0, 5)])
    assert mapped.source_span(1, 1) == (5, 5)
    assert mapped.offset_map().source_span(1, 1) == (5, 5)
