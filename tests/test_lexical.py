"""The persistent BM25 index and the tokenisers it is built with."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.store.bm25s import Bm25sLexicalIndex
from rag.text.script import fold_script
from rag.text.tokenize import bigram_tokens, get_tokenizer, jieba_tokens

DOCS = {10: "质量工作座谈会在北京召开", 20: "安全是底线", 30: "北京的天气"}


def build() -> Bm25sLexicalIndex:
    return Bm25sLexicalIndex.build(list(DOCS), [bigram_tokens(t) for t in DOCS.values()])


def test_bigrams_of_cjk_runs_and_whole_latin_words() -> None:
    assert bigram_tokens(fold_script("質量 WTO 2012")) == ["质量", "wto", "2012"]
    assert bigram_tokens("召开会") == ["召开", "开会"]


def test_jieba_words_skip_punctuation() -> None:
    assert "北京" in jieba_tokens("在北京召开。")
    assert "。" not in jieba_tokens("在北京召开。")


def test_unknown_tokenizer_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="bigram"):
        get_tokenizer("whitespace")


def test_search_ranks_by_bm25_and_returns_passage_ids() -> None:
    hits = build().search(bigram_tokens("北京召开"), 5)
    assert [pid for pid, _ in hits] == [10, 30]
    assert hits[0][1] > hits[1][1] > 0


def test_terms_the_corpus_never_saw_find_nothing() -> None:
    assert build().search(bigram_tokens("迪士尼"), 5) == []


def test_rare_terms_weigh_more_and_unseen_terms_most() -> None:
    idf = build().idf(["北京", "底线", "迪士"])
    assert idf["北京"] < idf["底线"] <= idf["迪士"]


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    index = build()
    index.save(tmp_path / "lexical")
    index.save(tmp_path / "lexical")  # overwriting an existing index is atomic and fine
    loaded = Bm25sLexicalIndex.load(tmp_path / "lexical")
    assert loaded.search(bigram_tokens("底线"), 3) == index.search(bigram_tokens("底线"), 3)


def test_an_empty_index_answers_nothing(tmp_path: Path) -> None:
    empty = Bm25sLexicalIndex.build([], [])
    empty.save(tmp_path / "empty")
    assert Bm25sLexicalIndex.load(tmp_path / "empty").search(["质量"], 3) == []
