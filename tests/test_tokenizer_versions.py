"""Tokenizer versions: an index keeps the tokenizer it was built with; a new one gets bigram2.

An index records its tokenizer's name, and its lexical index (local BM25 caches, Milvus's
`lexical` field) holds that tokenizer's tokens. With RAG_TOKENIZER unset, an index built with
`bigram` (every index before `bigram2`) opens as before and tokenises questions with `bigram`,
while a new index or collection is built with `bigram2`, which also reads Japanese, Korean,
〇 dates and letters with diacritics. `rag reindex --tokenizer bigram2` moves an old index
index over without reading a file again.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from embeddings.base import Embedder
from rag.collections import Collections
from rag.index.check import check_index
from rag.index.config import IndexMismatchError
from rag.index.index import read_config
from rag.pipeline import Pipeline, index_config, open_pipeline, reindex, retokenize
from rag.settings import Settings
from rag.store.location import location_from_settings
from rag.text.script import fold_script
from rag.text.tokenize import TokenizerName
from tests.conftest import DEMO, run_rag
from tests.fakes import HashEmbedder, OtherHashEmbedder
from tests.milvus import MILVUS_MISSING, killed_between_swap_renames

needs_milvus = pytest.mark.skipif(MILVUS_MISSING is not None, reason=str(MILVUS_MISSING))

# Each question's passage, and a passage that shares its CJK words but not its own script's.
CORPUS = {
    "sony.txt": "ソニーグループの本社は東京都港区にある。",
    "toyota.txt": "トヨタ自動車の本社は愛知県豊田市にある。",
    "seoul.txt": "서울특별시청은 서울시 중구 세종대로에 있다.",
    "busan.txt": "부산광역시청은 부산시 연제구에 있다.",
    "expo-2010.txt": "二〇一〇年世博会在上海举行，参观人数超过七千万人次。",
    "expo-2020.txt": "二〇二〇年世博会在迪拜举行，因疫情推迟到二〇二一年开幕。",
    "munich.txt": "Müller wohnt in München, nicht in Köln.",
    "koln.txt": "Koln and Munchen are spelt without their umlauts here.",
}
QUESTIONS = [
    ("ソニーの本社はどこ？", "sony.txt"),
    ("서울시청은 어디에 있나요?", "seoul.txt"),
    ("二〇一〇年世博会在哪里举行？", "expo-2010.txt"),
    ("Wo wohnt Müller?", "munich.txt"),
]
CHINESE_QUESTION = "质检总局局长是谁？"  # of the demo corpus


def corpus(tmp_path: Path, with_demo: bool = False) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    for name, text in CORPUS.items():
        (docs / name).write_text(text + "\n", encoding="utf-8")
    if with_demo:
        for path in sorted(DEMO.iterdir())[:3]:
            (docs / path.name).write_bytes(path.read_bytes())
    return docs


def lexical_by_file(pipeline: Pipeline, question: str) -> dict[str, float]:
    """Each retrieved file's lexical score (BM25 over the question's best, so 1.0 is the top)."""
    return {
        p.passage.sources[0].file: p.lexical or 0.0 for p in pipeline.search(question, 10).passages
    }


def built_with(settings: Settings, embedder: Embedder, docs: Path) -> Settings:
    with open_pipeline(settings, embedder) as pipeline:
        pipeline.ingest([docs])
    return settings


# -- an index built with bigram ------------------------------------------------------------------


def test_an_index_built_with_bigram_opens_with_the_default_settings_and_answers_as_before(
    tmp_path: Path,
) -> None:
    # Built as every version before bigram2 built it: RAG_TOKENIZER's default was "bigram",
    # and that name is what its metadata records.
    old = Settings(index_dir=tmp_path / "index", dense_floor=0.0, tokenizer="bigram")
    built_with(old, HashEmbedder(), corpus(tmp_path, with_demo=True))
    with open_pipeline(old, HashEmbedder()) as pipeline:
        before = pipeline.ask(CHINESE_QUESTION)

    default = old.model_copy(update={"tokenizer": None})  # RAG_TOKENIZER unset
    with open_pipeline(default, HashEmbedder()) as pipeline:
        assert pipeline._index.config.tokenizer == "bigram"
        assert pipeline._index.reader.tokenize("서울시") == []  # questions split with bigram
        after = pipeline.ask(CHINESE_QUESTION)
        assert (after.answer, after.citations) == (before.answer, before.citations)
        assert after.citations
        # Written to with the default settings, it stays a bigram index.
        (tmp_path / "docs" / "new.txt").write_text("二〇一二年新馆落成。\n", encoding="utf-8")
        assert pipeline.ingest([tmp_path / "docs"]).new_passages == 1
    assert read_config(location_from_settings(default)).tokenizer == "bigram"
    assert check_index(location_from_settings(default)).ok


def test_asking_explicitly_for_another_tokenizer_is_still_a_clear_error(tmp_path: Path) -> None:
    old = Settings(index_dir=tmp_path / "index", dense_floor=0.0, tokenizer="bigram")
    built_with(old, HashEmbedder(), corpus(tmp_path))

    newest = old.model_copy(update={"tokenizer": "bigram2"})
    with pytest.raises(IndexMismatchError) as refused:
        open_pipeline(newest, HashEmbedder())
    message = str(refused.value)
    assert "tokenizer: index has bigram, settings ask bigram2" in message
    assert "unset RAG_TOKENIZER" in message and "rag reindex --tokenizer bigram2" in message


def test_re_embedding_an_index_built_with_bigram_keeps_bigram(tmp_path: Path) -> None:
    old = Settings(index_dir=tmp_path / "index", dense_floor=0.0, tokenizer="bigram")
    built_with(old, HashEmbedder(), corpus(tmp_path))

    default = old.model_copy(update={"tokenizer": None})
    assert reindex(default, OtherHashEmbedder()).new_embedder == OtherHashEmbedder.name
    config = read_config(location_from_settings(default))
    assert (config.embedder, config.tokenizer) == (OtherHashEmbedder.name, "bigram")
    with pytest.raises(IndexMismatchError, match="rag reindex --tokenizer bigram2"):
        reindex(old.model_copy(update={"tokenizer": "bigram2"}), HashEmbedder())


# -- a new index ----------------------------------------------------------------------------------


def test_a_new_index_or_collection_records_bigram2(tmp_path: Path) -> None:
    default = Settings(index_dir=tmp_path / "index", dense_floor=0.0)
    with open_pipeline(default, HashEmbedder()) as pipeline:
        assert pipeline._index.config.tokenizer == "bigram2"
    assert read_config(location_from_settings(default)).tokenizer == "bigram2"

    collections = Collections.of(default)
    location = collections.create("fresh", index_config(default, HashEmbedder()))
    assert read_config(location_from_settings(default, location)).tokenizer == "bigram2"
    asked = default.model_copy(update={"tokenizer": "bigram"})  # still there to ask for
    collections.create("older", index_config(asked, HashEmbedder()))
    config = collections.config("older")
    assert config is not None and config.tokenizer == "bigram"
    opened = collections.settings_for("older", default)
    assert opened.tokenizer == "bigram"


@pytest.fixture(scope="module")
def real_indexes(
    e5: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Pipeline]]:
    """The corpus with the bundled model in a new index (bigram2), and in a bigram one."""
    tmp = tmp_path_factory.mktemp("scripts")
    docs = corpus(tmp)
    pipelines: dict[str, Pipeline] = {}
    versions: tuple[tuple[str, TokenizerName | None], ...] = (
        ("bigram2", None),
        ("bigram", "bigram"),
    )
    for name, asked in versions:
        pipelines[name] = open_pipeline(Settings(index_dir=tmp / name, tokenizer=asked), e5)
        pipelines[name].ingest([docs])
    yield pipelines
    for pipeline in pipelines.values():
        pipeline.close()


@pytest.mark.parametrize(("question", "gold"), QUESTIONS)
def test_a_question_in_another_script_finds_its_passage_lexically(
    real_indexes: dict[str, Pipeline], question: str, gold: str
) -> None:
    new = real_indexes["bigram2"]
    assert new._index.config.tokenizer == "bigram2"
    scores = lexical_by_file(new, question)
    assert scores[gold] == 1.0  # the best BM25 match of the question
    assert all(score < 1.0 for file, score in scores.items() if file != gold)
    assert new.search(question, 1).passages[0].passage.sources[0].file == gold


def test_with_bigram_those_questions_were_matched_by_their_hanzi_alone(
    real_indexes: dict[str, Pipeline],
) -> None:
    old = real_indexes["bigram"]
    # Korean: no token at all; Japanese: only 本社, which Toyota's passage holds too (BM25
    # then ranks the two by their length alone).
    assert not any(lexical_by_file(old, "서울시청은 어디에 있나요?").values())
    assert old._index.reader.tokenize(fold_script("ソニーの本社はどこ？")) == ["本社"]
    japanese = lexical_by_file(old, "ソニーの本社はどこ？")
    assert japanese["sony.txt"] > 0 and japanese["toyota.txt"] > 0


# -- moving an old index over: rag reindex --tokenizer -------------------------------------------


def test_rag_reindex_tokenizer_re_tokenizes_an_old_index_without_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = Settings(index_dir=tmp_path / "index", dense_floor=0.0, tokenizer="bigram")
    docs = corpus(tmp_path)
    built_with(old, HashEmbedder(), docs)
    for path in docs.iterdir():
        path.unlink()  # re-tokenizing reads the stored text, not the files
    default = old.model_copy(update={"tokenizer": None})
    running = open_pipeline(default, HashEmbedder())  # a service opened before
    ids, _ = running.passage_texts()
    vectors = running._index.reader.caches.vectors.vectors(ids)
    before = lexical_by_file(running, "서울시청은 어디에 있나요?")
    assert not any(before.values())

    code = run_rag(monkeypatch, "reindex", "--tokenizer", "bigram2", "--index", str(old.index_dir))

    assert code == 0
    assert read_config(location_from_settings(default)).tokenizer == "bigram2"
    with open_pipeline(default, HashEmbedder()) as pipeline:
        assert pipeline._index.config.tokenizer == "bigram2"
        assert lexical_by_file(pipeline, "서울시청은 어디에 있나요?")["seoul.txt"] == 1.0
        reader = pipeline._index.reader
        np.testing.assert_array_equal(reader.caches.vectors.vectors(ids), vectors)  # kept
    assert check_index(location_from_settings(default)).ok
    # The process opened before splits questions with bigram: it keeps its last snapshot
    # (and asks to be restarted) rather than search bigram2 tokens with bigram ones...
    assert lexical_by_file(running, "서울시청은 어디에 있나요?") == before
    # ...and refuses to write, which would publish a lexical index of bigram tokens.
    (docs / "new.txt").write_text("二〇一二年新馆落成。\n", encoding="utf-8")
    with pytest.raises(IndexMismatchError, match="re-tokenized with bigram2"):
        running.ingest([docs])
    running.close()
    # Run again: nothing to do.
    assert retokenize(default, "bigram2").old_tokenizer == "bigram2"


@needs_milvus
def test_milvus_indexes_keep_their_tokenizer_and_new_ones_get_bigram2(tmp_path: Path) -> None:
    docs = corpus(tmp_path)
    default = Settings(index_dir=tmp_path / "new", backend="milvus", dense_floor=0.0)
    old = Settings(
        index_dir=tmp_path / "old", backend="milvus", dense_floor=0.0, tokenizer="bigram"
    )
    for settings in (default, old):
        built_with(settings, HashEmbedder(), docs)

    with open_pipeline(default, HashEmbedder()) as new:  # the passages' own tokens
        assert new._index.config.tokenizer == "bigram2"
        assert lexical_by_file(new, "서울시청은 어디에 있나요?")["seoul.txt"] == 1.0
    reopened = old.model_copy(update={"tokenizer": None})
    with open_pipeline(reopened, HashEmbedder()) as pipeline:
        assert pipeline._index.config.tokenizer == "bigram"
        assert not any(lexical_by_file(pipeline, "서울시청은 어디에 있나요?").values())
    for settings in (default, reopened):
        report = check_index(location_from_settings(settings))  # tokens as the config says
        assert report.ok, report.problems


def milvus_built_with_bigram(tmp_path: Path) -> Settings:
    """A Milvus index built with bigram, opened with the default settings (RAG_TOKENIZER unset)."""
    old = Settings(
        index_dir=tmp_path / "old", backend="milvus", dense_floor=0.0, tokenizer="bigram"
    )
    built_with(old, HashEmbedder(), corpus(tmp_path))
    return old.model_copy(update={"tokenizer": None})


def stored_vectors(settings: Settings) -> dict[int, bytes]:
    with open_pipeline(settings, HashEmbedder()) as pipeline:
        ids, _ = pipeline.passage_texts()
        matrix = pipeline._index.reader.caches.vectors.vectors(ids)
        return {pid: row.tobytes() for pid, row in zip(ids, matrix, strict=True)}


def assert_re_tokenized_with_bigram2(settings: Settings) -> None:
    with open_pipeline(settings, HashEmbedder()) as pipeline:
        assert pipeline._index.config.tokenizer == "bigram2"
        for question, gold in QUESTIONS:
            assert lexical_by_file(pipeline, question)[gold] == 1.0
    report = check_index(location_from_settings(settings))  # every passage's bigram2 tokens
    assert report.ok, report.problems


@needs_milvus
def test_rag_reindex_tokenizer_re_tokenizes_a_milvus_index_in_place(tmp_path: Path) -> None:
    reopened = milvus_built_with_bigram(tmp_path)
    vectors = stored_vectors(reopened)

    report = retokenize(reopened, "bigram2")

    assert (report.old_tokenizer, report.passages) == ("bigram", len(vectors))
    assert read_config(location_from_settings(reopened)).tokenizer == "bigram2"
    assert_re_tokenized_with_bigram2(reopened)
    assert stored_vectors(reopened) == vectors  # kept
    # Run again: nothing to do.
    assert retokenize(reopened, "bigram2").old_tokenizer == "bigram2"


@needs_milvus
def test_a_milvus_reindex_tokenizer_killed_before_its_swap_leaves_bigram_and_runs_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rag.store.milvus import MilvusStore

    reopened = milvus_built_with_bigram(tmp_path)
    # The process "dies" with the new copy filled, just before its point of no return.
    monkeypatch.setattr(MilvusStore, "_set_meta", lambda *_: sys.exit("killed"))
    with pytest.raises(SystemExit):
        retokenize(reopened, "bigram2")
    monkeypatch.undo()

    with open_pipeline(reopened, HashEmbedder()) as pipeline:  # the old tokens and name
        assert pipeline._index.config.tokenizer == "bigram"
        assert not any(lexical_by_file(pipeline, "서울시청은 어디에 있나요?").values())
    assert check_index(location_from_settings(reopened)).ok
    retokenize(reopened, "bigram2")
    assert_re_tokenized_with_bigram2(reopened)


@needs_milvus
def test_a_milvus_reindex_tokenizer_killed_in_its_swap_is_finished_by_running_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    reopened = milvus_built_with_bigram(tmp_path)
    with killed_between_swap_renames(monkeypatch):
        retokenize(reopened, "bigram2")

    assert retokenize(reopened, "bigram2").old_tokenizer == "bigram2"  # finished on opening
    assert_re_tokenized_with_bigram2(reopened)
