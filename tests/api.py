"""Helpers for API tests: an app on the demo corpus with a fake embedder, ready to call."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from embeddings.base import Embedder
from rag.pipeline import Pipeline, open_pipeline
from service.app import create_app
from service.settings import ServiceSettings
from tests.conftest import DEMO

LOOPBACK = ("127.0.0.1", 50000)
# A service without keys answers only requests addressed to a loopback name (DNS
# rebinding); TestClient's default `http://testserver` is not one.
LOCAL_URL = "http://127.0.0.1:8000"
# A service with keys, called from the network: one key of each role, one allowed site.
ADMIN, QUERY, WIDGET = "admin-secret-1", "query-secret-2", "pk_widget_3"
SITE = "https://shop.example.com"
NETWORK_CLIENT = ("203.0.113.9", 4000)  # with keys configured, the network may call


def keyed_settings(index_dir: Path, **overrides: Any) -> ServiceSettings:
    """Settings with the ADMIN, QUERY and WIDGET keys, WIDGET allowed on SITE."""
    keys: dict[str, Any] = {
        "admin_keys": [ADMIN],
        "query_keys": [QUERY],
        "publishable_keys": [WIDGET],
        "allowed_origins": [SITE],
    }
    return ServiceSettings(index_dir=index_dir, dense_floor=0.0, **(keys | overrides))


def demo_loader(embedder: Embedder) -> Any:
    def load(settings: ServiceSettings) -> Pipeline:
        pipeline = open_pipeline(settings, embedder)
        pipeline.ingest([DEMO])
        return pipeline

    return load


def wait_ready(client: TestClient, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/readyz").status_code != 200:
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready: {client.get('/readyz').json()}")
        time.sleep(0.02)


@contextmanager
def api_client(
    settings: ServiceSettings, embedder: Embedder, client: tuple[str, int] = LOOPBACK
) -> Iterator[TestClient]:
    """A client of a fresh app over the demo corpus, once the app reports ready."""
    app = create_app(settings, demo_loader(embedder))
    base_url = LOCAL_URL if settings.open_access else "http://testserver"
    with TestClient(app, client=client, base_url=base_url) as test_client:
        wait_ready(test_client)
        yield test_client


def sse_events(body: str) -> list[tuple[str | None, str]]:
    """(event, data) pairs of a text/event-stream body."""
    events = []
    for block in body.split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        event = next((ln[len("event: ") :] for ln in lines if ln.startswith("event: ")), None)
        data = "\n".join(ln[len("data: ") :] for ln in lines if ln.startswith("data: "))
        events.append((event, data))
    return events


def without_tokens(citations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Citations less their tokens: each request signs from its own clock, so two askings
    a second apart carry different tokens for the same citation."""
    return [{k: v for k, v in c.items() if k != "token"} for c in citations]
