"""The service's open pipelines per collection (service/pipelines.py): leased, bounded, closed
only once no request uses them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.collections import DEFAULT, Collections, NoSuchCollection
from rag.pipeline import Pipeline, index_config, open_pipeline
from service.pipelines import Pipelines
from service.settings import ServiceSettings
from tests.conftest import DEMO
from tests.fakes import HashEmbedder

FILE = "000_7045e455b641a377.txt"


@pytest.fixture
def pipelines(tmp_path: Path) -> Iterator[Pipelines]:
    """Room for one open collection besides default; `a` and `b` hold one demo file each."""
    settings = ServiceSettings(index_dir=tmp_path / "index", dense_floor=0.0, open_collections=1)
    embedder = HashEmbedder()
    collections = Collections.of(settings)
    for name in ("a", "b"):
        collections.create(name, index_config(settings, embedder))
        with open_pipeline(collections.settings_for(name, settings), embedder) as pipeline:
            pipeline.ingest([DEMO / FILE])
    default = open_pipeline(settings, embedder)

    def no_other_model(name: str) -> HashEmbedder:
        raise AssertionError(f"loaded embedder {name}: the collections share the default's")

    opened = Pipelines(settings, default, no_other_model)
    yield opened
    opened.close()
    default.close()


def is_closed(pipeline: Pipeline) -> bool:
    try:
        pipeline.counts()
    except sqlite3.ProgrammingError:
        return True
    return False


def test_a_collection_is_opened_once_and_shared(pipelines: Pipelines) -> None:
    with pipelines.lease("a") as first, pipelines.lease("a") as second:
        assert first is second
        assert first.counts()["documents"] == 1
    assert pipelines.open_names() == [DEFAULT, "a"]


def test_default_is_the_pipeline_loaded_at_start_up(pipelines: Pipelines) -> None:
    with pipelines.lease(DEFAULT) as pipeline:
        assert pipeline is pipelines.default
    assert not is_closed(pipelines.default)


def test_past_capacity_the_least_recently_used_is_closed_once_its_requests_end(
    pipelines: Pipelines,
) -> None:
    with pipelines.lease("a") as a:
        with pipelines.lease("b"):
            pass  # pushes `a` out while a request still uses it
        assert pipelines.open_names() == [DEFAULT, "b"]
        assert not is_closed(a)  # the running request finishes on it
        assert a.search("质检总局").passages
    assert is_closed(a)


def test_a_retired_collection_closes_after_its_last_request(pipelines: Pipelines) -> None:
    with pipelines.lease("a") as a:
        pipelines.retire("a")
        assert not is_closed(a)
    assert is_closed(a)
    assert pipelines.open_names() == [DEFAULT]


def test_a_missing_collection_is_no_such_collection(pipelines: Pipelines) -> None:
    with pytest.raises(NoSuchCollection), pipelines.lease("zzz"):
        pass
