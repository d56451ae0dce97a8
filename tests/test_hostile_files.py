"""A folder of hostile files beside good ones: each bad one is reported with its reason or
passed over with a note, the odd-but-readable ones are handled, and every good file is
still ingested, leaving a sound index."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import pytest

from bench.hostile import Expected, build_hostile_corpus
from rag.index.check import check_index
from rag.pipeline import IngestReport, Pipeline, Skipped, open_pipeline
from rag.settings import Settings
from tests.fakes import HashEmbedder

Hostile = tuple[Path, dict[str, Expected]]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Hostile:
    folder = tmp_path_factory.mktemp("hostile") / "docs"
    return folder, build_hostile_corpus(folder, one_line_mb=0.5)


@pytest.fixture(scope="module")
def fake_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    settings = Settings(index_dir=tmp_path_factory.mktemp("index"), dense_floor=0.0)
    return open_pipeline(settings, HashEmbedder())


@pytest.fixture(scope="module")
def report(fake_pipeline: Pipeline, hostile: Hostile) -> IngestReport:
    return fake_pipeline.ingest([hostile[0]])


def reasons(entries: list[Skipped], root: Path) -> dict[str, str]:
    return {Path(e.path).relative_to(root).as_posix(): e.reason for e in entries}


def expected(hostile: Hostile, outcome: str) -> dict[str, str]:
    return {name: want.reason for name, want in hostile[1].items() if want.outcome == outcome}


def test_every_unreadable_file_is_skipped_with_its_reason(
    report: IngestReport, hostile: Hostile
) -> None:
    skipped = reasons(report.skipped, hostile[0])
    want = expected(hostile, "skipped")
    assert skipped.keys() == want.keys()
    for name, reason in want.items():
        assert reason in skipped[name], f"{name}: {skipped[name]!r}"


def test_unsupported_types_and_symlink_loops_are_passed_over_with_a_note(
    report: IngestReport, hostile: Hostile
) -> None:
    ignored = reasons(report.ignored, hostile[0])
    want = expected(hostile, "ignored")
    assert ignored.keys() == want.keys()
    for name, reason in want.items():
        assert reason in ignored[name]


def test_good_and_odd_but_readable_files_are_ingested(
    report: IngestReport, fake_pipeline: Pipeline, hostile: Hostile
) -> None:
    documents = {row.file: row for row in fake_pipeline.documents()}
    assert documents.keys() == expected(hostile, "ingested").keys()
    assert documents["mixed.txt"].encoding == "utf-8+gb18030"
    assert documents["good-big5.txt"].encoding.startswith(("big5", "cp950"))
    assert documents["one-line.txt"].passages >= 1  # millions of characters, one line
    assert check_index(fake_pipeline.directory).ok


def test_a_file_mixing_utf8_and_gbk_lines_reads_both_halves(
    report: IngestReport, fake_pipeline: Pipeline
) -> None:
    found = fake_pipeline.search("GBK编码的中文内容", 3).passages
    assert "第二段是GBK编码的中文内容。" in found[0].passage.text
    found = fake_pipeline.search("UTF-8编码的中文内容", 3).passages
    assert "第一段是UTF-8编码的中文内容。" in found[0].passage.text


def test_text_under_deeply_nested_html_is_found(
    report: IngestReport, fake_pipeline: Pipeline
) -> None:
    found = fake_pipeline.search("深层嵌套的正文", 1).passages
    assert found[0].passage.sources[0].file == "deep.html"


def test_an_over_long_character_reference_is_read_as_a_replacement_character(
    report: IngestReport, fake_pipeline: Pipeline
) -> None:
    # `&#999...;` with thousands of digits made html.unescape raise ValueError (Python's
    # limit on int digits), which escaped the loader and stopped the whole ingest.
    found = fake_pipeline.search("超长字符引用正文", 1).passages
    assert found[0].passage.sources[0].file == "long-reference.html"
    assert "编号\ufffd之后的超长字符引用正文。" in found[0].passage.text


def test_a_reader_failing_unexpectedly_costs_its_file_not_the_ingest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Loaders turn what they foresee into LoadError; anything else a parsing library raises
    # on a crafted file escaped prepare_file and stopped the ingest of every other file.
    from rag.loaders.html import HtmlLoader

    def fail(*args: object) -> NoReturn:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(HtmlLoader, "extract", fail)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.html").write_text("<p>读不了的网页。</p>", encoding="utf-8")
    (folder / "b.txt").write_text("湟鱼每年六月洄游。\n", encoding="utf-8")
    settings = Settings(index_dir=tmp_path / "index", dense_floor=0.0)
    with open_pipeline(settings, HashEmbedder()) as pipeline:
        report = pipeline.ingest([folder])
        assert [row.file for row in pipeline.documents()] == ["b.txt"]
    assert [(Path(s.path).name, s.reason) for s in report.skipped] == [
        (
            "a.html",
            "the html reader failed on this file "
            "(RecursionError: maximum recursion depth exceeded)",
        )
    ]


def test_a_second_file_of_the_same_name_is_skipped_not_put_over_the_first(
    tmp_path: Path,
) -> None:
    # `rag ingest a/tea.txt b/tea.txt`: both are named tea.txt, and the second used to
    # replace the first without a word (files read 2, one document, the first one's text gone).
    first, second = tmp_path / "a" / "tea.txt", tmp_path / "b" / "tea.txt"
    for path, text in ((first, "龙井茶产量增长了百分之十二。\n"), (second, "湟鱼每年六月洄游。\n")):
        path.parent.mkdir()
        path.write_text(text, encoding="utf-8")
    settings = Settings(index_dir=tmp_path / "index", dense_floor=0.0)
    with open_pipeline(settings, HashEmbedder()) as pipeline:
        report = pipeline.ingest([first, second, first])  # the same file twice: read once
        assert [row.path for row in pipeline.documents()] == [str(first)]
        assert "龙井茶" in pipeline.search("龙井茶产量", 1).passages[0].passage.text
    assert [(s.path, s.reason.split(" (")[0]) for s in report.skipped] == [
        (str(second), "another file of this ingest is also named tea.txt")
    ]
    assert str(first) in report.skipped[0].reason
    assert (report.files, report.paragraphs, report.unchanged) == (1, 1, 0)
    assert [(i.path, i.reason) for i in report.ignored] == [
        (str(first), "named twice in this ingest: read once")
    ]
