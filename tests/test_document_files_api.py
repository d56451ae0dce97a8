"""A real PDF through the service: its extracted text, its original file, and who may read them.

Citation offsets index the document's extracted text (`GET /v1/documents/{file}/text`); the
original is served as ingested (`/raw`, a PDF opening at a page with `#page=N`), with the
paragraph endpoint's access rules: a publishable key needs a citation's token.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.citation_tokens import CitationTokens
from tests.api import ADMIN, NETWORK_CLIENT, QUERY, SITE, WIDGET, api_client, keyed_settings
from tests.fakes import HashEmbedder

SECRETS = ["files-citation-secret-0001"]
PDF = Path(__file__).resolve().parents[2] / "shared" / "realdocs" / "langchain.pdf"


def key(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}", "Origin": SITE}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = keyed_settings(
        tmp_path_factory.mktemp("files") / "index",
        widget_rate_limit="10000/minute",
        citation_secrets=SECRETS,
    )
    with api_client(settings, HashEmbedder(), client=NETWORK_CLIENT) as test_client:
        upload = test_client.post(
            "/v1/documents",
            files=[("files", (PDF.name, PDF.read_bytes(), "application/pdf"))],
            headers=key(ADMIN),
        )
        assert upload.status_code == 202, upload.text
        job = wait_job(test_client, upload.json()["job_id"])
        assert job["status"] == "done", job
        test_client.report = job["report"]  # type: ignore[attr-defined]
        yield test_client


def wait_job(client: TestClient, job_id: str) -> dict[str, Any]:
    for _ in range(600):
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}", headers=key(ADMIN)).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError("ingestion job never finished")


def test_an_uploaded_pdf_is_ingested_with_what_its_loader_left_out_noted(
    client: TestClient,
) -> None:
    report = client.report  # type: ignore[attr-defined]
    assert report["files"] == 1 and report["passages"] > 0 and not report["skipped"]
    assert any("running headers" in note["reason"] for note in report["notes"])


def test_sources_name_their_page_and_offsets_index_the_extracted_text(client: TestClient) -> None:
    text = client.get(f"/v1/documents/{PDF.name}/text", headers=key(QUERY))
    assert text.status_code == 200, text.text
    body = text.json()
    assert body["format"] == "pdf"
    pages = body["text"].split("\f")
    assert len(pages) == 8  # langchain.pdf has 8 pages, each with text
    found = client.post("/v1/search", json={"query": "LangChain"}, headers=key(QUERY)).json()
    sources = [s for p in found["passages"] for s in p["sources"] if s["file"] == PDF.name]
    assert sources
    for source in sources:
        assert 1 <= source["page"] <= len(pages)
        span = body["text"][source["char_start"] : source["char_end"]]
        assert span.strip() and "\f" not in span
        # The span lies on the page the source names.
        page_start = sum(len(p) + 1 for p in pages[: source["page"] - 1])
        assert page_start <= source["char_start"] < page_start + len(pages[source["page"] - 1])


def test_a_publishable_key_cannot_read_a_whole_document(client: TestClient) -> None:
    refused = client.get(f"/v1/documents/{PDF.name}/text", headers=key(WIDGET))
    assert refused.status_code == 403


def test_the_original_pdf_is_served_inline_as_ingested(client: TestClient) -> None:
    raw = client.get(f"/v1/documents/{PDF.name}/raw", headers=key(ADMIN))
    assert raw.status_code == 200
    assert raw.headers["content-type"] == "application/pdf"
    assert raw.headers["content-disposition"].startswith("inline;")
    assert raw.content == PDF.read_bytes()


def test_a_publishable_key_opens_the_original_only_with_a_citation_of_it(
    client: TestClient,
) -> None:
    path = f"/v1/documents/{PDF.name}/raw"
    assert client.get(path, headers=key(WIDGET)).status_code == 403
    version = hashlib.sha256(PDF.read_bytes()).hexdigest()  # the cited file's content hash
    token = CitationTokens(SECRETS, 3600).issue(PDF.name, 2, 1, time.time(), "default", version)
    opened = client.get(path, params={"paragraph": 2, "token": token}, headers=key(WIDGET))
    assert opened.status_code == 200 and opened.content == PDF.read_bytes()
    other = CitationTokens(SECRETS, 3600).issue("other.pdf", 2, 1, time.time())
    swapped = client.get(path, params={"paragraph": 2, "token": other}, headers=key(WIDGET))
    assert swapped.status_code == 403


def test_a_service_can_keep_originals_from_publishable_keys(tmp_path: Path) -> None:
    """A publishable key is public: anyone may ask, get a token and download the cited file
    whole. RAG_PUBLISHABLE_ORIGINALS=false keeps such keys to cited paragraphs, and the
    widget this service serves offers no original to open."""
    settings = keyed_settings(
        tmp_path / "index", citation_secrets=SECRETS, publishable_originals=False
    )
    with api_client(settings, HashEmbedder(), client=NETWORK_CLIENT) as client:
        upload = client.post(
            "/v1/documents",
            files=[
                ("files", ("灯塔.txt", "鲸鱼湾灯塔于一八九三年建成。\n".encode(), "text/plain"))
            ],
            headers=key(ADMIN),
        )
        assert wait_job(client, upload.json()["job_id"])["status"] == "done"
        version = hashlib.sha256("鲸鱼湾灯塔于一八九三年建成。\n".encode()).hexdigest()
        token = CitationTokens(SECRETS, 3600).issue(
            "灯塔.txt", 1, 1, time.time(), "default", version
        )
        cited: dict[str, str | int] = {"paragraph": 1, "token": token}

        refused = client.get("/v1/documents/灯塔.txt/raw", params=cited, headers=key(WIDGET))
        paragraph = client.get(
            "/v1/documents/灯塔.txt/paragraphs/1", params={"token": token}, headers=key(WIDGET)
        )
        admin = client.get("/v1/documents/灯塔.txt/raw", headers=key(ADMIN))
        script = client.get("/widget.js").text

    assert refused.status_code == 403
    assert "RAG_PUBLISHABLE_ORIGINALS" in refused.json()["detail"]
    assert paragraph.status_code == 200
    assert admin.status_code == 200
    assert "originals: false" in script


def test_the_widget_of_a_service_that_gives_originals_offers_them(client: TestClient) -> None:
    assert "originals: true" in client.get("/widget.js").text


def test_a_text_document_is_a_download_never_a_page_of_the_service(client: TestClient) -> None:
    listed = client.get("/v1/documents", headers=key(ADMIN)).json()["documents"]
    demo = next(d["file"] for d in listed if d["file"].endswith(".txt"))
    raw = client.get(f"/v1/documents/{demo}/raw", headers=key(ADMIN))
    assert raw.status_code == 200
    assert raw.headers["content-disposition"].startswith("attachment;")
    assert raw.headers["content-type"] == "application/octet-stream"
    assert raw.headers["x-content-type-options"] == "nosniff"


def test_an_original_changed_since_ingest_is_not_served(client: TestClient, tmp_path: Path) -> None:
    upload = client.post(
        "/v1/documents",
        files=[("files", ("changing.txt", "质量是基础。\n".encode(), "text/plain"))],
        headers=key(ADMIN),
    )
    assert wait_job(client, upload.json()["job_id"])["status"] == "done"
    uploads = Path(client.app.state.service.settings.uploads)  # type: ignore[attr-defined]
    (uploads / "changing.txt").write_text("安全是底线。\n", encoding="utf-8")
    gone = client.get("/v1/documents/changing.txt/raw", headers=key(ADMIN))
    assert gone.status_code == 404 and "changed" in gone.json()["detail"]
