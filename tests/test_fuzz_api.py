"""Fuzzing the HTTP API from its own OpenAPI schema (schemathesis), in process, real model.

The app runs with keys configured over a copy of the demo index and the real bundled model
(e5-small; asking takes tens of milliseconds, so the real one is affordable here). Every
operation is fuzzed twice: with an admin key, whose calls get through to the pipeline, and
with no key at all. Each case must pass schemathesis's checks: no server error, a status
code, content type and body that the schema documents, invalid input refused, and so on.
Generation is deterministic and bounded, so the module runs in well under a minute.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    positive_data_acceptance,
    unsupported_method,
)
from starlette.types import ASGIApp, Receive, Scope, Send

from embeddings.base import Embedder
from rag.pipeline import Pipeline, open_pipeline
from service.app import create_app
from service.settings import ServiceSettings
from tests.api import wait_ready

pytestmark = pytest.mark.slow  # the real model over the demo index

ADMIN, QUERY, WIDGET = "fuzz-admin-key", "fuzz-query-key", "pk-fuzz-widget"
FuzzCase = schemathesis.Case[schemathesis.APIOperation[Any, Any, Any, Any]]

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"mode": "all", "max-examples": 15, "deterministic": True},
        "phases": {"stateful": {"enabled": False}},
    }
)

# Checks left out, with the reason.
# A 405's `Allow` lists the methods of the first route whose path matches (Starlette's
# routing), not of every route on that path.
EVERYWHERE = [allow_header_conformance]
# Operations that refuse some schema-valid requests, by rules a JSON schema cannot state.
RULES_OUTSIDE_THE_SCHEMA = {
    "POST /v1/ask": "a question of only spaces, or over RAG_MAX_QUESTION_CHARS, is 422",
    "POST /v1/ask/stream": "as /v1/ask",
    "POST /v1/chat/completions": "as /v1/ask, and some message must be the user's",
    "POST /v1/search": "a query is held to the rules of a question",
    "POST /v1/documents": "a file needs an extension a loader reads and a usable name (415, 400)",
}
# `{file:path}` takes slashes (documents in folders), so DELETE on a paragraph's path is a
# DELETE of the document "a.txt/paragraphs/1" (a 404), not the 405 the schema suggests; so
# for a document's text and original file.
SHARED_PATHS = {
    "GET /v1/documents/{file}/paragraphs/{number}",
    "GET /v1/documents/{file}/text",
    "GET /v1/documents/{file}/raw",
}


def excluded_checks(case: FuzzCase) -> list[schemathesis.CheckFunction]:
    label = case.operation.label
    return [
        *EVERYWHERE,
        *([positive_data_acceptance] if label in RULES_OUTSIDE_THE_SCHEMA else []),
        *([unsupported_method] if label in SHARED_PATHS else []),
    ]


def keyed_settings(index_dir: Path) -> ServiceSettings:
    return ServiceSettings(
        index_dir=index_dir, admin_keys=[ADMIN], query_keys=[QUERY], publishable_keys=[WIDGET]
    )


class WithoutLifespan:
    """The app with its lifespan events ignored.

    schemathesis's pytest plugin ends an in-process app's lifespan after every test, which
    closes the index; the fixture below runs the real lifespan once for the whole module.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def fuzzed_app(
    e5: Embedder, demo_index: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ASGIApp]:
    index = tmp_path_factory.mktemp("fuzz") / "index"
    shutil.copytree(demo_index, index)  # the fuzzer uploads and deletes documents

    def load(settings: ServiceSettings) -> Pipeline:
        return open_pipeline(settings, e5)

    app = create_app(keyed_settings(index), load)
    with TestClient(app) as client:
        wait_ready(client)
        yield WithoutLifespan(app)


# The schema is the app's own; building an app loads nothing (that happens at start-up).
schema = schemathesis.openapi.from_dict(
    create_app(keyed_settings(Path("unused"))).openapi(), config=CONFIG
)


@schema.parametrize()
def test_fuzz_as_admin(case: FuzzCase, fuzzed_app: FastAPI) -> None:
    case.call_and_validate(
        app=fuzzed_app,
        headers={"Authorization": f"Bearer {ADMIN}"},
        excluded_checks=excluded_checks(case),
    )


@schema.parametrize()
def test_fuzz_without_a_key(case: FuzzCase, fuzzed_app: FastAPI) -> None:
    case.call_and_validate(app=fuzzed_app, excluded_checks=excluded_checks(case))


# -- what the fuzzer found, kept as plain regression tests ----------------------------------
# Each response used to disagree with the schema (undocumented status, or a body of another
# shape); now each passes every check the fuzzer runs.

FOUND: list[tuple[str, str, dict[str, Any], int]] = [
    ("POST", "/v1/ask", {"body": {"question": "   "}}, 422),  # a message, not a list
    ("POST", "/v1/chat/completions", {"body": {"messages": [{"role": "tool"}]}}, 422),
    ("POST", "/v1/ask", {"body": b'{"question": "\xff"}', "media_type": "application/json"}, 400),
    ("GET", "/v1/jobs/{job_id}", {"path_parameters": {"job_id": "nope"}}, 404),
    ("DELETE", "/v1/documents/{file}", {"path_parameters": {"file": "nope.txt"}}, 404),
    (
        "GET",
        "/v1/documents/{file}/paragraphs/{number}",
        {"path_parameters": {"file": "nope.txt", "number": 1}},
        404,
    ),
    # schemathesis names the uploaded file after its field: "files", which has no extension.
    (
        "POST",
        "/v1/documents",
        {"body": {"files": [b"x"]}, "media_type": "multipart/form-data"},
        415,
    ),
]


@pytest.mark.parametrize(("method", "path", "case", "status"), FOUND)
def test_a_response_the_fuzzer_flagged_now_matches_the_schema(
    fuzzed_app: ASGIApp, method: str, path: str, case: dict[str, Any], status: int
) -> None:
    made = schema[path][method].Case(**case)
    response = made.call_and_validate(
        app=fuzzed_app,
        headers={"Authorization": f"Bearer {ADMIN}"},
        excluded_checks=excluded_checks(made),
    )
    assert response.status_code == status


def test_metrics_without_a_key_is_a_documented_401(fuzzed_app: ASGIApp) -> None:
    made = schema["/metrics"]["GET"].Case()
    response = made.call_and_validate(app=fuzzed_app, excluded_checks=excluded_checks(made))
    assert response.status_code == 401
