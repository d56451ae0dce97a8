"""Script folding: simplified and traditional meet in one form; folding is idempotent."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opencc import OpenCC

from eval.datasets import load_squad
from rag.text.script import detect_script, fold_chars, fold_script, to_script
from tests.conftest import DATASETS, DEMO


def test_traditional_and_simplified_fold_alike() -> None:
    assert fold_script("王岐山在北京主持召開質量工作座談會") == fold_script(
        "王岐山在北京主持召开质量工作座谈会"
    )


def test_full_width_digits_and_latin_case_fold() -> None:
    assert fold_script("執行７個ＷＴＯ措施") == "执行7个wto措施"


@given(st.text(alphabet=st.sampled_from(list("質量发展發展系統系统ＡBc１2 。，")), max_size=50))
def test_folding_is_idempotent(text: str) -> None:
    assert fold_script(fold_script(text)) == fold_script(text)


def test_script_detection_and_conversion() -> None:
    assert detect_script("質量是基礎") == "hant"
    assert detect_script("质量是基础") == "hans"
    assert detect_script("2012") is None
    assert to_script("质量是基础", "hant") == "質量是基礎"


def test_folding_by_characters_folds_scripts_width_and_case_in_place() -> None:
    assert fold_chars("國務院副總理王岐山") == "国务院副总理王岐山"
    assert fold_chars("ＡＢ１２質量月") == "ab12质量月"
    assert fold_chars("面积㎡") == "面积㎡"  # NFKC would make it longer: kept as it is


@given(st.text(alphabet=st.sampled_from("質量月国國务務ＡＢab１2㎡ﬁ 。，乾隆發髮"), max_size=30))
def test_folding_by_characters_keeps_every_offset(text: str) -> None:
    folded = fold_chars(text)
    assert len(folded) == len(text)
    assert fold_chars(folded) == folded
    assert all(fold_chars(text[i]) == folded[i] for i in range(len(text)))


@lru_cache(maxsize=1)
def _opencc() -> OpenCC:
    return OpenCC("t2s")


def _opencc_fold(text: str) -> str:
    """What folding was before its character table: OpenCC's t2s on every text."""
    return str(_opencc().convert(unicodedata.normalize("NFKC", text).lower()))


def test_folding_reads_phrases_where_a_text_holds_one_and_characters_elsewhere() -> None:
    # 乾 alone is 干 (dry); in the phrase 乾隆 (an emperor) it stays.
    assert fold_script("乾隆皇帝下江南") == "乾隆皇帝下江南"
    assert fold_script("乾燥的天氣") == "干燥的天气"
    assert fold_script("沈默是金") == _opencc_fold("沈默是金") == "沉默是金"
    assert fold_script("發髮") == _opencc_fold("發髮")  # several forms: OpenCC's first


@pytest.mark.skipif(not DATASETS.is_dir(), reason="../shared/datasets missing")
@pytest.mark.parametrize("name", ["cmrc2018_dev", "drcd_dev"])
def test_folding_gives_opencc_own_output_on_real_text(name: str) -> None:
    squad = load_squad(DATASETS / f"{name}.json")
    texts = [p for a in squad.articles[:150] for p in a.paragraphs]
    texts += [q.question for q in squad.questions[:3000]]
    texts += [answer for q in squad.questions[:3000] for answer in q.answers]
    assert [fold_script(t) for t in texts] == [_opencc_fold(t) for t in texts]


def test_folding_gives_opencc_own_output_on_the_demo_corpus() -> None:
    for path in sorted(DEMO.rglob("*.*")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            assert fold_script(line) == _opencc_fold(line), (path.name, line)
