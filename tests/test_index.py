"""The index directory: ingest, deduplicate, re-ingest, replace, remove, recover."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from embeddings.base import Kind, Vectors
from rag.index.check import check_index
from rag.index.config import IndexMismatchError
from rag.pipeline import Pipeline, open_pipeline
from rag.settings import Settings
from tests.fakes import HashEmbedder

SEED_003 = "003_dd55f7dc9b6259bf.txt"


def folder(tmp_path: Path, files: dict[str, str]) -> Path:
    """A folder `docs` holding `files` (relative name -> text)."""
    docs = tmp_path / "docs"
    for name, text in files.items():
        (docs / name).parent.mkdir(parents=True, exist_ok=True)
        (docs / name).write_text(text, encoding="utf-8")
    return docs


def test_ingest_reports_files_paragraphs_passages_and_duplicates(
    fake_pipeline: Pipeline, demo_copy: Path
) -> None:
    report = fake_pipeline.ingest([demo_copy])
    assert report.files == 5
    assert report.skipped == []
    assert report.paragraphs > 80
    assert report.chunks == report.new_passages + report.duplicates_merged
    assert report.exact_duplicates >= 2  # seed 003 repeats its opening paragraphs
    assert len(fake_pipeline) == report.new_passages


def test_a_repeated_paragraph_is_one_passage_with_two_sources(
    fake_pipeline: Pipeline, demo_copy: Path
) -> None:
    fake_pipeline.ingest([demo_copy])
    retrieval = fake_pipeline.search("全国质检系统检测工作整顿视频会议召开", 10)
    texts = [p.passage.text for p in retrieval.passages]
    assert len(texts) == len(set(texts)), "the same passage twice in the top-k"
    merged = [p for p in retrieval.passages if len(p.passage.sources) > 1]
    assert merged, "seed 003's repeated opening should be one passage with both places"
    places = {(s.file, s.paragraph) for s in merged[0].passage.sources}
    assert {f for f, _ in places} == {SEED_003} and len(places) == 2


def test_a_citation_of_a_merged_passage_names_every_place_that_holds_it(
    fake_pipeline: Pipeline, tmp_path: Path
) -> None:
    docs = folder(
        tmp_path, {"a.txt": "标题\n質檢總局局長是支樹平。\n", "b.txt": "质检总局局长是支树平。\n"}
    )
    fake_pipeline.ingest([docs])
    answer = fake_pipeline.ask("质检总局局长是谁？")
    [citation] = answer.citations
    assert (citation.file, citation.paragraph, citation.quote) == (
        "a.txt",
        2,
        "質檢總局局長是支樹平。",
    )
    assert citation.also_in == (("b.txt", 1),)


def test_reingesting_unchanged_files_embeds_nothing(
    fake_pipeline: Pipeline, fake_embedder: HashEmbedder, demo_copy: Path
) -> None:
    fake_pipeline.ingest([demo_copy])
    calls = fake_embedder.texts_embedded
    report = fake_pipeline.ingest([demo_copy])
    assert report.unchanged == 5
    assert fake_embedder.texts_embedded == calls


def test_a_changed_file_replaces_its_passages(fake_pipeline: Pipeline, tmp_path: Path) -> None:
    doc = tmp_path / "docs" / "a.txt"
    doc.parent.mkdir()
    doc.write_text("质量是基础。\n安全是底线。\n", encoding="utf-8")
    fake_pipeline.ingest([doc.parent])
    doc.write_text("质量是基础。\n服务是根本。\n", encoding="utf-8")
    fake_pipeline.ingest([doc.parent])
    texts = {p.passage.text for p in fake_pipeline.search("底线 根本 基础", 10).passages}
    assert texts == {"质量是基础。", "服务是根本。"}
    assert fake_pipeline.counts()["passages"] == 2


def test_an_edited_file_reembeds_only_its_changed_passages(
    fake_pipeline: Pipeline, fake_embedder: HashEmbedder, tmp_path: Path
) -> None:
    doc = tmp_path / "docs" / "a.txt"
    doc.parent.mkdir()
    lines = ["质量是基础。", "安全是底线。", "服务是根本。"]
    doc.write_text("\n".join(lines), encoding="utf-8")
    fake_pipeline.ingest([doc.parent])
    embedded = fake_embedder.texts_embedded
    doc.write_text("\n".join([*lines[:2], "创新是动力。"]), encoding="utf-8")
    fake_pipeline.ingest([doc.parent])
    assert fake_embedder.texts_embedded == embedded + 1
    hits = fake_pipeline.search("安全是底线。", 1).passages
    assert hits[0].passage.text == "安全是底线。"
    assert hits[0].dense == 1.0  # the reused vector is the right one


def test_removing_a_file_drops_its_vectors_postings_and_passages(
    fake_pipeline: Pipeline, demo_copy: Path
) -> None:
    fake_pipeline.ingest([demo_copy])
    before = len(fake_pipeline)
    assert fake_pipeline.remove(SEED_003)
    assert not fake_pipeline.remove(SEED_003)
    assert len(fake_pipeline) < before
    assert fake_pipeline.counts()["passages"] == len(fake_pipeline)
    hits = fake_pipeline.search("检测工作整顿视频会议", 10).passages
    assert all(s.file != SEED_003 for p in hits for s in p.passage.sources)
    assert SEED_003 not in {d.file for d in fake_pipeline.documents()}


def test_removing_one_copy_keeps_a_passage_another_file_holds(
    fake_pipeline: Pipeline, tmp_path: Path
) -> None:
    docs = folder(
        tmp_path, {"a.txt": "質量是基礎,安全是底線。\n", "b.txt": "质量是基础,安全是底线。\n"}
    )
    fake_pipeline.ingest([docs])
    [passage] = fake_pipeline.search("质量", 5).passages
    assert [s.file for s in passage.passage.sources] == ["a.txt", "b.txt"]
    fake_pipeline.remove("a.txt")
    [passage] = fake_pipeline.search("质量", 5).passages
    assert [s.file for s in passage.passage.sources] == ["b.txt"]
    assert passage.passage.text == "质量是基础,安全是底线。"  # now shown as b.txt has it


def test_reopening_serves_the_same_index(
    fake_settings: Settings, fake_embedder: HashEmbedder, demo_copy: Path
) -> None:
    first = open_pipeline(fake_settings, fake_embedder)
    first.ingest([demo_copy])
    expected = first.search("质量提升", 5).passages
    first.close()
    second = open_pipeline(fake_settings, fake_embedder)
    assert second.search("质量提升", 5).passages == expected


def test_stale_or_missing_caches_are_rebuilt_from_the_store(
    fake_settings: Settings, fake_embedder: HashEmbedder, demo_copy: Path
) -> None:
    first = open_pipeline(fake_settings, fake_embedder)
    first.ingest([demo_copy])
    expected = first.search("质量提升", 5).passages
    first.close()
    # As if the process died after committing the store but before writing its caches.
    (fake_settings.index_dir / "caches.json").unlink()
    shutil.rmtree(fake_settings.index_dir / "caches")
    embedded = fake_embedder.texts_embedded
    second = open_pipeline(fake_settings, fake_embedder)
    assert second.search("质量提升", 5).passages == expected
    assert (
        fake_embedder.texts_embedded == embedded + 1
    )  # only the query; vectors come from the store


def test_opening_with_another_embedder_or_tokenizer_is_a_clear_error(
    fake_settings: Settings, fake_embedder: HashEmbedder, demo_copy: Path
) -> None:
    open_pipeline(fake_settings, fake_embedder).close()
    other = fake_settings.model_copy(update={"tokenizer": "jieba"})
    with pytest.raises(
        IndexMismatchError, match="tokenizer: index has bigram2, settings ask jieba"
    ):
        open_pipeline(other, fake_embedder)


def test_pruning_removes_the_documents_whose_files_are_gone_and_keeps_the_unreadable(
    fake_pipeline: Pipeline, tmp_path: Path
) -> None:
    texts = {"apple.txt": "苹果是红色的水果。", "banana.txt": "香蕉是黄色的水果。"}
    docs = folder(tmp_path, texts | {"cherry.txt": "樱桃是小小的水果。"})
    fake_pipeline.ingest([docs])
    (docs / "banana.txt").unlink()  # deleted since
    (docs / "cherry.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00" * 10)  # now unreadable

    kept = fake_pipeline.ingest([docs])  # without --prune, a deleted file stays
    assert kept.removed == [] and fake_pipeline.document("banana.txt") is not None
    report = fake_pipeline.ingest([docs], prune=True)

    assert [(r.path, r.reason) for r in report.removed] == [
        ("banana.txt", "not among the files ingested")
    ]
    assert sorted(d.file for d in fake_pipeline.documents()) == ["apple.txt", "cherry.txt"]
    found = {s.file for p in fake_pipeline.search("香蕉", 5).passages for s in p.passage.sources}
    assert "banana.txt" not in found


def test_pruning_keeps_the_documents_of_a_folder_that_could_not_be_read(
    fake_pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An unreadable (or unmounted) subfolder's files were "not among the files ingested":
    # pruning removed every document in it.
    docs = folder(
        tmp_path,
        {
            "apple.txt": "苹果是红色的水果。",
            "sub/banana.txt": "香蕉是黄色的水果。",
            "gone.txt": "樱桃是小小的水果。",
        },
    )
    fake_pipeline.ingest([docs])
    (docs / "gone.txt").unlink()
    listing = os.scandir

    def denied(path: Any) -> Any:  # os.scandir, also given descriptors (shutil.rmtree)
        if isinstance(path, str | os.PathLike) and Path(path) == docs / "sub":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return listing(path)

    monkeypatch.setattr("rag.loaders.walk.os.scandir", denied)
    report = fake_pipeline.ingest([docs], prune=True)

    assert [(r.path, r.reason) for r in report.removed] == [
        ("gone.txt", "not among the files ingested")
    ]
    assert [i.reason for i in report.ignored] == ["cannot read folder (Permission denied)"]
    assert sorted(d.file for d in fake_pipeline.documents()) == ["apple.txt", "sub/banana.txt"]


@pytest.mark.parametrize(
    ("emptied", "reason"),
    [(b"", "empty file"), (b"  \n\t\n", "only white space"), (b"<p>  </p>", "no text left")],
)
def test_a_file_emptied_since_indexing_is_removed_and_reported(
    fake_pipeline: Pipeline, tmp_path: Path, emptied: bytes, reason: str
) -> None:
    name = "notice.html" if emptied.startswith(b"<") else "notice.txt"
    docs = folder(tmp_path, {name: "香蕉是黄色的水果。", "apple.txt": "苹果是红色的水果。"})
    fake_pipeline.ingest([docs])
    (docs / name).write_bytes(emptied)

    report = fake_pipeline.ingest([docs])

    assert [r.path for r in report.removed] == [name] and report.skipped == []
    assert reason in report.removed[0].reason and "removed" in report.removed[0].reason
    assert [d.file for d in fake_pipeline.documents()] == ["apple.txt"]
    found = {s.file for p in fake_pipeline.search("香蕉", 5).passages for s in p.passage.sources}
    assert found == {"apple.txt"}


def test_an_empty_file_never_indexed_is_only_skipped(
    fake_pipeline: Pipeline, tmp_path: Path
) -> None:
    (tmp_path / "blank.txt").write_bytes(b"")
    report = fake_pipeline.ingest([tmp_path / "blank.txt"])
    assert report.removed == [] and [s.reason for s in report.skipped] == ["empty file"]


def test_pruning_after_a_run_that_found_no_file_is_refused_and_removes_nothing(
    fake_pipeline: Pipeline, demo_copy: Path, tmp_path: Path
) -> None:
    fake_pipeline.ingest([demo_copy])
    before = fake_pipeline.counts()
    (tmp_path / "unmounted").mkdir()
    with pytest.raises(ValueError, match="would remove every document"):
        fake_pipeline.ingest([tmp_path / "unmounted"], prune=True)
    assert fake_pipeline.counts() == before


def test_a_bad_file_is_reported_and_the_rest_ingested(
    fake_pipeline: Pipeline, demo_copy: Path
) -> None:
    (demo_copy / "broken.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10)
    report = fake_pipeline.ingest([demo_copy])
    assert report.files == 5
    assert [Path(s.path).name for s in report.skipped] == ["broken.txt"]
    assert "binary" in report.skipped[0].reason


def test_a_batch_that_fails_after_others_committed_leaves_them_searchable_and_published(
    fake_settings: Settings, tmp_path: Path
) -> None:
    class FailsOnce(HashEmbedder):
        """Embeds the first batch of passages, fails on the second, then works again."""

        def embed_batch(self, texts: Sequence[str], kind: Kind) -> Vectors:
            if kind == "passage" and self.calls == 1:
                self.calls += 1
                raise RuntimeError("the embedder ran out of memory")
            return super().embed_batch(texts, kind)

    # 16 passages each: the first two files fill the first batch.
    lines = {
        n: [f"第{n}号文件的第{line}段说的是另外一件事情。" for line in range(16)] for n in range(3)
    }
    docs = folder(tmp_path, {f"{n}.txt": "\n".join(text) for n, text in lines.items()})
    pipeline = open_pipeline(fake_settings, FailsOnce())
    with pytest.raises(RuntimeError, match="out of memory"):
        pipeline.ingest([docs])
    assert [d.file for d in pipeline.documents()] == ["0.txt", "1.txt"]  # the first batch
    committed = pipeline.counts()["passages"]
    published = check_index(fake_settings.index_dir)  # ... and published
    assert published.ok and not published.stale and len(pipeline) == committed

    (tmp_path / "later.txt").write_text("后来又加了一个文件。", encoding="utf-8")
    pipeline.ingest([tmp_path / "later.txt"])  # the next write in the same process

    report = check_index(fake_settings.index_dir)
    assert report.ok, report.problems
    assert report.vectors == report.passages == committed + 1
    [hit] = pipeline.search("第1号文件的第7段说的是另外一件事情。", 1).passages
    assert hit.dense == 1.0  # found by its vector too
    pipeline.close()


def test_lines_of_different_punctuation_are_not_one_passage(
    fake_pipeline: Pipeline, tmp_path: Path
) -> None:
    # Punctuation-only lines normalised to "" alike: every separator line of the corpus
    # became one passage, citing `……` and `★★★` as places that hold `！！！`.
    docs = folder(
        tmp_path, {"a.txt": "苹果是红色的水果。\n！！！\n★★★\n", "b.txt": "樱桃很小。\n……\n★★★\n"}
    )

    report = fake_pipeline.ingest([docs])

    assert (report.new_passages, report.exact_duplicates, report.near_duplicates) == (5, 1, 0)
    held = {
        hit.passage.text: [(s.file, s.paragraph, s.text) for s in hit.passage.sources]
        for hit in fake_pipeline.search("！！！ …… ★★★", 10).passages
    }
    assert held["！！！"] == [("a.txt", 2, "！！！")]
    assert held["……"] == [("b.txt", 2, "……")]
    assert held["★★★"] == [("a.txt", 3, "★★★"), ("b.txt", 3, "★★★")]  # true copies still merge


def test_an_index_whose_passages_hold_no_word_opens_answers_and_is_sound(
    fake_settings: Settings, fake_embedder: HashEmbedder, tmp_path: Path
) -> None:
    # BM25 could not be built over passages without a single token: the ingest failed
    # after its commit, and so did every later open of the index (rebuilding the caches).
    (tmp_path / "stars.txt").write_text("★★★\n……\n", encoding="utf-8")
    pipeline = open_pipeline(fake_settings, fake_embedder)
    assert pipeline.ingest([tmp_path / "stars.txt"]).new_passages == 2
    pipeline.close()
    report = check_index(fake_settings.index_dir)
    assert report.ok and not report.stale and report.lexical == 2

    reopened = open_pipeline(fake_settings, fake_embedder)
    assert reopened.search("★★★", 1).passages[0].passage.text == "★★★"
    (tmp_path / "more.txt").write_text("苹果是红色的水果。", encoding="utf-8")
    reopened.ingest([tmp_path / "more.txt"])
    assert reopened.remove("more.txt")  # back to no word at all
    reopened.close()
    assert check_index(fake_settings.index_dir).ok


def test_removals_done_before_one_fails_are_published(
    fake_pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rag.index.writer import EmbedPassages, IndexWriter

    docs = folder(tmp_path, {"apple.txt": "苹果是红色的水果。", "banana.txt": "香蕉是黄色的水果。"})
    fake_pipeline.ingest([docs])
    remove = IndexWriter.remove_document

    def fails_on_banana(writer: IndexWriter, file: str, embed: EmbedPassages) -> bool:
        if file == "banana.txt":
            raise OSError("disk I/O error")
        return remove(writer, file, embed)

    monkeypatch.setattr(IndexWriter, "remove_document", fails_on_banana)
    with pytest.raises(OSError, match="disk I/O"):
        fake_pipeline._index.remove_all(["apple.txt", "banana.txt"], fake_pipeline._embed_passages)

    found = {s.file for p in fake_pipeline.search("苹果", 5).passages for s in p.passage.sources}
    assert found == {"banana.txt"}  # apple's removal is searched as it is stored
    assert not check_index(fake_pipeline.directory).stale
