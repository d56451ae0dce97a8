"""Hard-wrapped text files are read a paragraph at a time, and other files a line at a time."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from embeddings.base import Kind, Vectors
from eval.datasets import load_squad
from eval.studies.wrapped_text import score, wrap
from rag.ingest.document import load_document
from rag.loaders.text import text_blocks
from rag.pipeline import open_pipeline
from rag.settings import Settings
from tests.fakes import HashEmbedder

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
LIGHTHOUSE = (
    "鲸鱼湾灯塔位于半岛最南端的礁石上，是这一带海域最早建成的航标之一，"
    "由当时的海关出资修建，于一八九三年正式点亮，此后一百多年间从未熄灭过。"
    "灯塔高二十三米，塔身用本地花岗岩砌成，灯光在晴朗的夜晚可以照到二十海里以外。"
)
HARBOUR = (
    "港口的历史比灯塔更久远，早在明代就有渔船在湾内避风，清末开埠以后，"
    "往来的商船逐年增多，码头也从最初的两座木栈桥扩建为今天的十二个泊位，"
    "每年经过这里的货物超过三千万吨，其中大部分是煤炭和粮食。"
)
MARKET = (
    "镇上的鱼市每天清晨四点开市，渔民把夜里捕到的鱼虾直接从船上卸到摊位，"
    "买家多是附近城市的饭店和批发商，到了七点鱼市就散了，只剩下冲洗地面的水声。"
)
PARAGRAPHS = [LIGHTHOUSE, HARBOUR, MARKET]


def wrapped(columns: int = 70) -> str:
    """The paragraphs as an old editor saved them: wrapped at `columns`, indented."""
    return "\n".join(line for p in PARAGRAPHS for line in wrap(p, columns, "　　")) + "\n"


def test_a_hard_wrapped_file_is_read_a_paragraph_at_a_time(tmp_path: Path) -> None:
    text = wrapped()
    file = tmp_path / "灯塔.txt"
    file.write_text(text, encoding="utf-8")

    document = load_document(file, 1 << 20)

    assert [p.text.strip() for p in document.paragraphs] == PARAGRAPHS
    lines = text.splitlines()
    first = document.paragraphs[0]
    assert (first.line_start, first.line_end) == (1, 4)
    assert lines[0].startswith("　　鲸鱼湾") and lines[3] == "以外。"


def test_a_sentence_broken_by_the_wrap_is_answered_and_cited_whole(tmp_path: Path) -> None:
    """Read a line at a time, "于一八九三年正式点亮" stood in two paragraphs, cut in two."""
    folder = tmp_path / "docs"
    folder.mkdir()
    text = wrapped()
    (folder / "灯塔.txt").write_text(text, encoding="utf-8")
    settings = Settings(index_dir=tmp_path / "index", dense_floor=0.0)

    with open_pipeline(settings, HashEmbedder()) as pipeline:
        pipeline.ingest([folder])
        answer = pipeline.ask("鲸鱼湾灯塔是哪一年正式点亮的？")

    cited = answer.citations[0]
    assert "于一八九三年正式点亮" in cited.quote
    # The offsets still slice the file: the quote is its text with the wrapping removed.
    assert text[cited.char_start : cited.char_end].replace("\n", "") == cited.quote
    # And its lines are its own, not its paragraph's four.
    assert (cited.line_start, cited.line_end) == lines_of(text, cited.char_start, cited.char_end)
    assert (cited.line_start, cited.line_end) != (1, 4)


def lines_of(text: str, start: int, end: int) -> tuple[int, int]:
    """The 1-based lines of `text[start:end]`, counted in the text itself."""
    return text.count("\n", 0, start) + 1, text.count("\n", 0, end - 1) + 1


def test_every_citation_of_a_wrapped_file_names_the_lines_of_its_own_quote(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    text = wrapped(columns=40)  # narrow: each sentence runs over several lines
    (folder / "灯塔.txt").write_text(text, encoding="utf-8")
    settings = Settings(index_dir=tmp_path / "index", dense_floor=0.0, answer_sentences=3)
    questions = ["灯塔有多高？", "港口每年经过多少货物？", "鱼市几点散？", "码头有几个泊位？"]

    with open_pipeline(settings, HashEmbedder()) as pipeline:
        pipeline.ingest([folder])
        citations = [c for q in questions for c in pipeline.ask(q).citations]

    assert citations
    for cited in citations:
        where = lines_of(text, cited.char_start, cited.char_end)
        assert (cited.line_start, cited.line_end) == where, cited.quote


class CountingEmbedder(HashEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.embedded = 0

    def embed_batch(self, texts: Sequence[str], kind: Kind) -> Vectors:
        self.embedded += len(texts)
        return super().embed_batch(texts, kind)


def test_reread_gives_a_file_indexed_before_an_upgrade_its_new_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unchanged file is not read again, so a file indexed before wrapped lines were
    joined kept its paragraphs cut at every line; `reread` reads it again, embedding only
    the passages whose text changed."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "灯塔.txt").write_text(wrapped(), encoding="utf-8")
    (folder / "短文.txt").write_text("灯塔在半岛南端。\n港口在湾内。\n", encoding="utf-8")
    settings = Settings(index_dir=tmp_path / "index", dense_floor=0.0)
    embedder = CountingEmbedder()
    with open_pipeline(settings, embedder) as pipeline:
        with monkeypatch.context() as before_the_upgrade:  # every line read as a paragraph
            before_the_upgrade.setattr(
                "rag.loaders.text.runs_on", lambda lines: [False] * len(lines)
            )
            pipeline.ingest([folder])
        old = pipeline.document("灯塔.txt")

        again = pipeline.ingest([folder])
        assert again.unchanged == 2 and pipeline.document("灯塔.txt") == old

        embedded = embedder.embedded
        reread = pipeline.ingest([folder], reread=True)
        new = pipeline.document("灯塔.txt")

    fresh_settings = settings.model_copy(update={"index_dir": tmp_path / "fresh"})
    with open_pipeline(fresh_settings, HashEmbedder()) as fresh:
        fresh.ingest([folder])
        read_now = fresh.document("灯塔.txt")
    assert old is not None and new is not None and read_now is not None
    assert old.paragraphs > new.paragraphs == read_now.paragraphs  # lines joined, as fresh
    assert new.content_hash == old.content_hash
    assert reread.unchanged == 0 and reread.files == 2
    # 短文.txt reads as before: its passages keep their vectors; only 灯塔's new ones embed.
    assert reread.reused_vectors >= 2
    assert embedder.embedded - embedded == reread.new_passages - reread.reused_vectors


def test_a_file_written_a_paragraph_a_line_keeps_every_line_apart() -> None:
    text = "\n".join(PARAGRAPHS + PARAGRAPHS) + "\n"

    blocks = [b for b in text_blocks(text) if b.text.text]

    assert [b.text.text for b in blocks] == PARAGRAPHS + PARAGRAPHS
    assert all(b.line_start == b.line_end for b in blocks)


def test_a_fixed_width_table_keeps_its_rows_apart() -> None:
    rows = [f"{name:<20}{value:>20}{unit:>30}" for name, value, unit in _TABLE]

    blocks = text_blocks("\n".join(rows) + "\n")

    assert [b.text.text for b in blocks if b.text.text] == rows


_TABLE = [(f"item-{i}", str(i * 1000), "tonnes per year") for i in range(8)]


def test_short_equal_lines_such_as_verse_stay_apart() -> None:
    verse = ["床前明月光，疑是地上霜。", "举头望明月，低头思故乡。"] * 4

    blocks = text_blocks("\n".join(verse) + "\n")

    assert [b.text.text for b in blocks if b.text.text] == verse


@pytest.mark.skipif(not DATASETS.is_dir(), reason="../shared/datasets not found")
@pytest.mark.parametrize("columns", [64, 76])
def test_dataset_paragraphs_come_back_whole_and_lines_stay_lines(columns: int) -> None:
    """A slice of `python -m eval.studies.wrapped_text` (docs/benchmarks.md)."""
    from eval.datasets import Article

    contexts = [p for a in load_squad(DATASETS / "drcd_dev.json").articles for p in a.paragraphs]
    files = [Article(str(i), tuple(contexts[i : i + 5])) for i in range(0, 150, 5)]

    for write in ("indented", "blank-lines", "lines", "sentences"):
        result = score(files, write, columns)
        assert result["articles_exact"] == 1.0, (write, result)
