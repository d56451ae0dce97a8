"""`rag collections list|create|rm` and `--collection` on ingest, ask, search, docs, check, eval
(the real bundled model, as `rag` runs it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from rag.collections import Collections
from rag.pipeline import index_config
from rag.settings import Settings, get_settings
from rag.store.lock import WriteLock
from tests.conftest import DEMO, SEEDS_DEV
from tests.fakes import HashEmbedder

runner = CliRunner()
HANDBOOK = "员工手册.txt"
HANDBOOK_TEXT = "第一章 休假\n\n员工每年享有十五天带薪年假，须提前一周向部门经理申请。\n"
DEMO_FILE = "000_7045e455b641a377.txt"


def rag(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`default` holds one demo file; `regs`, made by ingesting into it, the handbook."""
    root = tmp_path_factory.mktemp("collections-cli")
    docs = root / "regs-docs"
    docs.mkdir()
    (docs / HANDBOOK).write_text(HANDBOOK_TEXT, encoding="utf-8")
    directory = root / "index"
    code, output = rag("ingest", DEMO / DEMO_FILE, "--index", directory)
    assert code == 0, output
    code, output = rag("ingest", docs, "--index", directory, "--collection", "regs")
    assert code == 0, output
    assert "created collection regs" in output
    return directory


def test_ingesting_into_a_new_collection_creates_it_beside_default(index: Path) -> None:
    code, output = rag("collections", "list", "--index", index, "--json")

    assert code == 0, output
    listed = json.loads(output)
    assert [c["name"] for c in listed] == ["default", "regs"]
    assert listed[0]["location"] == str(index)  # default is the index directory itself
    assert listed[1]["location"] == str(index / "collections" / "regs")
    # The default embedder's vector space: e5-small-int8 on a CPU with VNNI, else e5-small.
    assert listed[1]["embedder"] in ("e5-small", "e5-small-int8")


def test_ask_and_search_answer_from_the_collection_named(index: Path) -> None:
    code, output = rag(
        "ask", "员工每年享有多少天带薪年假？", "--index", index, "-c", "regs", "--json"
    )
    assert code == 0, output
    answer = json.loads(output)
    assert "十五天" in answer["answer"]
    assert {c["file"] for c in answer["citations"]} == {HANDBOOK}

    code, output = rag("search", "带薪年假", "--index", index, "--json")  # default
    assert code == 0, output
    files = {s["file"] for p in json.loads(output)["passages"] for s in p["sources"]}
    assert files == {DEMO_FILE}


def test_docs_and_check_take_the_collection(index: Path) -> None:
    code, output = rag("docs", "list", "--index", index, "--collection", "regs", "--json")
    assert code == 0, output
    assert [d["file"] for d in json.loads(output)] == [HANDBOOK]

    code, output = rag("check", "--index", index, "--collection", "regs", "--json")
    assert code == 0, output
    report = json.loads(output)
    assert report["ok"] and report["documents"] == 1


def test_a_collection_is_created_with_its_own_settings_and_removed(index: Path) -> None:
    code, output = rag(
        "collections",
        "create",
        "fine",
        "--index",
        index,
        "--chunk-size",
        "120",
        "--tokenizer",
        "jieba",
    )
    assert code == 0, output
    assert rag("collections", "create", "fine", "--index", index)[0] == 2  # exists

    listed = json.loads(rag("collections", "list", "--index", index, "--json")[1])
    fine = next(c for c in listed if c["name"] == "fine")
    assert (fine["chunk_size"], fine["tokenizer"]) == (120, "jieba")
    # Ingesting into it uses its recorded settings, whatever the process's are.
    code, output = rag("ingest", DEMO / DEMO_FILE, "--index", index, "-c", "fine")
    assert code == 0, output

    code, output = rag("collections", "rm", "fine", "--index", index, "--yes")
    assert code == 0, output
    assert not (index / "collections" / "fine").exists()
    names = [
        c["name"] for c in json.loads(rag("collections", "list", "--index", index, "--json")[1])
    ]
    assert names == ["default", "regs"]


def test_a_collection_removed_while_listing_is_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was a traceback (NoSuchCollection) when another process removed one meanwhile."""
    settings = Settings(index_dir=tmp_path / "index")
    Collections.of(settings).create("fleeting", index_config(settings, HashEmbedder()))
    names = Collections.names

    def listed_then_removed(self: Collections) -> list[str]:
        found = names(self)
        Collections.of(settings).remove("fleeting")  # by another process, meanwhile
        return found

    monkeypatch.setattr(Collections, "names", listed_then_removed)

    code, output = rag("collections", "list", "--index", settings.index_dir, "--json")

    assert code == 0, output
    assert [c["name"] for c in json.loads(output)] == ["default"]


def test_removing_a_collection_being_written_says_whom_it_waits_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It waited silently, up to RAG_LOCK_TIMEOUT (10 minutes by default)."""
    settings = Settings(index_dir=tmp_path / "index")
    location = Collections.of(settings).create("busy", index_config(settings, HashEmbedder()))
    monkeypatch.setenv("RAG_LOCK_TIMEOUT", "0.2")
    get_settings.cache_clear()
    try:
        with WriteLock(location, timeout=0)():  # another process ingesting into it
            code, output = rag("collections", "rm", "busy", "--index", settings.index_dir, "-y")
    finally:
        get_settings.cache_clear()

    assert code == 3, output
    assert "waiting: the index is being written by another process" in output
    assert Collections.of(settings).names() == ["default", "busy"]


@pytest.mark.parametrize("name", ["a/b", "..", "x" * 300, "Regs", "[/x]"])
def test_a_bad_name_is_refused_with_the_rule(index: Path, name: str) -> None:
    for args in (
        ("collections", "create", name),
        ("collections", "rm", name, "--yes"),
        ("ask", "问题", "--collection", name),
        ("docs", "list", "--collection", name),
        ("ingest", DEMO / DEMO_FILE, "--collection", name),
    ):
        code, output = rag(*args, "--index", index)
        assert code == 2, (args, output)
        assert "a-z, 0-9, '_' and '-'" in " ".join(output.split()), (args, output)
    assert not (index / "collections" / "a").exists()


def test_an_unknown_collection_is_an_error_not_created(index: Path) -> None:
    for args in (
        ("ask", "问题", "-c", "nope"),
        ("search", "问题", "-c", "nope"),
        ("docs", "list", "-c", "nope"),
        ("check", "-c", "nope"),
        ("collections", "rm", "nope", "--yes"),
    ):
        code, output = rag(*args, "--index", index)
        assert code == 2, (args, output)
        assert "no collection 'nope'" in output, (args, output)
    assert not (index / "collections" / "nope").exists()


def test_the_default_collection_cannot_be_removed(index: Path) -> None:
    code, output = rag("collections", "rm", "default", "--index", index, "--yes")

    assert code == 2
    assert "default collection cannot be removed" in " ".join(output.split())


@pytest.mark.skipif(not SEEDS_DEV.exists(), reason="../shared/qa not found")
def test_eval_builds_and_evaluates_the_collection_named(tmp_path: Path) -> None:
    index = tmp_path / "index"
    args = ("eval", SEEDS_DEV, "--docs", DEMO, "--index", index, "--limit", "2")

    code, output = rag(*args, "--collection", "kb", "--out", tmp_path / "r.json")

    assert code == 0, output
    assert json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))["run"]["questions"] == 2
    listed = json.loads(rag("docs", "list", "--index", index, "-c", "kb", "--json")[1])
    assert len(listed) == 5
    assert not (index / "store.sqlite").exists()  # default was left alone
    code, output = rag("eval", SEEDS_DEV, "--index", index, "--collection", "absent")
    assert code == 2 and "no collection 'absent'" in output


def test_a_created_collection_is_named_with_its_folder_as_it_is(tmp_path: Path) -> None:
    # Printed through rich markup: an index folder holding `[/x]` ended in a MarkupError.
    index = tmp_path / "[" / "x] index"

    code, output = rag("collections", "create", "kb", "--index", index)

    assert code == 0, output
    assert f"created collection kb at {index / 'collections' / 'kb'}" in " ".join(output.split())


def test_collections_are_listed_with_their_folders_as_they_are(tmp_path: Path) -> None:
    # A table cell is rich markup: an index folder holding `[/x]` ended the listing in a
    # MarkupError.
    index = tmp_path / "[" / "x] index"
    assert rag("collections", "create", "kb", "--index", index)[0] == 0

    code, output = rag("collections", "list", "--index", index)

    assert code == 0, output
    assert "│ kb " in output  # the row, its location cell wrapped over lines
