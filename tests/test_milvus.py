"""The Milvus backend, on real Milvus Lite: the same answers as the local backend, the
backend recorded and enforced, a Milvus server refusing unlocked writes, `rag migrate`
and `rag check`, and collections kept apart."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag.index.check import check_index, repair_index
from rag.index.config import IndexMismatchError
from rag.index.migrate import migrate
from rag.pipeline import Pipeline, open_pipeline
from rag.settings import Settings
from rag.store.factory import BACKENDS
from rag.store.location import Location, MilvusTarget, location_from_settings
from rag.store.lock import IndexBusyError, WritesRefusedError
from tests.conftest import DEMO, run_rag
from tests.fakes import HashEmbedder
from tests.milvus import MILVUS_MISSING, lite_location

pytestmark = pytest.mark.skipif(MILVUS_MISSING is not None, reason=str(MILVUS_MISSING))

QUESTIONS = ["质量和安全年活动是什么", "食品安全监管信息化平台", "检测活动有哪些", "2009年"]


def settings(directory: Path, backend: str) -> Settings:
    return Settings(index_dir=directory, backend=backend, dense_floor=0.0)


def answers(pipeline: Pipeline, ids: bool = False) -> list[Any]:
    """What a user sees, with passage ids only if asked (each backend numbers its own)."""
    out: list[Any] = []
    for question in QUESTIONS:
        a = pipeline.ask(question)
        out.append(
            (
                a.answer,
                a.abstained,
                [(c.file, c.paragraph, c.char_start, c.char_end, c.quote) for c in a.citations],
                [
                    (p.passage.text, p.score, p.dense, p.lexical, p.passage.sources)
                    + ((p.passage.id,) if ids else ())
                    for p in a.passages
                ],
            )
        )
    out.append(pipeline.counts())
    out.append([(d.file, d.content_hash, d.paragraphs, d.passages) for d in pipeline.documents()])
    return out


@pytest.fixture
def both(tmp_path: Path) -> Iterator[dict[str, Pipeline]]:
    opened = {b: open_pipeline(settings(tmp_path / b, b), HashEmbedder()) for b in BACKENDS}
    yield opened
    for pipeline in opened.values():
        pipeline.close()


def test_milvus_answers_exactly_like_the_local_backend_through_edits_and_removals(
    both: dict[str, Pipeline], demo_copy: Path
) -> None:
    for pipeline in both.values():
        pipeline.ingest([demo_copy])
    assert answers(both["milvus"]) == answers(both["local"])
    edited = sorted(demo_copy.iterdir())[1]
    with edited.open("a", encoding="utf-8") as f:
        f.write("\n补充说明：质量和安全年活动的新增段落。\n")
    removed = sorted(p.name for p in demo_copy.iterdir())[0]
    for pipeline in both.values():
        report = pipeline.ingest([demo_copy])
        assert report.unchanged == 4 and report.reused_vectors > 0
        assert pipeline.remove(removed)
    assert answers(both["milvus"]) == answers(both["local"])
    milvus = both["milvus"]
    assert milvus.document_text(edited.name) == edited.read_text(encoding="utf-8")
    assert milvus.paragraph(edited.name, 2, 1) == both["local"].paragraph(edited.name, 2, 1)
    checked = check_index(location_from_settings(milvus.settings))
    assert checked.ok and not checked.stale and checked.passages == len(milvus)


def test_near_duplicates_merge_on_milvus_as_on_the_local_backend(tmp_path: Path) -> None:
    # A file, then after a reopen its copy with one character changed in each long
    # paragraph: the writer's MinHash index is rebuilt from the signatures each store keeps.
    corpus = tmp_path / "docs"
    corpus.mkdir()
    lines = (DEMO / "001_f59391d5d2b02854.txt").read_text(encoding="utf-8").splitlines()
    (corpus / "a.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for backend in BACKENDS:
        first = open_pipeline(settings(tmp_path / backend, backend), HashEmbedder())
        first.ingest([corpus])
        first.close()
    edited = [line[:20] + "某" + line[21:] if len(line) > 100 else line for line in lines]
    (corpus / "b.txt").write_text("\n".join(edited) + "\n", encoding="utf-8")
    reports, seen = {}, {}
    for backend in BACKENDS:
        pipeline = open_pipeline(settings(tmp_path / backend, backend), HashEmbedder())
        try:
            reports[backend] = pipeline.ingest([corpus])
            seen[backend] = answers(pipeline)
        finally:
            pipeline.close()
    near = sum(len(line) > 100 for line in lines)
    assert reports["local"].near_duplicates == near > 0 and reports["local"].new_passages == 0
    for field in ("near_duplicates", "exact_duplicates", "new_passages"):
        assert getattr(reports["milvus"], field) == getattr(reports["local"], field)
    assert seen["milvus"] == seen["local"]  # merged passages cite both files alike


def test_an_index_opened_with_another_backend_is_an_error_that_says_so(tmp_path: Path) -> None:
    open_pipeline(settings(tmp_path / "a", "local"), HashEmbedder()).close()
    with pytest.raises(IndexMismatchError, match=r"holds a local index.*RAG_BACKEND=local"):
        open_pipeline(settings(tmp_path / "a", "milvus"), HashEmbedder())
    open_pipeline(settings(tmp_path / "b", "milvus"), HashEmbedder()).close()
    with pytest.raises(IndexMismatchError, match=r"holds a milvus index.*RAG_BACKEND=milvus"):
        open_pipeline(settings(tmp_path / "b", "local"), HashEmbedder())


def test_checking_a_milvus_index_as_a_local_one_says_what_the_directory_holds(
    tmp_path: Path,
) -> None:
    # `rag check` alone said "no index at ... (no store.sqlite)": as if the index were gone.
    from typer.testing import CliRunner

    from cli.app import app

    open_pipeline(settings(tmp_path / "b", "milvus"), HashEmbedder()).close()
    with pytest.raises(IndexMismatchError, match=r"holds a milvus index.*RAG_BACKEND=milvus"):
        check_index(tmp_path / "b")
    checked = CliRunner().invoke(app, ["check", "--index", str(tmp_path / "b")])
    assert checked.exit_code == 2
    assert "RAG_BACKEND=milvus" in " ".join(checked.output.split())


def test_a_milvus_server_without_a_shared_lock_refuses_writes_and_says_what_to_set(
    tmp_path: Path,
) -> None:
    server = Location("milvus", tmp_path, MilvusTarget("http://127.0.0.1:19530"))
    lock = BACKENDS["milvus"].lock(server, 1.0, None)
    assert not lock.try_acquire()
    with pytest.raises(WritesRefusedError, match="RAG_REDIS_URL") as refused:
        lock.acquire()
    assert isinstance(refused.value, IndexBusyError)  # callers report it like a busy index


def test_milvus_lite_writers_take_turns_through_a_file_lock_beside_the_database(
    tmp_path: Path,
) -> None:
    lite = lite_location(tmp_path / "index")
    lock = BACKENDS["milvus"].lock(lite, 0.0, None)
    other = BACKENDS["milvus"].lock(lite, 0.0, None)
    with lock():
        assert list((tmp_path / "index").glob("milvus.db.default.write.lock"))
        assert not other.try_acquire()
    assert other.try_acquire()
    other.release()


def test_migrate_copies_a_local_index_without_embedding_again_and_reruns_cleanly(
    tmp_path: Path,
) -> None:
    local = open_pipeline(settings(tmp_path / "local", "local"), HashEmbedder())
    local.ingest([DEMO])
    expected = answers(local, ids=True)
    local.close()
    target = lite_location(tmp_path / "milvus")
    report = migrate(tmp_path / "local", target)
    assert report.documents == 5 and report.skipped == 0
    assert report.sources >= report.passages > 0
    counting = HashEmbedder()
    milvus = open_pipeline(settings(tmp_path / "milvus", "milvus"), counting)
    try:
        assert answers(milvus, ids=True) == expected  # passage ids kept too
        assert counting.texts_embedded == len(QUESTIONS)  # the questions, no passage
    finally:
        milvus.close()
    again = migrate(tmp_path / "local", target)
    assert (again.documents, again.skipped, again.passages) == (0, 5, 0)
    assert check_index(target).ok


def test_a_killed_migration_run_again_keeps_every_passage_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run again numbered the passages it had not copied yet anew (the target was no
    # longer empty), so a passage id of the source named another passage in the copy.
    import rag.index.migrate as migrating

    local = open_pipeline(settings(tmp_path / "local", "local"), HashEmbedder())
    local.ingest([DEMO])
    expected = answers(local, ids=True)
    local.close()
    monkeypatch.setattr(migrating, "BATCH_DOCUMENTS", 2)
    copy_batch = migrating._copy_batch
    batches = 0

    def killed_in_the_second_batch(*args: Any) -> None:
        nonlocal batches
        batches += 1
        if batches == 2:
            raise KeyboardInterrupt  # the first batch is written, the rest is not
        copy_batch(*args)

    monkeypatch.setattr(migrating, "_copy_batch", killed_in_the_second_batch)
    target = lite_location(tmp_path / "milvus")
    with pytest.raises(KeyboardInterrupt):
        migrate(tmp_path / "local", target)
    monkeypatch.setattr(migrating, "_copy_batch", copy_batch)
    report = migrate(tmp_path / "local", target)
    assert (report.documents, report.skipped) == (3, 2)

    milvus = open_pipeline(settings(tmp_path / "milvus", "milvus"), HashEmbedder())
    try:
        assert answers(milvus, ids=True) == expected
    finally:
        milvus.close()


def test_migrate_copies_one_state_of_a_source_that_is_written_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file re-ingested into the source after the migration listed its documents was
    # copied as a document with its old hash and no paragraphs, passages or sources.
    import rag.index.migrate as migrating

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("苹果是红色的水果。\n香蕉是黄色的水果。\n", encoding="utf-8")
    source = open_pipeline(settings(tmp_path / "local", "local"), HashEmbedder())
    source.ingest([docs])
    copy_batch = migrating._copy_batch

    def copy_after_an_edit(*args: Any) -> None:
        (docs / "a.txt").write_text("樱桃是小小的水果。\n", encoding="utf-8")
        source.ingest([docs])  # committed by another writer while the copy runs
        copy_batch(*args)

    monkeypatch.setattr(migrating, "_copy_batch", copy_after_an_edit)
    target = lite_location(tmp_path / "milvus")
    migrate(tmp_path / "local", target)
    source.close()

    checked = check_index(target)
    assert checked.ok, checked.problems
    milvus = open_pipeline(settings(tmp_path / "milvus", "milvus"), HashEmbedder())
    try:
        [document] = milvus.documents()
        assert (document.paragraphs, document.passages) == (2, 2)  # the version listed
        assert {p.passage.text for p in milvus.search("水果", 5).passages} == {
            "苹果是红色的水果。",
            "香蕉是黄色的水果。",
        }
    finally:
        milvus.close()


def test_migrate_copies_a_document_with_more_passages_than_sqlite_binds_in_one_statement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stock SQLite binds at most 32,766 parameters in one statement: a book with more
    # passages than that failed to migrate ("too many SQL variables"). The limit is
    # lowered here so that a small document shows the same.
    import random
    import sqlite3

    from rag.store.sqlite import SQLiteStore

    opened = SQLiteStore.__init__

    def with_a_low_limit(self: SQLiteStore, *args: Any, **kwargs: Any) -> None:
        opened(self, *args, **kwargs)
        self._db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 40)

    monkeypatch.setattr(SQLiteStore, "__init__", with_a_low_limit)
    rng = random.Random(7)
    lines = ["".join(chr(rng.randrange(0x4E00, 0x9FA5)) for _ in range(30)) for _ in range(60)]
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "book.txt").write_text("\n\n".join(lines), encoding="utf-8")
    local = open_pipeline(settings(tmp_path / "local", "local"), HashEmbedder())
    local.ingest([docs])
    [book] = local.documents()
    assert book.passages > 40
    local.close()

    target = lite_location(tmp_path / "milvus")
    report = migrate(tmp_path / "local", target)
    assert (report.documents, report.passages) == (1, book.passages)
    assert check_index(target).ok


def test_a_milvus_that_went_away_is_a_503_that_says_so_not_an_internal_error(
    tmp_path: Path,
) -> None:
    from milvus_lite.server_manager import server_manager_instance

    from service.settings import ServiceSettings
    from tests.api import api_client

    service = ServiceSettings(index_dir=tmp_path, backend="milvus", dense_floor=0.0)
    with api_client(service, HashEmbedder()) as client:
        assert client.post("/v1/search", json={"query": "质量"}).status_code == 200
        # The server stops under the service's open client, as a Milvus server goes down.
        server_manager_instance.release_server(str(tmp_path / "milvus.db"))
        refused = {
            "search": client.post("/v1/search", json={"query": "质量"}),
            "ask": client.post("/v1/ask", json={"question": "质量和安全年活动是什么"}),
            "documents": client.get("/v1/documents"),
            "delete": client.delete("/v1/documents/no-such.txt"),
        }
    for what, response in refused.items():
        assert response.status_code == 503, (what, response.text)
        assert "index store (Milvus) is unavailable" in response.json()["detail"], what
        assert response.headers["Retry-After"], what


def test_a_milvus_that_goes_away_mid_command_is_a_sentence_of_the_cli_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from milvus_lite.server_manager import server_manager_instance

    open_pipeline(settings(tmp_path, "milvus"), HashEmbedder()).close()
    search = Pipeline.search

    def search_once_milvus_is_gone(self: Pipeline, *args: Any) -> Any:
        server_manager_instance.release_server(str(tmp_path / "milvus.db"))
        return search(self, *args)

    monkeypatch.setattr(Pipeline, "search", search_once_milvus_is_gone)
    monkeypatch.setattr("embeddings.factory.make_embedder", lambda *_: HashEmbedder())
    monkeypatch.setenv("RAG_BACKEND", "milvus")

    assert run_rag(monkeypatch, "search", "质量", "--index", str(tmp_path)) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "the index store failed: milvus at" in err
    assert "Traceback" not in err


def test_check_reports_damage_in_a_milvus_index_and_repair_collects_leftovers(
    tmp_path: Path,
) -> None:
    pipeline = open_pipeline(settings(tmp_path, "milvus"), HashEmbedder())
    pipeline.ingest([DEMO])
    pipeline.close()
    where = lite_location(tmp_path)
    store = BACKENDS["milvus"].open_store(where, False)
    client, names = store.client, store.names  # type: ignore[attr-defined]
    [source] = client.query(names["sources"], filter="", limit=1, output_fields=["passage_id"])
    client.delete(names["sources"], filter=f"passage_id == {source['passage_id']}")
    store.close()
    report = check_index(where)
    assert any("passages without a source" in p for p in report.problems)

    store = BACKENDS["milvus"].open_store(where, False)
    store.set_meta("dirty", "1")  # as a writer killed mid-write leaves it
    store.close()
    assert check_index(where).stale and not check_index(where).problems
    repaired = repair_index(where, 10.0)
    assert repaired.ok and not repaired.stale  # the sourceless passage was collected


def test_collections_are_kept_apart_in_one_milvus(tmp_path: Path) -> None:
    lite = Settings(index_dir=tmp_path, backend="milvus")
    names = {
        BACKENDS["milvus"].store_exists(location_from_settings(lite, None, c)): c
        for c in ("default",)
    }
    assert names == {False: "default"}
    from rag.store.milvus_schema import names as collection_names

    a_b = collection_names(location_from_settings(lite, None, "a_b"))["passages"]
    a_dash_b = collection_names(location_from_settings(lite, None, "a-b"))["passages"]
    assert a_b != a_dash_b and a_b.startswith("rag_")
    with pytest.raises(ValueError, match="invalid collection name"):
        location_from_settings(lite, None, "No Spaces")


def test_a_vector_of_the_wrong_width_is_refused(tmp_path: Path) -> None:
    pipeline = open_pipeline(settings(tmp_path, "milvus"), HashEmbedder())
    try:
        store = pipeline._index.store
        with pytest.raises(ValueError, match="shape"), store.transaction():
            store.set_vectors([1], np.ones((1, 3), dtype=np.float32))
    finally:
        pipeline.close()


def test_rag_migrate_and_rag_check_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from cli.app import app
    from rag.settings import get_settings

    runner = CliRunner()
    local = open_pipeline(settings(tmp_path / "local", "local"), HashEmbedder())
    local.ingest([DEMO])
    local.close()
    missing = runner.invoke(app, ["migrate", "--from", str(tmp_path / "nope"), "--to", "x.db"])
    assert missing.exit_code == 2 and "no index" in missing.output
    target = tmp_path / "lite" / "milvus.db"
    copied = runner.invoke(app, ["migrate", "--from", str(tmp_path / "local"), "--to", str(target)])
    assert copied.exit_code == 0, copied.output
    assert "copied 5 documents" in copied.output

    monkeypatch.setenv("RAG_BACKEND", "milvus")
    monkeypatch.setenv("RAG_MILVUS_URI", str(target))
    get_settings.cache_clear()
    try:
        checked = runner.invoke(app, ["check", "--json"])
        listed = runner.invoke(app, ["docs", "list", "--json"])
    finally:
        get_settings.cache_clear()
    assert checked.exit_code == 0, checked.output
    assert '"ok": true' in checked.output
    assert listed.exit_code == 0 and listed.output.count('"file"') == 5


def test_rag_migrate_to_a_milvus_server_writes_under_the_lock_shared_in_redis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: Any
) -> None:
    # `rag migrate --to milvus://...` opened the target without the Redis lock that a
    # Milvus server's writers share, so it was refused however RAG_REDIS_URL was set.
    from milvus_lite.server_manager import server_manager_instance
    from typer.testing import CliRunner

    from cli.app import app
    from rag.settings import get_settings

    local = open_pipeline(settings(tmp_path / "local", "local"), HashEmbedder())
    local.ingest([DEMO])
    local.close()
    served = str(tmp_path / "served" / "milvus.db")
    uri = server_manager_instance.start_and_get_uri(served)  # Milvus over the network
    assert uri is not None and uri.startswith("http://")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAG_REDIS_URL", redis_server.url)
    get_settings.cache_clear()
    try:
        copied = CliRunner().invoke(
            app, ["migrate", "--from", str(tmp_path / "local"), "--to", f"milvus{uri[4:]}"]
        )
    finally:
        get_settings.cache_clear()
        server_manager_instance.release_server(served)
    assert copied.exit_code == 0, copied.output
    assert "copied 5 documents" in copied.output


def test_removing_and_repairing_on_a_milvus_server_take_the_lock_shared_in_redis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: Any
) -> None:
    # `rag docs rm` and `rag check --repair` opened the index without the Redis lock, so a
    # Milvus server refused them ("set RAG_REDIS_URL") with RAG_REDIS_URL set.
    from milvus_lite.server_manager import server_manager_instance
    from typer.testing import CliRunner

    from cli.app import app
    from rag.settings import get_settings

    served = str(tmp_path / "served" / "milvus.db")
    uri = server_manager_instance.start_and_get_uri(served)  # Milvus over the network
    assert uri is not None and uri.startswith("http://")
    env = {"RAG_BACKEND": "milvus", "RAG_MILVUS_URI": uri, "RAG_REDIS_URL": redis_server.url}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "home"))
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        with open_pipeline(get_settings(), HashEmbedder()) as pipeline:
            pipeline.ingest([DEMO])
            [first, *_] = [d.file for d in pipeline.documents()]
        removed = runner.invoke(app, ["docs", "rm", first])
        repaired = runner.invoke(app, ["check", "--repair"])
        listed = runner.invoke(app, ["docs", "list", "--json"])
    finally:
        get_settings.cache_clear()
        server_manager_instance.release_server(served)
    assert removed.exit_code == 0, removed.output
    assert repaired.exit_code == 0, repaired.output
    assert listed.output.count('"file"') == 4


def test_bm25_statistics_follow_writes_made_under_an_open_lexical_view(tmp_path: Path) -> None:
    """Document frequencies are cached per collection state: a removal, and a write that
    keeps the passage count, must both be seen, as a fresh local index sees them."""
    from rag.store.milvus_search import MilvusLexicalIndex
    from rag.text.tokenize import get_tokenizer
    from tests.milvus import store_passages

    tokenize = get_tokenizer("bigram")
    texts = {7: "质量安全年活动", 8: "食品安全监管", 9: "质量检测活动"}
    vectors = np.ones((3, 4), dtype=np.float32) / 2
    store = store_passages(tmp_path, 4, list(texts), vectors, [tokenize(t) for t in texts.values()])
    lexical = MilvusLexicalIndex(store)
    terms = ["质量", "安全", "活动", "检测", "不存在"]

    def local_idf() -> dict[str, float]:
        local = BACKENDS["local"].build_lexical
        assert local is not None
        return local(list(texts), [tokenize(t) for t in texts.values()]).idf(terms)

    try:
        assert lexical.idf(terms) == local_idf()
        store.delete_passages([9])  # outside a batch: only the passage count moves
        del texts[9]
        assert lexical.idf(terms) == local_idf()
        with store.transaction():  # one passage for another: the count stays 2
            store.delete_passages([8])
            new = store.insert_passage("检测活动", "检测活动", "h", b"", vectors[0])
            store.bump_generation()
        del texts[8]
        texts[new] = "检测活动"
        assert len(lexical) == 2
        assert lexical.idf(terms) == local_idf()
    finally:
        store.close()


def _answer_in_child(index: str) -> str:
    pipeline = open_pipeline(settings(Path(index), "milvus"), HashEmbedder())
    try:
        return pipeline.ask(QUESTIONS[0]).citations[0].file
    finally:
        pipeline.close()


def test_a_closed_milvus_lite_index_is_whole_on_disk_and_free_for_another_process(
    tmp_path: Path,
) -> None:
    # Milvus Lite serves a file from a server inside the process that opened it, and that
    # server (its background index builds, its lock on the file) outlives the client unless
    # the store stops it. Left running, a copy taken after close() could hold a half-written
    # index file, and another process could not open the index at all.
    index = tmp_path / "index"
    pipeline = open_pipeline(settings(index, "milvus"), HashEmbedder())
    pipeline.ingest([DEMO])
    expected = pipeline.ask(QUESTIONS[0]).citations[0].file
    pipeline.close()
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        assert pool.apply(_answer_in_child, (str(index),)) == expected
