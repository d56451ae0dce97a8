"""Keys are secrets: never in logs, error messages or the widget; compared in constant time.

A real `rag serve` process with admin, query and publishable keys and its access log on is
called with valid, wrong-role and forged keys, succeeding and failing; then its whole output
and every response are searched for the keys.
"""

from __future__ import annotations

import hmac
import logging
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from bench.service import service_process
from service.auth import Gate, Role
from service.redact import REDACTED, SERVER_LOGGERS, RedactKeys
from service.routes.ask import MAX_BODY
from service.settings import ServiceSettings

ADMIN = "sk-admin-5d41402abc4b2a76"
QUERY = "sk-query-7d793037a0760186"
WIDGET = "pk-widget-9e107d9d372bb682"
FORGED = "sk-forged-e4d909c290d0fb1c"
FORGED_LONG = "sk-forged-" + "0123456789abcdef" * 512  # 8 KB
CITATION_SECRET = "cs-citation-6f1ed002ab5595859"  # signs citation tokens
SECRETS = (ADMIN, QUERY, CITATION_SECRET)  # never shown anywhere
KEYS = (ADMIN, QUERY, WIDGET, FORGED, FORGED_LONG, CITATION_SECRET)  # never logged
SITE = "https://shop.example.com"
ASK = {"question": "质检总局局长是谁？"}
USER = {"role": "user", "content": ASK["question"]}
# Served to anyone: the demo page, the widget and the API docs.
PAGES = ["/", "/widget.js", "/openapi.json", "/docs"]


def bearer(key: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **headers}


@dataclass(frozen=True)
class Call:
    """One request the test makes and the status it expects."""

    method: str
    path: str
    headers: dict[str, str]
    status: int
    body: dict[str, Any] | bytes | None = None


CALLS = [
    Call("GET", "/v1/documents", bearer(ADMIN), 200),
    Call("GET", "/v1/documents", {"X-API-Key": ADMIN}, 200),
    Call("GET", "/metrics", bearer(ADMIN), 200),
    Call("POST", "/v1/ask", bearer(QUERY), 200, ASK),
    Call("POST", "/v1/ask/stream", {"X-API-Key": QUERY}, 200, ASK),
    Call("POST", "/v1/chat/completions", bearer(ADMIN), 200, {"messages": [USER]}),
    Call("POST", "/v1/ask", bearer(WIDGET, Origin=SITE), 200, ASK),
    # Wrong role.
    Call("GET", "/v1/documents", bearer(QUERY), 403),
    Call("DELETE", "/v1/documents/x.txt", bearer(WIDGET, Origin=SITE), 403),
    Call("POST", "/v1/ask", bearer(WIDGET, Origin="https://evil.example"), 403, ASK),
    # A paragraph no answer cited, without or with a forged citation token.
    Call("GET", "/v1/documents/none.txt/paragraphs/1", bearer(WIDGET, Origin=SITE), 403),
    Call(
        "GET",
        "/v1/documents/none.txt/paragraphs/1?token=v1.1.9999999999.forged",
        bearer(WIDGET, Origin=SITE),
        403,
    ),
    # Forged.
    Call("POST", "/v1/ask", bearer(FORGED), 401, ASK),
    Call("GET", "/v1/documents", {"X-API-Key": FORGED}, 401),
    Call("GET", "/v1/documents", bearer(FORGED_LONG), 401),
    Call("GET", "/v1/documents", {"Authorization": f"Basic {ADMIN}"}, 401),
    # Keys where the service never reads them: the URL, which the access log prints.
    Call("GET", f"/v1/documents?api_key={ADMIN}&key={FORGED}", {}, 401),
    Call("GET", f"/v1/documents?token={QUERY}", bearer(FORGED), 401),
    # Valid keys on failing requests.
    Call("POST", "/v1/ask", bearer(ADMIN), 422, {"question": "   "}),
    Call("POST", "/v1/ask", bearer(QUERY), 422, {"question": 42, "top_k": "x"}),
    Call("POST", "/v1/ask", bearer(QUERY), 413, b'{"question": "' + b"q" * (MAX_BODY + 1) + b'"}'),
    Call("GET", "/v1/documents/none.txt/paragraphs/1", bearer(QUERY), 404),
    Call("DELETE", "/v1/documents/none.txt", {"X-API-Key": ADMIN}, 404),
    Call("GET", "/v1/jobs/none", bearer(ADMIN), 404),
]


@dataclass
class Served:
    """The service's responses to CALLS, its PAGES, and everything it printed meanwhile."""

    responses: list[httpx.Response]
    pages: dict[str, str]
    output: str


@pytest.fixture(scope="module")
def served(demo_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Served:
    index = tmp_path_factory.mktemp("secrets") / "index"
    shutil.copytree(demo_index, index)
    env = {
        "RAG_ADMIN_KEYS": ADMIN,
        "RAG_QUERY_KEYS": QUERY,
        "RAG_PUBLISHABLE_KEYS": WIDGET,
        "RAG_ALLOWED_ORIGINS": SITE,
        "RAG_CITATION_SECRETS": CITATION_SECRET,
    }
    responses = []
    with service_process(index, env) as (url, _), httpx.Client(base_url=url, timeout=30) as http:
        for call in CALLS:
            content = call.body if isinstance(call.body, bytes) else None
            json = call.body if isinstance(call.body, dict) else None
            headers = {**call.headers, **({"content-type": "application/json"} if content else {})}
            responses.append(
                http.request(call.method, call.path, headers=headers, json=json, content=content)
            )
        pages = {path: http.get(path).text for path in PAGES}
        port = urlsplit(url).port
    # Read once the process has stopped: everything it wrote is on disk.
    output = (index.parent / f"service-{port}.log").read_text(encoding="utf-8")
    return Served(responses, pages, output)


@pytest.mark.slow  # a real service process over the real model
def test_each_call_got_the_status_it_tests(served: Served) -> None:
    statuses = [r.status_code for r in served.responses]
    assert statuses == [c.status for c in CALLS], [r.text[:100] for r in served.responses]


@pytest.mark.slow
def test_the_access_log_is_on_and_redacts_keys_in_urls(served: Served) -> None:
    assert '"GET /v1/documents HTTP/1.1" 200' in served.output
    assert '"POST /v1/ask HTTP/1.1" 413' in served.output
    assert f'"GET /v1/documents?api_key={REDACTED}&key={REDACTED} HTTP/1.1" 401' in served.output
    assert f'"GET /v1/documents?token={REDACTED} HTTP/1.1" 401' in served.output


@pytest.mark.slow
@pytest.mark.parametrize(
    "key", KEYS, ids=["admin", "query", "publishable", "forged", "long", "citation"]
)
def test_no_key_is_ever_printed_by_the_server(served: Served, key: str) -> None:
    assert key not in served.output
    assert key[:16] not in served.output  # not even in part


@pytest.mark.slow
@pytest.mark.parametrize(
    "key", KEYS, ids=["admin", "query", "publishable", "forged", "long", "citation"]
)
def test_no_response_body_or_header_carries_a_key(served: Served, key: str) -> None:
    for call, response in zip(CALLS, served.responses, strict=True):
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        assert key not in response.text, call
        assert key not in headers, call


@pytest.mark.slow
@pytest.mark.parametrize("path", PAGES)
def test_pages_served_without_a_key_hold_no_secret_key(served: Served, path: str) -> None:
    for secret in SECRETS:
        assert secret not in served.pages[path]
    if path == "/":  # the demo page embeds the widget with its (publishable) key
        assert f'data-key="{WIDGET}"' in served.pages[path]
    else:
        assert WIDGET not in served.pages[path]


# -- units ----------------------------------------------------------------------------------


def test_keys_are_compared_with_hmac_compare_digest_against_every_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Constant time: no `==`, and no early exit once a key matched (timing shows order)."""
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    gate = Gate(ServiceSettings(index_dir=tmp_path, admin_keys=[ADMIN], query_keys=[QUERY, WIDGET]))
    monkeypatch.setattr("service.auth.hmac.compare_digest", spy)

    assert gate.role_of(ADMIN) is Role.ADMIN  # the first key matches...
    assert len(compared) == 3  # ...and the other two are compared all the same
    assert {known for known, _ in compared} == {k.encode() for k in (ADMIN, QUERY, WIDGET)}
    compared.clear()
    assert gate.role_of(FORGED) is None
    assert [sent for _, sent in compared] == [FORGED.encode()] * 3


@pytest.mark.parametrize(
    ("line", "redacted"),
    [
        (f"GET /v1/ask?api_key={ADMIN}", f"GET /v1/ask?api_key={REDACTED}"),
        (f"GET /x?a=1&Access_Token={FORGED}&b=2", f"GET /x?a=1&Access_Token={REDACTED}&b=2"),
        (f"GET /v1/documents/{ADMIN}/paragraphs/1", f"GET /v1/documents/{REDACTED}/paragraphs/1"),
        ("GET /x?k=p%2Bk%2Fx", f"GET /x?k={REDACTED}"),  # a known key, percent-encoded
        ("GET /v1/ask?question=keyboard", "GET /v1/ask?question=keyboard"),
    ],
)
def test_log_lines_lose_known_keys_and_credential_parameters(line: str, redacted: str) -> None:
    assert RedactKeys([ADMIN, "p+k/x"]).redact(line) == redacted


def test_what_the_llm_composer_and_rewriter_log_is_redacted_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Moving the LLM code to rag.answer.llm renamed the filtered logger to that package,
    but the composer and the rewriter log to "rag.llm": their lines, which quote what the
    model's server answered, were the only ones of the service left unredacted."""
    from rag.answer.llm import composer
    from rag.conversation import llm as rewriter
    from service.app import create_app
    from tests.api import demo_loader
    from tests.fakes import HashEmbedder

    settings = ServiceSettings(index_dir=tmp_path / "index", admin_keys=[ADMIN])
    with TestClient(create_app(settings, demo_loader(HashEmbedder()))):  # the lifespan
        for logger in (composer.log, rewriter.log):
            with caplog.at_level(logging.WARNING, logger=logger.name):
                logger.warning("LLM unavailable: the server echoed %s", f"Bearer {ADMIN}")

    names = {composer.log.name, rewriter.log.name}
    lines = [r.getMessage() for r in caplog.records if r.name in names]
    assert lines == [f"LLM unavailable: the server echoed Bearer {REDACTED}"] * 2


def test_a_traceback_logged_for_an_unexpected_error_is_redacted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception's message may quote the header or URL a key came in: the traceback the
    500 handler logs loses the key like the log line does, its cause's message too."""
    from rag.pipeline import Pipeline
    from service.app import create_app
    from tests.api import demo_loader, wait_ready
    from tests.fakes import HashEmbedder

    def fail(_: Pipeline) -> None:
        try:
            raise ConnectionError(f"GET https://llm.example/v1/models?api_key={FORGED} refused")
        except ConnectionError as err:
            raise RuntimeError(f"upstream said: Authorization: Bearer {ADMIN}") from err

    monkeypatch.setattr(Pipeline, "documents", fail)
    settings = ServiceSettings(index_dir=tmp_path / "index", admin_keys=[ADMIN])
    app = create_app(settings, demo_loader(HashEmbedder()))
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_ready(client)
        with caplog.at_level(logging.ERROR, logger="rag.service"):
            assert client.get("/v1/documents", headers=bearer(ADMIN)).status_code == 500

    assert "Traceback (most recent call last)" in caplog.text
    assert f"RuntimeError: upstream said: Authorization: Bearer {REDACTED}" in caplog.text
    assert f"/v1/models?api_key={REDACTED} refused" in caplog.text
    assert ADMIN not in caplog.text
    assert FORGED not in caplog.text


def test_an_exception_logged_as_an_argument_is_redacted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store error handlers log the exception itself as an argument (`%s`): only string
    arguments were redacted."""
    from rag.pipeline import Pipeline
    from service.app import create_app
    from tests.api import demo_loader, wait_ready
    from tests.fakes import HashEmbedder

    def fail(_: Pipeline) -> None:
        raise sqlite3.OperationalError(f"unable to open https://db.example/x?token={FORGED}")

    monkeypatch.setattr(Pipeline, "documents", fail)
    settings = ServiceSettings(index_dir=tmp_path / "index", admin_keys=[ADMIN])
    with TestClient(create_app(settings, demo_loader(HashEmbedder()))) as client:
        wait_ready(client)
        with caplog.at_level(logging.ERROR, logger="rag.service"):
            assert client.get("/v1/documents", headers=bearer(ADMIN)).status_code == 503

    assert f"unable to open https://db.example/x?token={REDACTED}" in caplog.text
    assert FORGED not in caplog.text


@pytest.mark.parametrize("name", SERVER_LOGGERS)
def test_every_filtered_logger_redacts_tracebacks_and_stacks(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger(name)
    redaction = RedactKeys([ADMIN])
    logger.addFilter(redaction)
    try:
        with caplog.at_level(logging.ERROR, logger=name):
            try:
                raise ValueError(f"bad header {ADMIN!r}")
            except ValueError as err:
                logger.error("Exception in ASGI application", exc_info=err, stack_info=True)
    finally:
        logger.removeFilter(redaction)

    assert f"ValueError: bad header '{REDACTED}'" in caplog.text
    assert "Stack (most recent call last)" in caplog.text
    assert ADMIN not in caplog.text
