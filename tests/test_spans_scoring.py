"""Scoring short answers: SQuAD-style exact match and character F1, script-folded; validity."""

from __future__ import annotations

import pytest

from eval.metrics import char_f1, exact_match
from eval.scoring import short_inside_quote


def test_exact_match_folds_script_and_ignores_punctuation_and_space() -> None:
    assert exact_match("質量月", ["质量月"]) == 1.0
    assert exact_match("“质量月”", ["质量月"]) == 1.0
    assert exact_match("2011-2020年", ["2011 2020年"]) == 1.0
    assert exact_match("", ["质量月"]) == 0.0
    assert exact_match("质量", ["质量月"]) == 0.0


def test_char_f1_is_the_best_character_overlap_with_any_gold() -> None:
    assert char_f1("质量", ["质量月"]) == pytest.approx(0.8)
    assert char_f1("支树平", ["梅克保", "支樹平"]) == 1.0
    assert char_f1("", ["质量月"]) == 0.0


CITATION = {"n": 1, "quote": "局长支树平出席", "char_start": 100, "char_end": 107}


def test_a_short_answer_is_valid_only_inside_its_quote_and_offsets() -> None:
    short = {"text": "支树平", "citation": 1, "quote_start": 2, "quote_end": 5}
    assert short_inside_quote({**short, "char_start": 102, "char_end": 105}, [CITATION])
    assert not short_inside_quote({**short, "char_start": 90, "char_end": 93}, [CITATION])
    assert not short_inside_quote(
        {**short, "quote_start": 1, "char_start": 102, "char_end": 105}, [CITATION]
    )
    assert not short_inside_quote(
        {**short, "citation": 2, "char_start": 102, "char_end": 105}, [CITATION]
    )
