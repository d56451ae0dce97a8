"""The lexical tokenisers: `bigram2` reads every script, and is `bigram` on Chinese and ASCII.

`bigram` (version 1) is frozen: every index built with it holds its tokens. `bigram2` gives
tokens for what it dropped (〇, ideographs beyond the BMP, kana, hangul, letters with
diacritics, other alphabets) and exactly its tokens on text of BMP ideographs, ASCII letters
and digits and punctuation, so Chinese retrieval figures do not move.
"""

from __future__ import annotations

import json
import string
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eval.studies.tokenizer_versions import compare, masked
from rag.settings import Settings
from rag.text.script import fold_script
from rag.text.tokenize import (
    DEFAULT_TOKENIZER,
    TOKENIZERS,
    TokenizerName,
    bigram2_tokens,
    bigram_tokens,
    get_tokenizer,
)
from tests.conftest import DATASETS


def b2(text: str) -> list[str]:
    return bigram2_tokens(fold_script(text))


def test_version_1_is_frozen_and_drops_what_version_2_reads() -> None:
    text = fold_script("二〇一二年 ソニーの本社 서울시 Müller公司")
    assert bigram_tokens(text) == ["二", "一二", "二年", "本社", "m", "ller", "公司"]
    assert bigram2_tokens(text) == [
        *("二〇", "〇一", "一二", "二年"),
        *("ソニ", "ニー", "ーの", "の本", "本社"),
        *("서울", "울시"),
        "müller",
        "公司",
    ]


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        # 〇 is an ideograph: the dates it writes are bigrams like any other.
        ("二〇〇八年", ["二〇", "〇〇", "〇八", "八年"]),
        # Extensions B to H (Cantonese in Hong Kong text), alone or among BMP ideographs.
        ("𠵱家𡃁仔", ["𠵱家", "家𡃁", "𡃁仔"]),
        ("𠵱", ["𠵱"]),
        # The simplified forms OpenCC folds some traditional characters to are beyond the BMP:
        # 赤鱲角 (Hong Kong's airport) and 李勣 kept only 赤, 角 and 李 as unigrams.
        ("赤鱲角", ["赤𫚭", "𫚭角"]),
        ("李勣", ["李𪟝"]),
        # The compatibility supplement: NFKC folds it to unified ideographs (here U+20122).
        ("\U0002f803\u4e00", ["\U00020122一"]),
        # Kana, with ー, in one run with the ideographs around (as Lucene's CJK bigrams).
        ("食べる", ["食べ", "べる"]),
        ("ｿﾆｰ", ["ソニ", "ニー"]),  # half-width katakana, folded by NFKC
        ("の", ["の"]),
        # Hangul syllables; a space ends a run.
        ("서울시 중구", ["서울", "울시", "중구"]),
        # 々 repeats the ideograph before it: part of the run.
        ("人々", ["人々"]),
        # A variation selector picks a glyph, not a character.
        ("葛\U000e0100飾区", ["葛饰", "饰区"]),
        # Letters of any alphabet, with their diacritics and combining marks, are words.
        ("Müller-Lüdenscheidt", ["müller-lüdenscheidt"]),
        ("e\u0301cole", ["école"]),
        ("МОСКВА 2.5", ["москва", "2.5"]),
        ("Ἀθῆναι", ["ἀθῆναι"]),
        ("हिन्दी", ["हिन्दी"]),
        ("السَّلَام", ["السَّلَام"]),
        ("α/β", ["α/β"]),
        # Joins, underscores and punctuation as in version 1.
        ("COVID-19 a/b foo_bar x.", ["covid-19", "a/b", "foo", "bar", "x"]),
    ],
)
def test_every_script_gives_tokens(text: str, tokens: list[str]) -> None:
    assert b2(text) == tokens


def test_a_japanese_or_korean_question_shares_tokens_with_its_passage() -> None:
    assert set(b2("ソニーの本社はどこですか")) & set(b2("ソニーグループの本社は東京都港区にある。"))
    assert set(b2("서울시청은 어디에 있나요?")) >= {"서울", "울시", "시청"}
    assert bigram_tokens(fold_script("서울시청은 어디에 있나요?")) == []


# -- the same tokens as version 1 on Chinese and ASCII -----------------------------------------

CHINESE_AND_ASCII = [
    "质量工作座谈会在北京召开",
    "質量 WTO 2012",
    "2012年3月15日，国家质检总局（AQSIQ）发布了《产品质量法》修订稿。",
    "covid-19疫情期间，GDP增长2.5%；见www.gov.cn/zhengce或a/b测试。",
    "“你好！”他说——“再见……”",
    "ｗｔｏ　２０１２",  # full width, folded to ASCII
    "臺灣的資訊工業策進會",
    "iPhone 15 Pro Max售价9999元",
    "a.b.c -x- /y/ 1..2 3--4 _z_",
    "丂丄丅 \u3400\u4dbf \u4e00\u9fff \uf900\ufa6d",  # the edges of the BMP ranges
    "㐀单字 字 一",
    "",
    "   \t\n",
    "No.1 vs. #2 @user $5 ￥8 100℃ 50㎡",
]


@pytest.mark.parametrize("text", CHINESE_AND_ASCII)
def test_on_chinese_and_ascii_version_2_is_version_1(text: str) -> None:
    folded = fold_script(text)
    assert bigram2_tokens(folded) == bigram_tokens(folded)


HANZI = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF) | st.sampled_from(
    "\u3400\u4dbf\uf900\ufa6d㐀丂"
)
ASCII = st.sampled_from(string.ascii_lowercase + string.digits)  # folded text: lower case
PUNCTUATION = st.sampled_from(string.punctuation + " \t\n，。、；：？！“”‘’（）《》【】…—·￥℃")


@settings(max_examples=500, deadline=None)
@given(st.text(st.one_of(HANZI, ASCII, PUNCTUATION), max_size=60))
def test_any_text_of_hanzi_ascii_and_punctuation_gives_version_1s_tokens(text: str) -> None:
    """Text as the tokenisers see it (folded): BMP ideographs, lower-case ASCII, punctuation.
    (Folding may leave that set: OpenCC turns 浿 into 𬇙, beyond the BMP.)"""
    assert bigram2_tokens(text) == bigram_tokens(text)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60))
def test_tokens_differ_from_version_1_only_where_its_dropped_characters_are(text: str) -> None:
    """Any text: with every character that version 1 drops and version 2 reads replaced by a
    space, version 2 gives exactly version 1's tokens of the text."""
    folded = fold_script(text)
    assert bigram2_tokens(masked(folded)) == bigram_tokens(folded)


@pytest.mark.parametrize("name", ["cmrc2018_dev.json", "drcd_dev.json"])
def test_on_cmrc_and_drcd_contexts_tokens_differ_only_where_new_characters_are(
    name: str,
) -> None:
    path = DATASETS / name
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    data = json.loads(path.read_text(encoding="utf-8-sig"))["data"]
    contexts = [p["context"] for a in data for p in a["paragraphs"]]
    found = compare(contexts)
    assert found["unexplained"] == []
    # Measured (eval/studies/tokenizer_versions.py): 81 of 848 CMRC contexts (foreign names
    # with diacritics, Greek, kana, hangul, 〇), 13 of 1,000 DRCD contexts (mostly ideographs
    # OpenCC folds beyond the BMP); the others are token for token version 1's.
    assert found["differ"] == {"cmrc2018_dev.json": 81, "drcd_dev.json": 13}[name]


# -- names ---------------------------------------------------------------------------------------


def test_a_new_index_gets_bigram2_and_every_name_is_a_setting() -> None:
    assert DEFAULT_TOKENIZER == "bigram2"
    assert set(typing.get_args(TokenizerName)) == set(TOKENIZERS)
    assert Settings().tokenizer is None  # unset: the index's own, or the newest
    assert get_tokenizer("bigram2") is bigram2_tokens
