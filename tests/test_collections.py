"""Collections on disk (rag/collections.py): names, where each lives, create, list, remove."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rag.collections import (
    DEFAULT,
    NEW_PREFIX,
    TRASH_PREFIX,
    CollectionExists,
    Collections,
    InvalidCollectionName,
    NoSuchCollection,
    check_name,
)
from rag.index.index import Index
from rag.pipeline import Pipeline, index_config, open_pipeline
from rag.store.lock import IndexBusyError, WriteLock
from service.settings import ServiceSettings
from tests.conftest import DEMO, ROOT
from tests.fakes import HashEmbedder


@pytest.fixture
def settings(tmp_path: Path) -> ServiceSettings:
    return ServiceSettings(index_dir=tmp_path / "index", dense_floor=0.0)


def create(settings: ServiceSettings, name: str, **overrides: object) -> Path:
    built = settings.model_copy(update=overrides)
    return Collections.of(settings).create(name, index_config(built, HashEmbedder()))


def open_collection(settings: ServiceSettings, name: str) -> Pipeline:
    return open_pipeline(Collections.of(settings).settings_for(name, settings), HashEmbedder())


@pytest.mark.parametrize("name", ["default", "a", "help-center", "kb_2024", "x" * 64])
def test_names_of_lowercase_letters_digits_dash_and_underscore_are_valid(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "a/b", "..", ".", "../etc", "Help", "帮助", "a b", "a.b", "x" * 65, "x" * 300]
)
def test_other_names_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(InvalidCollectionName, match=r"a-z, 0-9, '_' and '-'"):
        check_name(name)


def test_a_long_name_is_not_echoed_whole() -> None:
    with pytest.raises(InvalidCollectionName) as refused:
        check_name("x" * 300)
    assert "300 characters" in str(refused.value)
    assert "x" * 65 not in str(refused.value)


@given(st.text(max_size=80))
def test_a_valid_name_is_always_one_plain_path_component(name: str) -> None:
    try:
        check_name(name)
    except InvalidCollectionName:
        return
    assert Path(name).name == name and not name.startswith(".") and "/" not in name


def test_default_is_the_index_directory_itself_and_others_live_under_collections(
    settings: ServiceSettings,
) -> None:
    collections = Collections.of(settings)

    assert collections.location(DEFAULT) == settings.index_dir
    assert collections.location("help") == settings.index_dir / "collections" / "help"
    assert collections.names() == [DEFAULT]  # default exists before anything is built
    assert collections.settings_for(DEFAULT, settings) is settings


def test_an_index_built_before_collections_is_the_default_collection(
    settings: ServiceSettings,
) -> None:
    with open_pipeline(settings, HashEmbedder()) as pipeline:
        pipeline.ingest([DEMO])

    collections = Collections.of(settings)
    assert collections.names() == [DEFAULT]
    config = collections.config(DEFAULT)
    assert config is not None and config.embedder == HashEmbedder.name


def test_a_created_collection_keeps_its_own_settings(settings: ServiceSettings) -> None:
    location = create(settings, "small-chunks", chunk_size=200, tokenizer="jieba")

    collections = Collections.of(settings)
    assert collections.names() == [DEFAULT, "small-chunks"]
    opened = collections.settings_for("small-chunks", settings)
    assert (opened.index_dir, opened.chunk_size, opened.tokenizer) == (location, 200, "jieba")
    assert settings.chunk_size == 400  # the process's own settings are untouched
    with open_pipeline(opened, HashEmbedder()) as pipeline:
        pipeline.ingest([DEMO])
        assert pipeline.counts()["documents"] == 5


def test_collections_do_not_share_documents(settings: ServiceSettings) -> None:
    create(settings, "other")
    collections = Collections.of(settings)
    with open_pipeline(collections.settings_for("other", settings), HashEmbedder()) as other:
        other.ingest([DEMO / "000_7045e455b641a377.txt"])
    with open_pipeline(settings, HashEmbedder()) as default:
        assert default.documents() == []
        with open_pipeline(collections.settings_for("other", settings), HashEmbedder()) as again:
            assert [d.file for d in again.documents()] == ["000_7045e455b641a377.txt"]


def test_creating_twice_or_a_bad_name_fails_and_changes_nothing(settings: ServiceSettings) -> None:
    create(settings, "kb")
    with pytest.raises(CollectionExists):
        create(settings, "kb")
    with pytest.raises(InvalidCollectionName):
        create(settings, "../kb")
    with pytest.raises(InvalidCollectionName, match="reserved"):  # `model: "rag"` is default
        create(settings, "rag")
    assert Collections.of(settings).names() == [DEFAULT, "kb"]
    assert sorted(p.name for p in (settings.index_dir / "collections").iterdir()) == ["kb"]


def test_a_sweep_passes_over_a_collection_another_process_is_creating(
    settings: ServiceSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rag collections list` (or a service starting) sweeps: it deleted the build of a
    `create` running in another process, which then failed with "already exists"."""
    collections = Collections.of(settings)
    # What a creation killed halfway leaves: a build that nobody holds.
    stale = collections.parent / f"{NEW_PREFIX}dead-0123"
    stale.mkdir(parents=True)
    swept: list[str] = []

    def build_then_sweep(*args: Any, **kwargs: Any) -> Index:
        index = Index(*args, **kwargs)
        # Another process sweeps now; filelock's locks are per object, as across processes.
        swept.extend(Collections.of(settings).sweep())
        return index

    monkeypatch.setattr("rag.collections.Index", build_then_sweep)

    create(settings, "fresh")

    assert swept == [stale.name]
    assert collections.names() == [DEFAULT, "fresh"]
    assert sorted(p.name for p in collections.parent.iterdir()) == ["fresh"]


def test_a_write_from_before_a_removal_does_not_keep_the_name_from_being_created_again(
    settings: ServiceSettings,
) -> None:
    """An upload job or a document deletion that had the collection open when it was removed
    writes on: its lock file and caches made the directory again, without a store. That was
    no collection (not listed; `rm` found none), yet `create` said it already existed."""
    collections = Collections.of(settings)
    create(settings, "again")
    with open_collection(settings, "again") as stale:
        collections.remove("again")
        stale.ingest([DEMO / "000_7045e455b641a377.txt"])
    assert collections.names() == [DEFAULT]

    create(settings, "again")

    assert collections.names() == [DEFAULT, "again"]
    with open_collection(settings, "again") as fresh:
        assert fresh.counts()["documents"] == 0
    assert sorted(p.name for p in collections.parent.iterdir()) == ["again"]


def test_an_unknown_collection_is_no_such_collection(settings: ServiceSettings) -> None:
    collections = Collections.of(settings)
    with pytest.raises(NoSuchCollection):
        collections.require("missing")
    with pytest.raises(NoSuchCollection):
        collections.settings_for("missing", settings)
    with pytest.raises(NoSuchCollection):
        collections.remove("missing")


def test_removing_a_collection_removes_everything_of_it(settings: ServiceSettings) -> None:
    location = create(settings, "gone")
    with open_pipeline(
        Collections.of(settings).settings_for("gone", settings), HashEmbedder()
    ) as p:
        p.ingest([DEMO])

    Collections.of(settings).remove("gone")

    assert not location.exists()
    assert Collections.of(settings).names() == [DEFAULT]
    assert list((settings.index_dir / "collections").iterdir()) == []
    create(settings, "gone")  # the name is free again, for an empty collection
    opened = Collections.of(settings).settings_for("gone", settings)
    with open_pipeline(opened, HashEmbedder()) as pipeline:
        assert pipeline.documents() == []


def test_the_default_collection_cannot_be_removed(settings: ServiceSettings) -> None:
    with pytest.raises(ValueError, match="default collection cannot be removed"):
        Collections.of(settings).remove(DEFAULT)


def test_a_removal_waits_for_a_write_running_on_the_collection(settings: ServiceSettings) -> None:
    location = create(settings, "busy")
    lock = WriteLock(location, timeout=0)
    # Another process writing: held through a second lock object, as filelock is per object.
    with lock():
        impatient = Collections(settings.index_dir, lock_timeout=0)
        with pytest.raises(IndexBusyError):
            impatient.remove("busy")
    assert Collections.of(settings).names() == [DEFAULT, "busy"]


REMOVE_AND_DIE = textwrap.dedent(
    """
    import os, shutil, signal, sys
    from pathlib import Path
    from rag.collections import Collections

    real_rmtree = shutil.rmtree

    def rmtree_then_die(path, *args, **kwargs):
        # Delete part of the collection, then die as a killed process does.
        victims = sorted(Path(path).rglob("*.sqlite*"))
        for victim in victims[:1]:
            victim.unlink()
        os.kill(os.getpid(), signal.SIGKILL)

    shutil.rmtree = rmtree_then_die
    Collections(Path(sys.argv[1])).remove("doomed")
    """
)


def test_a_removal_killed_halfway_leaves_no_half_collection_and_is_finished_by_a_sweep(
    settings: ServiceSettings,
) -> None:
    location = create(settings, "doomed")
    with open_pipeline(
        Collections.of(settings).settings_for("doomed", settings), HashEmbedder()
    ) as p:
        p.ingest([DEMO])

    died = subprocess.run(
        [sys.executable, "-c", REMOVE_AND_DIE, str(settings.index_dir)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        check=False,
    )

    assert died.returncode == -9, died.stderr.decode()
    collections = Collections.of(settings)
    # Gone from the listing at once: the rename happened before anything was deleted.
    assert collections.names() == [DEFAULT]
    assert not location.exists()
    leftovers = list(collections.parent.iterdir())
    assert [p.name.startswith(TRASH_PREFIX + "doomed-") for p in leftovers] == [True]
    # The next start-up finishes the removal.
    assert collections.sweep() == [leftovers[0].name]
    assert list(collections.parent.iterdir()) == []
    create(settings, "doomed")
    assert collections.names() == [DEFAULT, "doomed"]
