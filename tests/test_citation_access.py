"""A publishable key opens only the paragraphs an answer cited (issue 11, part 2).

The key is public and paragraph numbers are small integers, so without proof of a citation
anyone could read the whole corpus through `GET /v1/documents/{file}/paragraphs/{n}`.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.citation_tokens import CitationTokens, InvalidCitationToken
from service.settings import ServiceSettings
from tests.api import (
    ADMIN,
    NETWORK_CLIENT,
    QUERY,
    SITE,
    WIDGET,
    api_client,
    keyed_settings,
    sse_events,
)
from tests.fakes import HashEmbedder
from tests.stub_llm import running_stub

ASK = {"question": "质检总局局长是谁？"}
SECRETS = ["current-citation-secret", "previous-citation-secret"]


def bearer(key: str, origin: str | None = SITE) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    if origin:
        headers["Origin"] = origin
    return headers


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = keyed_settings(
        tmp_path_factory.mktemp("citations") / "index",
        widget_rate_limit="10000/minute",
        citation_secrets=SECRETS,
    )
    with api_client(settings, HashEmbedder(), client=NETWORK_CLIENT) as test_client:
        yield test_client


def paragraph_path(file: str, number: int, token: str | None = None, **query: Any) -> str:
    params = {**query, **({"token": token} if token is not None else {})}
    suffix = "?" + "&".join(f"{k}={quote(str(v), safe='')}" for k, v in params.items())
    return f"/v1/documents/{quote(file)}/paragraphs/{number}" + (suffix if params else "")


def widget_answer(client: TestClient) -> dict[str, Any]:
    response = client.post("/v1/ask", json=ASK, headers=bearer(WIDGET))
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert body["citations"], "the test question must be answered with citations"
    return body


def documents(client: TestClient) -> dict[str, int]:
    listed = client.get("/v1/documents", headers=bearer(ADMIN, None)).json()["documents"]
    return {d["file"]: d["paragraphs"] for d in listed}


def test_enumerating_paragraphs_no_answer_cited_is_403(client: TestClient) -> None:
    """The issue's reproduction: widget key, allowed Origin, every paragraph of a document."""
    cited = {c["file"] for c in widget_answer(client)["citations"]}
    uncited = sorted(set(documents(client)) - cited)[0]

    statuses = set()
    details = set()
    for number in range(1, documents(client)[uncited] + 2):
        response = client.get(paragraph_path(uncited, number), headers=bearer(WIDGET))
        statuses.add(response.status_code)
        details.add(response.json()["detail"])

    assert statuses == {403}
    assert details == {
        "a publishable key opens only paragraphs an answer cited: send the citation's "
        "token as ?token="
    }


def test_a_refusal_does_not_say_whether_the_file_exists(client: TestClient) -> None:
    missing = client.get(paragraph_path("no-such-file.txt", 1), headers=bearer(WIDGET))
    forged = client.get(
        paragraph_path("no-such-file.txt", 1, "v2.1.9999999999.3f.x"), headers=bearer(WIDGET)
    )

    assert missing.status_code == forged.status_code == 403


def test_the_widget_key_opens_a_cited_paragraph_with_its_token(client: TestClient) -> None:
    for citation in widget_answer(client)["citations"]:
        path = paragraph_path(citation["file"], citation["paragraph"], citation["token"])
        response = client.get(path, headers=bearer(WIDGET))

        assert response.status_code == 200
        assert citation["quote"] in response.json()["paragraph"]["text"]


def test_opening_a_cited_paragraph_counts_once_against_the_widget_rate_limit(
    tmp_path: Path,
) -> None:
    # The route and its collection's dependency both need the caller: one key check serves
    # both, or each paragraph would count twice against the widget's limit.
    settings = keyed_settings(
        tmp_path / "index", widget_rate_limit="3/minute", citation_secrets=SECRETS
    )
    with api_client(settings, HashEmbedder(), client=NETWORK_CLIENT) as limited:
        citation = widget_answer(limited)["citations"][0]
        path = paragraph_path(citation["file"], citation["paragraph"], citation["token"])
        statuses = [limited.get(path, headers=bearer(WIDGET)).status_code for _ in range(3)]

    assert statuses == [200, 200, 429]  # the answer took the first of the three


def test_a_token_for_one_file_or_paragraph_opens_no_other(client: TestClient) -> None:
    citation = widget_answer(client)["citations"][0]
    other_file = next(f for f in documents(client) if f != citation["file"])

    other = client.get(
        paragraph_path(other_file, citation["paragraph"], citation["token"]),
        headers=bearer(WIDGET),
    )
    next_paragraph = client.get(
        paragraph_path(citation["file"], citation["paragraph"] + 1, citation["token"]),
        headers=bearer(WIDGET),
    )

    for response in (other, next_paragraph):
        assert response.status_code == 403
        assert "was not issued for paragraph" in response.json()["detail"]


def test_a_token_without_its_paragraph_is_told_to_send_the_paragraph(client: TestClient) -> None:
    """The original file (`/raw`) takes the cited paragraph beside the token; without it the
    refusal called a genuine token forged ("not issued for paragraph 0")."""
    citation = widget_answer(client)["citations"][0]
    path = f"/v1/documents/{quote(citation['file'])}/raw"

    alone = client.get(path, params={"token": citation["token"]}, headers=bearer(WIDGET))
    both = client.get(
        path,
        params={"token": citation["token"], "paragraph": citation["paragraph"]},
        headers=bearer(WIDGET),
    )

    assert alone.status_code == 403
    assert "send the citation's paragraph as ?paragraph=" in alone.json()["detail"]
    assert both.status_code == 200


def test_an_expired_token_is_403(client: TestClient) -> None:
    citation = widget_answer(client)["citations"][0]
    signer = CitationTokens(SECRETS, ttl_s=3600)
    expired = signer.issue(
        citation["file"], citation["paragraph"], citation["passage_id"], time.time() - 3601
    )

    response = client.get(
        paragraph_path(citation["file"], citation["paragraph"], expired), headers=bearer(WIDGET)
    )

    assert response.status_code == 403
    assert "expired" in response.json()["detail"]


def test_a_token_of_a_rotated_out_secret_still_opens_and_an_unknown_one_does_not(
    client: TestClient,
) -> None:
    citation = widget_answer(client)["citations"][0]
    listed = client.get("/v1/documents", headers=bearer(ADMIN, None)).json()["documents"]
    cited = next(d["content_hash"] for d in listed if d["file"] == citation["file"])
    file, paragraph, passage = citation["file"], citation["paragraph"], citation["passage_id"]
    place = (file, paragraph, passage, time.time(), "default", cited)
    previous = CitationTokens(["previous-citation-secret"], 3600).issue(*place)
    unknown = CitationTokens(["guessed-secret"], 3600).issue(*place)

    def status(token: str) -> int:
        path = paragraph_path(citation["file"], citation["paragraph"], token)
        return client.get(path, headers=bearer(WIDGET)).status_code

    assert (status(previous), status(unknown)) == (200, 403)


def test_the_widget_key_gets_no_neighbours_and_query_keys_do(client: TestClient) -> None:
    citation = widget_answer(client)["citations"][0]
    file, number = citation["file"], citation["paragraph"]

    widget = client.get(
        paragraph_path(file, number, citation["token"], context=5), headers=bearer(WIDGET)
    ).json()
    query = client.get(paragraph_path(file, number, context=1), headers=bearer(QUERY, None))

    assert (widget["before"], widget["after"]) == ([], [])
    assert query.status_code == 200
    assert len(query.json()["before"]) + len(query.json()["after"]) >= 1


@pytest.mark.parametrize("key", [ADMIN, QUERY])
def test_admin_and_query_keys_read_any_paragraph_without_a_token(
    client: TestClient, key: str
) -> None:
    file = sorted(documents(client))[0]
    response = client.get(paragraph_path(file, 1), headers=bearer(key, None))
    assert response.status_code == 200


def test_streamed_and_chat_citations_carry_tokens_that_open_them(client: TestClient) -> None:
    stream = client.post("/v1/ask/stream", json=ASK, headers=bearer(WIDGET))
    events = {event: json.loads(data) for event, data in sse_events(stream.text) if event}
    chat = client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": ASK["question"]}]},
        headers=bearer(WIDGET),
    ).json()
    chunks = client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": ASK["question"]}], "stream": True},
        headers=bearer(WIDGET),
    )
    last_chunk = json.loads([d for _, d in sse_events(chunks.text) if d != "[DONE]"][-1])

    for citations in (
        events["retrieval"]["citations"],
        events["answer"]["citations"],
        chat["citations"],
        last_chunk["citations"],
    ):
        assert citations
        for citation in citations:
            path = paragraph_path(citation["file"], citation["paragraph"], citation["token"])
            assert client.get(path, headers=bearer(WIDGET)).status_code == 200


def test_openapi_documents_the_token_additively(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    citation = schema["components"]["schemas"]["CitationOut"]
    parameters = schema["paths"]["/v1/documents/{file}/paragraphs/{number}"]["get"]["parameters"]

    token = next(p for p in parameters if p["name"] == "token")

    assert "token" in citation["properties"] and "token" not in citation.get("required", [])
    assert token["in"] == "query" and not token.get("required", False)


def test_the_widget_key_cannot_turn_asking_into_a_search(client: TestClient) -> None:
    """Every retrieved passage comes back with its text: a publishable key's top_k is capped."""
    many = {**ASK, "top_k": 50}
    widget = client.post("/v1/ask", json=many, headers=bearer(WIDGET))
    stream = client.post("/v1/ask/stream", json=many, headers=bearer(WIDGET))
    query = client.post("/v1/ask", json=many, headers=bearer(QUERY, None))

    assert widget.status_code == stream.status_code == 403
    assert widget.json()["detail"] == (
        "a publishable key may ask for at most 5 passages (top_k), not 50"
    )
    assert query.status_code == 200


def test_the_widget_key_gets_no_more_passages_from_chat_completions_than_from_ask(
    tmp_path: Path,
) -> None:
    """A chat request names no top_k: for a publishable key it is RAG_TOP_K held to
    RAG_PUBLISHABLE_MAX_TOP_K, as an /v1/ask without one is. Counted in the prompt the
    (stub) model is given, which an LLM may quote from whole."""
    with running_stub() as stub:
        settings = keyed_settings(
            tmp_path / "index",
            answerer="llm",
            llm_base_url=stub.url,
            llm_model="stub-model",
            top_k=8,
            publishable_max_top_k=2,
        )
        with api_client(settings, HashEmbedder(), client=NETWORK_CLIENT) as client:

            def passages_given(path: str, body: dict[str, Any], key: str) -> int:
                stub.requests.clear()
                assert client.post(path, json=body, headers=bearer(key)).status_code == 200
                return len(re.findall(r'<资料 编号="\d+">', stub.requests[-1].user))

            chat = {"messages": [{"role": "user", "content": ASK["question"]}]}
            assert passages_given("/v1/ask", ASK, WIDGET) == 2
            assert passages_given("/v1/chat/completions", chat, WIDGET) == 2
            assert passages_given("/v1/chat/completions", {**chat, "stream": True}, WIDGET) == 2
            assert passages_given("/v1/chat/completions", chat, QUERY) == 8


@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/redoc"])
def test_the_api_docs_name_no_document(client: TestClient, path: str) -> None:
    page = client.get(path, headers=bearer(WIDGET))

    assert page.status_code == 200
    for file in documents(client):
        assert file not in page.text


def test_without_configured_secrets_tokens_are_per_process_and_the_service_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def app_tokens(**settings: Any) -> tuple[CitationTokens, str]:
        app = create_app(
            ServiceSettings(index_dir=tmp_path / "index", publishable_keys=[WIDGET], **settings),
            load_pipeline=lambda _: (_ for _ in ()).throw(RuntimeError("not needed")),
        )
        caplog.clear()
        with caplog.at_level(logging.WARNING, "rag.service"), TestClient(app):
            pass
        return app.state.service.citations, caplog.text

    first, warned = app_tokens()
    second, _ = app_tokens()
    replica_a, quiet = app_tokens(citation_secrets=SECRETS)
    replica_b, _ = app_tokens(citation_secrets=SECRETS)

    now = time.time()
    with pytest.raises(InvalidCitationToken):
        second.verify(first.issue("a.txt", 1, 1, now), "a.txt", 1, now)
    assert replica_b.verify(replica_a.issue("a.txt", 1, 1, now), "a.txt", 1, now)
    assert "RAG_CITATION_SECRETS is not set" in warned
    assert "RAG_CITATION_SECRETS" not in quiet


def test_a_token_does_not_open_a_file_uploaded_again_under_its_name(
    tmp_path: Path,
) -> None:
    """A token names file and paragraph: a file deleted and uploaded again under the same name
    within the token's lifetime opened the new file's paragraph N, which no answer cited."""
    settings = keyed_settings(
        tmp_path / "index", widget_rate_limit="10000/minute", citation_secrets=SECRETS
    )
    cited = "熊猫基地位于成都北郊。\n\n熊猫基地每天早上七点半开放，门票五十五元。\n".encode()
    other = "内部资料：第二季度的采购预算为三百万元。\n\n供应商名单见附件。\n".encode()

    def upload(client: TestClient, data: bytes) -> None:
        response = client.post(
            "/v1/documents",
            files=[("files", ("notice.txt", data, "text/plain"))],
            headers=bearer(ADMIN, None),
        )
        assert response.status_code == 202, response.text
        for _ in range(600):
            job = client.get(f"/v1/jobs/{response.json()['job_id']}", headers=bearer(ADMIN, None))
            if job.json()["status"] in ("done", "failed"):
                assert job.json()["status"] == "done", job.text
                return
            time.sleep(0.1)
        raise AssertionError("ingestion job never finished")

    with api_client(settings, HashEmbedder(), client=NETWORK_CLIENT) as client:
        upload(client, cited)
        asked = {"question": "熊猫基地每天几点开放？门票多少元？"}
        answer = client.post("/v1/ask", json=asked, headers=bearer(WIDGET)).json()
        citation = next(c for c in answer["citations"] if c["file"] == "notice.txt")
        path = paragraph_path("notice.txt", citation["paragraph"], citation["token"])
        assert client.get(path, headers=bearer(WIDGET)).status_code == 200

        deleted = client.delete("/v1/documents/notice.txt", headers=bearer(ADMIN, None))
        assert deleted.status_code == 200, deleted.text
        upload(client, other)
        replaced = client.get(path, headers=bearer(WIDGET))

        assert replaced.status_code == 403
        assert "has changed since the answer cited it" in replaced.json()["detail"]
        # The same text uploaded again is the version cited.
        client.delete("/v1/documents/notice.txt", headers=bearer(ADMIN, None))
        upload(client, cited)
        assert client.get(path, headers=bearer(WIDGET)).status_code == 200
