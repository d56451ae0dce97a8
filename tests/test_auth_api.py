"""Keys and roles: admin manages, query asks and searches, the widget key only asks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.settings import ServiceSettings
from tests.api import ADMIN, NETWORK_CLIENT, QUERY, SITE, WIDGET, api_client, keyed_settings
from tests.fakes import HashEmbedder

ASK = {"question": "质检总局局长是谁？"}


def bearer(key: str, origin: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    if origin:
        headers["Origin"] = origin
    return headers


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = keyed_settings(
        tmp_path_factory.mktemp("auth") / "index", widget_rate_limit="1000/minute"
    )
    # A non-loopback client: with keys configured, the network may call the service.
    with api_client(settings, HashEmbedder(), client=NETWORK_CLIENT) as test_client:
        yield test_client


def test_a_request_without_a_valid_key_is_401(client: TestClient) -> None:
    missing = client.post("/v1/ask", json=ASK)
    wrong = client.post("/v1/ask", json=ASK, headers=bearer("guess"))

    assert missing.status_code == 401 and "API key is required" in missing.json()["detail"]
    assert missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401 and wrong.json()["detail"] == "invalid API key"


def test_the_key_is_checked_before_the_body(client: TestClient) -> None:
    assert client.post("/v1/ask", json={"question": ""}).status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/documents", None),
        ("DELETE", "/v1/documents/x.txt", None),
        ("GET", "/v1/jobs/abc", None),
        ("GET", "/metrics", None),
    ],
)
def test_a_query_key_cannot_manage_documents(
    client: TestClient, method: str, path: str, body: object
) -> None:
    response = client.request(method, path, headers=bearer(QUERY))

    assert response.status_code == 403
    assert response.json()["detail"] == "a query key may not manage"


def test_a_query_key_asks_searches_and_reads_citations(client: TestClient) -> None:
    answer = client.post("/v1/ask", json=ASK, headers=bearer(QUERY))
    search = client.post("/v1/search", json={"query": "质检"}, headers=bearer(QUERY, SITE))
    citation = answer.json()["citations"][0]
    paragraph = client.get(
        f"/v1/documents/{citation['file']}/paragraphs/{citation['paragraph']}",
        headers=bearer(QUERY),
    )

    assert (answer.status_code, search.status_code, paragraph.status_code) == (200, 200, 200)


def test_an_admin_key_may_do_everything(client: TestClient) -> None:
    headers = bearer(ADMIN)
    assert client.get("/v1/documents", headers=headers).status_code == 200
    assert client.get("/metrics", headers=headers).status_code == 200
    assert client.post("/v1/ask", json=ASK, headers=headers).status_code == 200
    assert client.post("/v1/search", json={"query": "质检"}, headers=headers).status_code == 200


def test_x_api_key_header_is_accepted_too(client: TestClient) -> None:
    assert client.get("/v1/documents", headers={"X-API-Key": ADMIN}).status_code == 200


def test_the_widget_key_asks_only_from_allowed_origins(client: TestClient) -> None:
    allowed = client.post("/v1/ask/stream", json=ASK, headers=bearer(WIDGET, SITE))
    own = client.post("/v1/ask", json=ASK, headers=bearer(WIDGET, "http://testserver"))
    other = client.post("/v1/ask", json=ASK, headers=bearer(WIDGET, "https://evil.example"))
    none = client.post("/v1/ask", json=ASK, headers=bearer(WIDGET))

    assert allowed.status_code == 200 and own.status_code == 200
    assert other.status_code == 403 and "evil.example" in other.json()["detail"]
    assert none.status_code == 403 and "allowed origins" in none.json()["detail"]


def test_the_widget_key_reads_citations_on_a_same_origin_page(client: TestClient) -> None:
    """Browsers send no Origin on a same-origin GET: the widget's Referer stands in."""
    citation = client.post("/v1/ask", json=ASK, headers=bearer(WIDGET, SITE)).json()["citations"][0]
    path = (
        f"/v1/documents/{citation['file']}/paragraphs/{citation['paragraph']}"
        f"?token={citation['token']}"
    )

    same_page = client.get(path, headers={**bearer(WIDGET), "Referer": "http://testserver/"})
    elsewhere = client.get(path, headers={**bearer(WIDGET), "Referer": "https://evil.example/"})

    assert same_page.status_code == 200
    assert elsewhere.status_code == 403


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/search"), ("GET", "/v1/documents"), ("DELETE", "/v1/documents/a.txt")],
)
def test_the_widget_key_can_do_nothing_but_ask(client: TestClient, method: str, path: str) -> None:
    body = {"query": "质检"} if path == "/v1/search" else None
    response = client.request(method, path, json=body, headers=bearer(WIDGET, SITE))
    assert response.status_code == 403


def test_cors_lets_allowed_origins_call_with_a_key(client: TestClient) -> None:
    preflight = {"Access-Control-Request-Method": "POST"}
    allowed = client.options(
        "/v1/ask/stream",
        headers={**preflight, "Origin": SITE, "Access-Control-Request-Headers": "authorization"},
    )
    other = client.options("/v1/ask", headers={**preflight, "Origin": "https://evil.example"})

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == SITE
    assert "access-control-allow-origin" not in other.headers


def test_the_demo_page_carries_only_the_publishable_key(client: TestClient) -> None:
    page = client.get("/").text
    script = client.get("/widget.js").text

    assert f'<script src="/widget.js" data-key="{WIDGET}" defer></script>' in page
    for secret in (ADMIN, QUERY):
        assert secret not in page and secret not in script


def test_the_widget_key_is_rate_limited(tmp_path: Path) -> None:
    settings = ServiceSettings(
        index_dir=tmp_path / "index",
        dense_floor=0.0,
        publishable_keys=[WIDGET],
        widget_rate_limit="3/minute",
    )
    with api_client(settings, HashEmbedder()) as client:
        own = bearer(WIDGET, "http://testserver")
        statuses = [client.post("/v1/ask", json=ASK, headers=own).status_code for _ in range(4)]
        refused = client.post("/v1/ask", json=ASK, headers=own)

    assert statuses == [200, 200, 200, 429]
    assert "rate limit of 3 per 1 minute exceeded" in refused.json()["detail"]
    assert 0 < int(refused.headers["retry-after"]) <= 60


def test_without_keys_only_loopback_clients_are_served(tmp_path: Path) -> None:
    settings = ServiceSettings(index_dir=tmp_path / "index", dense_floor=0.0)
    with api_client(settings, HashEmbedder()) as local:
        assert local.post("/v1/ask", json=ASK).status_code == 200
        assert local.get("/v1/documents").status_code == 200
        remote = TestClient(local.app, client=("198.51.100.7", 5000))
        response = remote.post("/v1/ask", json=ASK)

    assert response.status_code == 403
    assert "no API keys" in response.json()["detail"]


def test_a_malformed_rate_limit_fails_at_start_up(tmp_path: Path) -> None:
    from service.app import create_app

    with pytest.raises(ValueError, match="RAG_WIDGET_RATE_LIMIT"):
        create_app(ServiceSettings(index_dir=tmp_path, widget_rate_limit="lots"))


def test_allowed_origins_are_written_as_browsers_send_them(tmp_path: Path) -> None:
    """Origins are compared as strings: a capital, a default port or a trailing slash in
    RAG_ALLOWED_ORIGINS never matched, and the widget got 403 with no hint why."""
    written = "HTTPS://Shop.Example.com:443/, http://127.0.0.1:8080"
    settings = keyed_settings(tmp_path / "index", allowed_origins=written)
    assert settings.allowed_origins == ["https://shop.example.com", "http://127.0.0.1:8080"]

    with api_client(settings, HashEmbedder(), client=NETWORK_CLIENT) as client:
        response = client.post(
            "/v1/ask", json=ASK, headers=bearer(WIDGET, "https://shop.example.com")
        )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("*", "would let any site ask"),
        ("shop.example.com", "is not an origin"),
        ("https://shop.example.com/faq", "is not an origin"),
        ("https://shop.example.com:99999", "is not a URL"),
    ],
)
def test_an_allowed_origin_that_is_no_origin_fails_at_start_up(
    tmp_path: Path, entry: str, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        keyed_settings(tmp_path / "index", allowed_origins=entry)
