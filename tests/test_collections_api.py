"""Collections over HTTP: each answers from its own documents; keys reach only their own.

The app runs over the demo corpus (the `default` collection) with a fake embedder; a second
collection, `regs`, is created and filled through the API. Keys come from the environment
(ADMIN, QUERY, WIDGET: every collection) and from a keys file (scoped ones).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from rag.collections import TRASH_PREFIX, Collections
from rag.pipeline import Pipeline, index_config, open_pipeline
from service.app import create_app
from service.deps import scoped_collection
from service.settings import ServiceSettings
from tests.api import (
    ADMIN,
    NETWORK_CLIENT,
    QUERY,
    SITE,
    WIDGET,
    api_client,
    demo_loader,
    keyed_settings,
    wait_ready,
)
from tests.conftest import DEMO
from tests.fakes import GatedEmbedder, HashEmbedder
from tests.stub_llm import serve

REGS = "regs"
HANDBOOK = "员工手册.txt"
HANDBOOK_TEXT = "第一章 休假\n\n员工每年享有十五天带薪年假，须提前一周向部门经理申请。\n"
HANDBOOK_QUESTION = "员工每年享有多少天带薪年假？"
DEMO_FILE = "000_7045e455b641a377.txt"
DEMO_QUESTION = "质检总局局长是谁？"

# Keys of the keys file, known to the service by their hash only.
REGS_QUERY = "query-key-for-regs-only"
REGS_WIDGET = "pk-regs-widget"
REGS_SITE = "https://help.example.org"
LIMITED = "query-key-two-a-minute"


def auth(key: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **headers}


def write_keys_file(path: Path) -> Path:
    def digest(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    path.write_text(
        f"""
[[keys]]
name = "regulations search"
sha256 = "{digest(REGS_QUERY)}"
role = "query"
collections = ["{REGS}"]

[[keys]]
name = "regulations widget"
sha256 = "{digest(REGS_WIDGET)}"
role = "publishable"
collections = ["{REGS}"]
origins = ["{REGS_SITE}"]

[[keys]]
sha256 = "{digest(LIMITED)}"
role = "query"
collections = ["*"]
rate_limit = "2/minute"
""",
        encoding="utf-8",
    )
    return path


def wait_for_job(client: TestClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}", headers=auth(ADMIN)).json()
        if job["status"] in ("done", "failed"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def fill(client: TestClient, collection: str, name: str, data: bytes) -> dict[str, Any]:
    """Upload one file into `collection` and wait for its ingestion."""
    response = client.post(
        f"/v1/documents?collection={collection}",
        files={"files": (name, data, "text/plain")},
        headers=auth(ADMIN),
    )
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json()["job_id"])
    assert job["status"] == "done" and job["collection"] == collection, job
    return job


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The keyed service with `regs` holding the handbook and the first demo file."""
    root = tmp_path_factory.mktemp("collections-api")
    settings = keyed_settings(root / "index", keys_file=write_keys_file(root / "keys.toml"))
    with api_client(settings, HashEmbedder(), client=NETWORK_CLIENT) as test_client:
        created = test_client.post("/v1/collections", json={"name": REGS}, headers=auth(ADMIN))
        assert created.status_code == 201, created.text
        fill(test_client, REGS, HANDBOOK, HANDBOOK_TEXT.encode())
        fill(test_client, REGS, DEMO_FILE, (DEMO / DEMO_FILE).read_bytes())
        yield test_client


def cited_files(answer: dict[str, Any]) -> set[str]:
    return {c["file"] for c in answer["citations"]}


# -- each collection its own ------------------------------------------------------------------


def test_a_collection_answers_from_its_own_documents_only(client: TestClient) -> None:
    in_regs = client.post(
        "/v1/ask", json={"question": HANDBOOK_QUESTION, "collection": REGS}, headers=auth(QUERY)
    )
    in_default = client.post("/v1/ask", json={"question": HANDBOOK_QUESTION}, headers=auth(QUERY))

    assert in_regs.status_code == 200, in_regs.text
    assert "十五天" in in_regs.json()["answer"]
    assert cited_files(in_regs.json()) == {HANDBOOK}
    assert HANDBOOK not in cited_files(in_default.json())  # default never had it


def test_search_and_document_routes_take_the_collection(client: TestClient) -> None:
    search = client.post(
        "/v1/search", json={"query": "带薪年假", "collection": REGS}, headers=auth(QUERY)
    )
    listed = client.get(f"/v1/documents?collection={REGS}", headers=auth(ADMIN))
    default_listed = client.get("/v1/documents", headers=auth(ADMIN))
    text = client.get(f"/v1/documents/{HANDBOOK}/text?collection={REGS}", headers=auth(QUERY))

    assert search.json()["passages"][0]["sources"][0]["file"] == HANDBOOK
    assert sorted(d["file"] for d in listed.json()["documents"]) == sorted([DEMO_FILE, HANDBOOK])
    assert len(default_listed.json()["documents"]) == 5
    assert text.status_code == 200 and "十五天带薪年假" in text.json()["text"]
    missing = client.get(f"/v1/documents/{HANDBOOK}/text", headers=auth(QUERY))
    assert missing.status_code == 404  # not in default


def test_chat_completions_map_the_model_to_the_collection(client: TestClient) -> None:
    def chat(model: str) -> Any:
        body = {"model": model, "messages": [{"role": "user", "content": HANDBOOK_QUESTION}]}
        return client.post("/v1/chat/completions", json=body, headers=auth(QUERY))

    regs, default, legacy = chat(REGS), chat("default"), chat("rag")

    assert regs.status_code == 200, regs.text
    assert regs.json()["model"] == REGS
    assert {c["file"] for c in regs.json()["citations"]} == {HANDBOOK}
    # "rag", what clients sent before collections, is the default collection.
    assert default.json()["choices"] == legacy.json()["choices"]
    assert chat("no-such-kb").status_code == 404


def test_models_lists_the_collections_a_key_may_use(client: TestClient) -> None:
    every = client.get("/v1/models", headers=auth(QUERY)).json()
    scoped = client.get("/v1/models", headers=auth(REGS_QUERY)).json()

    assert every["object"] == "list"
    assert [m["id"] for m in every["data"]] == ["default", REGS]
    assert all(m["object"] == "model" for m in every["data"])
    assert [m["id"] for m in scoped["data"]] == [REGS]


def test_metrics_are_labelled_by_collection(client: TestClient) -> None:
    client.post("/v1/ask", json={"question": "年假", "collection": REGS}, headers=auth(QUERY))

    text = client.get("/metrics", headers=auth(ADMIN)).text

    assert f'rag_index_documents{{collection="{REGS}"}} 2.0' in text
    assert 'rag_index_documents{collection="default"} 5.0' in text
    assert f'rag_collection_requests_total{{collection="{REGS}",route="/v1/ask"}}' in text


# -- managing collections ---------------------------------------------------------------------


def test_an_admin_creates_lists_and_removes_a_collection(client: TestClient) -> None:
    created = client.post(
        "/v1/collections", json={"name": "scratch", "chunk_size": 200}, headers=auth(ADMIN)
    )
    again = client.post("/v1/collections", json={"name": "scratch"}, headers=auth(ADMIN))
    listed = client.get("/v1/collections", headers=auth(ADMIN)).json()["collections"]

    assert created.status_code == 201, created.text
    assert created.json() == {
        "name": "scratch",
        "embedder": HashEmbedder.name,
        "tokenizer": "bigram2",  # unset: the newest, recorded (rag.text.tokenize)
        "chunk_size": 200,
    }
    assert again.status_code == 409
    assert [c["name"] for c in listed] == ["default", REGS, "scratch"]
    assert next(c for c in listed if c["name"] == "scratch")["chunk_size"] == 200
    fill(client, "scratch", HANDBOOK, HANDBOOK_TEXT.encode())

    removed = client.delete("/v1/collections/scratch", headers=auth(ADMIN))

    assert removed.status_code == 200 and removed.json() == {"deleted": "scratch"}
    names = [
        c["name"] for c in client.get("/v1/collections", headers=auth(ADMIN)).json()["collections"]
    ]
    assert names == ["default", REGS]
    asked = client.post(
        "/v1/ask",
        json={"question": HANDBOOK_QUESTION, "collection": "scratch"},
        headers=auth(QUERY),
    )
    assert asked.status_code == 404
    assert client.delete("/v1/collections/scratch", headers=auth(ADMIN)).status_code == 404


def test_a_collection_named_rag_is_refused_since_chat_completions_read_rag_as_default(
    client: TestClient,
) -> None:
    """It was created, listed by GET /v1/models, and `model: "rag"` answered from `default`."""
    response = client.post("/v1/collections", json={"name": "rag"}, headers=auth(ADMIN))

    assert response.status_code == 422
    assert "'rag' is reserved" in response.json()["detail"]
    models = client.get("/v1/models", headers=auth(ADMIN)).json()["data"]
    assert [m["id"] for m in models] == ["default", REGS]
    upload = client.post(
        "/v1/documents?collection=rag",
        files={"files": (HANDBOOK, HANDBOOK_TEXT.encode(), "text/plain")},
        headers=auth(ADMIN),
    )
    assert upload.status_code == 404  # the upload route never creates a collection


def test_the_default_collection_cannot_be_removed(client: TestClient) -> None:
    response = client.delete("/v1/collections/default", headers=auth(ADMIN))

    assert response.status_code == 409
    assert "default collection cannot be removed" in response.json()["detail"]


@pytest.mark.parametrize("key", [QUERY, WIDGET, REGS_QUERY])
def test_only_an_admin_key_manages_collections(client: TestClient, key: str) -> None:
    headers = auth(key, Origin=SITE)
    assert client.post("/v1/collections", json={"name": "x"}, headers=headers).status_code == 403
    assert client.delete(f"/v1/collections/{REGS}", headers=headers).status_code == 403
    assert client.get("/v1/collections", headers=headers).status_code == 403


# -- bad input --------------------------------------------------------------------------------

BAD_NAMES = ["a/b", "..", "x" * 300, "Regs", "知识库", ""]


def requests_naming(name: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every way a request names a collection: (method, path, json body or {})."""
    quoted = httpx.QueryParams({"collection": name})
    return [
        ("POST", "/v1/ask", {"question": DEMO_QUESTION, "collection": name}),
        ("POST", "/v1/ask/stream", {"question": DEMO_QUESTION, "collection": name}),
        ("POST", "/v1/search", {"query": DEMO_QUESTION, "collection": name}),
        (
            "POST",
            "/v1/chat/completions",
            {"model": name or "?", "messages": [{"role": "user", "content": DEMO_QUESTION}]},
        ),
        ("GET", f"/v1/documents?{quoted}", {}),
        ("GET", f"/v1/documents/{DEMO_FILE}/paragraphs/1?{quoted}", {}),
        ("DELETE", f"/v1/documents/{DEMO_FILE}?{quoted}", {}),
        ("POST", "/v1/collections", {"name": name}),
    ]


@pytest.mark.parametrize(
    "name", BAD_NAMES, ids=["slash", "dotdot", "300-chars", "upper", "han", "empty"]
)
def test_a_name_breaking_the_rule_is_422_naming_the_rule(client: TestClient, name: str) -> None:
    for method, path, body in requests_naming(name):
        response = client.request(method, path, json=body or None, headers=auth(ADMIN))
        assert response.status_code == 422, (method, path, response.text)
        assert "a-z, 0-9, '_' and '-'" in response.text, (method, path, response.text)
        assert "x" * 100 not in response.text  # a long name is not echoed back


# ".." percent-encoded: written plainly, clients resolve it away before sending (to /v1).
@pytest.mark.parametrize("name", ["a/b", "%2E%2E", "x" * 300])
def test_a_bad_name_in_the_path_of_a_removal_is_422(client: TestClient, name: str) -> None:
    response = client.delete(f"/v1/collections/{name}", headers=auth(ADMIN))

    assert response.status_code == 422, response.text
    assert "a-z, 0-9, '_' and '-'" in response.json()["detail"]
    assert client.get("/v1/models", headers=auth(ADMIN)).json()["data"][1]["id"] == REGS


def test_an_unknown_collection_is_404_for_a_key_that_may_use_any(client: TestClient) -> None:
    for method, path, body in requests_naming("nothing-here")[:-1]:  # not the creation
        response = client.request(method, path, json=body or None, headers=auth(ADMIN))
        assert response.status_code == 404, (method, path, response.text)
        assert "no collection 'nothing-here'" in response.text


# -- keys scoped to collections ---------------------------------------------------------------


def test_a_scoped_key_gets_the_same_403_for_a_forbidden_and_a_missing_collection(
    client: TestClient,
) -> None:
    def ask(collection: str) -> Any:
        body = {"question": DEMO_QUESTION, "collection": collection}
        return client.post("/v1/ask", json=body, headers=auth(REGS_QUERY))

    allowed, forbidden, missing = ask(REGS), ask("default"), ask("secret-kb")

    assert allowed.status_code == 200
    assert forbidden.status_code == missing.status_code == 403
    assert forbidden.json() == missing.json()  # nothing tells the two apart
    assert "default" not in forbidden.text and "secret-kb" not in missing.text


def test_a_scoped_key_is_refused_on_every_route_outside_its_scope(client: TestClient) -> None:
    for method, path, body in requests_naming("default")[:-1]:
        if method != "POST" or path == "/v1/collections":
            continue  # the document routes need an admin; scoped query keys only query
        response = client.request(method, path, json=body, headers=auth(REGS_QUERY))
        assert response.status_code == 403, (path, response.text)
    found = client.get(f"/v1/documents/{HANDBOOK}/text?collection={REGS}", headers=auth(REGS_QUERY))
    assert found.status_code == 200


def test_a_scoped_widget_key_works_from_its_own_origins_only(client: TestClient) -> None:
    body = {"question": HANDBOOK_QUESTION, "collection": REGS}

    from_its_site = client.post("/v1/ask", json=body, headers=auth(REGS_WIDGET, Origin=REGS_SITE))
    from_elsewhere = client.post("/v1/ask", json=body, headers=auth(REGS_WIDGET, Origin=SITE))
    preflight = client.options(
        "/v1/ask",
        headers={
            "Origin": REGS_SITE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )

    assert from_its_site.status_code == 200, from_its_site.text
    assert from_elsewhere.status_code == 403
    assert preflight.headers.get("access-control-allow-origin") == REGS_SITE


def test_a_citation_token_opens_its_paragraph_in_its_own_collection_only(
    client: TestClient,
) -> None:
    # DEMO_FILE is in both collections, with the same paragraphs.
    body = {"question": DEMO_QUESTION, "collection": REGS}
    answer = client.post("/v1/ask", json=body, headers=auth(WIDGET, Origin=SITE)).json()
    citation = next(c for c in answer["citations"] if c["file"] == DEMO_FILE)
    path = f"/v1/documents/{DEMO_FILE}/paragraphs/{citation['paragraph']}"
    query = {"token": citation["token"]}

    in_regs = client.get(
        path, params={**query, "collection": REGS}, headers=auth(WIDGET, Origin=SITE)
    )
    in_default = client.get(path, params=query, headers=auth(WIDGET, Origin=SITE))

    assert in_regs.status_code == 200, in_regs.text
    assert in_default.status_code == 403
    assert "not issued" in in_default.json()["detail"]


def test_a_rate_limit_of_the_keys_file_applies_to_its_key(client: TestClient) -> None:
    def ask() -> int:
        body = {"question": DEMO_QUESTION}
        return client.post("/v1/ask", json=body, headers=auth(LIMITED)).status_code

    assert [ask(), ask(), ask()] == [200, 200, 429]


ADMIN_OF_REGS = "admin-of-regs-only"


def with_regs_admin(tmp_path: Path) -> ServiceSettings:
    """The keyed settings plus ADMIN_OF_REGS, an admin key of the regs collection only."""
    keys = tmp_path / "keys.json"
    entry = {
        "sha256": hashlib.sha256(ADMIN_OF_REGS.encode()).hexdigest(),
        "role": "admin",
        "collections": [REGS],
    }
    keys.write_text(json.dumps({"keys": [entry]}), encoding="utf-8")
    return keyed_settings(tmp_path / "index", keys_file=keys)


def test_a_scoped_admin_sees_only_the_jobs_of_its_collections(tmp_path: Path) -> None:
    settings = with_regs_admin(tmp_path)
    with api_client(settings, HashEmbedder(), client=NETWORK_CLIENT) as scoped:
        uploaded = scoped.post(
            "/v1/documents", files={"files": (HANDBOOK, b"x", "text/plain")}, headers=auth(ADMIN)
        )
        job = uploaded.json()["job_id"]
        assert scoped.get(f"/v1/jobs/{job}", headers=auth(ADMIN)).status_code == 200
        assert scoped.get(f"/v1/jobs/{job}", headers=auth(ADMIN_OF_REGS)).status_code == 404
        listed = scoped.get("/v1/collections", headers=auth(ADMIN_OF_REGS)).json()
        assert listed == {"collections": []}  # default is outside its scope; regs not made


def test_a_scoped_admin_cannot_read_the_metrics_of_every_collection(tmp_path: Path) -> None:
    """The metrics name every open collection, its documents and its traffic: a key scoped
    to some collections must not learn of the others there."""
    settings = with_regs_admin(tmp_path)
    with api_client(settings, HashEmbedder(), client=NETWORK_CLIENT) as scoped:
        refused = scoped.get("/metrics", headers=auth(ADMIN_OF_REGS))
        served = scoped.get("/metrics", headers=auth(ADMIN))

    assert refused.status_code == 403
    assert "every collection" in refused.json()["detail"]
    assert 'collection="default"' not in refused.text
    assert served.status_code == 200 and 'collection="default"' in served.text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[[keys]]\nsha256 = "abc"\nrole = "query"\ncollections = ["*"]\n', "keys.0.sha256"),
        (f'[[keys]]\nsha256 = "{"0" * 64}"\nrole = "root"\ncollections = ["*"]\n', "role"),
        (f'[[keys]]\nsha256 = "{"0" * 64}"\nrole = "query"\ncollections = ["a/b"]\n', "a-z"),
        ("[[keys]\n", "keys.toml"),
        (
            f'[[keys]]\nsha256 = "{"0" * 64}"\nrole = "publishable"\ncollections = ["*"]\n'
            'origins = ["help.example.com"]\n',
            "keys.0.origins: Value error, 'help.example.com' is not an origin",
        ),
    ],
)
def test_a_bad_keys_file_stops_the_service_with_a_clear_error(
    tmp_path: Path, content: str, message: str
) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text(content, encoding="utf-8")

    with pytest.raises(ValueError, match="RAG_KEYS_FILE") as refused:
        create_app(keyed_settings(tmp_path / "index", keys_file=keys))
    assert message in str(refused.value)


def sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.mark.parametrize(
    ("entries", "overrides", "message"),
    [
        pytest.param(
            # Moved into the file to be scoped, left in the environment: it reached every
            # collection, the environment's keys being looked up first.
            [{"name": "help widget", "sha256": sha256(WIDGET), "role": "publishable"}],
            {},
            "keys.0 (help widget) is also in RAG_PUBLISHABLE_KEYS",
            id="in-the-environment-and-the-file",
        ),
        pytest.param(
            # The later entry won: which role and scope depended on the order.
            [
                {"sha256": sha256(REGS_QUERY), "role": "query"},
                {"sha256": sha256(REGS_QUERY).upper(), "role": "admin"},
            ],
            {},
            "keys.0 and keys.1 are the same key",
            id="twice-in-the-file",
        ),
        pytest.param(
            [],
            {"query_keys": [QUERY, ADMIN]},
            "a key is in both RAG_ADMIN_KEYS and RAG_QUERY_KEYS",
            id="two-roles-in-the-environment",
        ),
    ],
)
def test_a_key_given_twice_stops_the_service_naming_where_not_the_key(
    tmp_path: Path, entries: list[dict[str, str]], overrides: dict[str, Any], message: str
) -> None:
    keys = tmp_path / "keys.json"
    scoped = [{**entry, "collections": [REGS]} for entry in entries]
    keys.write_text(json.dumps({"keys": scoped}), encoding="utf-8")
    settings = keyed_settings(tmp_path / "index", keys_file=keys, **overrides)

    with pytest.raises(ValueError, match="one") as refused:
        create_app(settings)
    assert message in str(refused.value)
    assert not any(key in str(refused.value) for key in (WIDGET, REGS_QUERY, ADMIN, QUERY))


# -- removal, crash and races -----------------------------------------------------------------


def test_a_query_running_while_its_collection_is_removed_ends_cleanly(tmp_path: Path) -> None:
    """A real server: the query is held inside the embedder while the collection goes."""
    embedder = GatedEmbedder(gated="query")
    settings = keyed_settings(tmp_path / "index")
    collections = Collections.of(settings)
    collections.create("doomed", index_config(settings, embedder))
    with open_pipeline(collections.settings_for("doomed", settings), embedder) as pipeline:
        pipeline.ingest([DEMO])
    app = create_app(settings, demo_loader(embedder))
    with serve(app) as url:
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        answers: list[httpx.Response] = []
        body = {"question": DEMO_QUESTION, "collection": "doomed"}

        def ask() -> None:
            answers.append(httpx.post(f"{url}/v1/ask", json=body, headers=auth(QUERY), timeout=60))

        embedder.hold.set()
        asking = threading.Thread(target=ask)
        asking.start()
        assert embedder.waiting.wait(30), "the query never reached the embedder"
        removed = httpx.delete(f"{url}/v1/collections/doomed", headers=auth(ADMIN), timeout=60)
        embedder.hold.clear()
        embedder.release.set()
        asking.join(60)

        assert removed.status_code == 200, removed.text
        [answer] = answers
        # It finishes on the files it had open, or says the store went away: never a 500.
        assert answer.status_code in (200, 503), answer.text
        if answer.status_code == 200:
            assert answer.json()["citations"]
        after = httpx.post(f"{url}/v1/ask", json=body, headers=auth(QUERY), timeout=60)
        assert after.status_code == 404
        assert not collections.location("doomed").exists()


def test_the_service_finishes_an_interrupted_removal_when_it_starts(tmp_path: Path) -> None:
    settings = keyed_settings(tmp_path / "index")
    collections = Collections.of(settings)
    collections.create("half-gone", index_config(settings, HashEmbedder()))
    # What a removal killed after its rename leaves: a hidden trash directory.
    trash = collections.parent / f"{TRASH_PREFIX}half-gone-0123"
    collections.location("half-gone").rename(trash)

    with api_client(settings, HashEmbedder(), client=NETWORK_CLIENT) as client:
        models = client.get("/v1/models", headers=auth(QUERY)).json()
        assert [m["id"] for m in models["data"]] == ["default"]
        assert not trash.exists()


def create(client: TestClient, name: str) -> None:
    created = client.post("/v1/collections", json={"name": name}, headers=auth(ADMIN))
    assert created.status_code == 201, created.text


def remove_elsewhere(client: TestClient, name: str) -> None:
    """Remove collection `name` as `rag collections rm` (or another replica) would."""
    settings: ServiceSettings = client.app.state.service.settings  # type: ignore[attr-defined]
    Collections.of(settings).remove(name)


def test_a_collection_removed_by_another_process_is_404_and_a_new_one_is_not_the_old(
    client: TestClient,
) -> None:
    create(client, "twice")
    fill(client, "twice", HANDBOOK, HANDBOOK_TEXT.encode())
    body = {"question": HANDBOOK_QUESTION, "collection": "twice"}
    assert client.post("/v1/ask", json=body, headers=auth(QUERY)).json()["citations"]

    remove_elsewhere(client, "twice")

    assert client.post("/v1/ask", json=body, headers=auth(QUERY)).status_code == 404
    create(client, "twice")
    fresh = client.post("/v1/ask", json=body, headers=auth(QUERY)).json()
    assert fresh["citations"] == []  # the new, empty collection; not the cached old one
    assert client.delete("/v1/collections/twice", headers=auth(ADMIN)).status_code == 200


def test_a_collection_removed_elsewhere_while_being_removed_is_404_not_500(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    create(client, "raced")

    def checked_then_removed_elsewhere(*args: Any, **kwargs: Any) -> str:
        name = scoped_collection(*args, **kwargs)
        remove_elsewhere(client, name)  # or another admin's DELETE
        return name

    monkeypatch.setattr(
        "service.routes.collections.scoped_collection", checked_then_removed_elsewhere
    )

    response = client.delete("/v1/collections/raced", headers=auth(ADMIN))

    assert response.status_code == 404, response.text
    assert response.json() == {"detail": "no collection 'raced'"}


def test_a_document_deleted_while_its_collection_is_removed_is_404_not_500(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    create(client, "going")
    fill(client, "going", HANDBOOK, HANDBOOK_TEXT.encode())
    remove = Pipeline.remove

    def removed_elsewhere_first(self: Pipeline, file: str, timeout: float | None = None) -> bool:
        remove_elsewhere(client, "going")  # or DELETE /v1/collections/going, meanwhile
        return remove(self, file, timeout)

    monkeypatch.setattr(Pipeline, "remove", removed_elsewhere_first)

    response = client.delete(f"/v1/documents/{HANDBOOK}?collection=going", headers=auth(ADMIN))

    assert response.status_code == 404, response.text
    assert response.json() == {"detail": "no collection 'going'"}


class StEmbedder(HashEmbedder):
    """What a collection created by `rag collections create --embedder` records."""

    name = "sentence-transformers:BAAI/bge-small-zh-v1.5"


def test_a_collection_whose_embedder_this_service_cannot_load_is_503_with_the_reason(
    tmp_path: Path,
) -> None:
    """It was a bare 500 ("internal error; see the service log") on every request."""
    settings = keyed_settings(tmp_path / "index")
    Collections.of(settings).create("st-kb", index_config(settings, StEmbedder()))
    app = create_app(settings, demo_loader(HashEmbedder()))

    def not_installed(name: str) -> HashEmbedder:
        raise ImportError("install the 'st' extra: pip install .[st]")

    app.state.service.make_embedder = not_installed
    with TestClient(app, client=NETWORK_CLIENT) as client:
        wait_ready(client)
        body = {"question": DEMO_QUESTION, "collection": "st-kb"}
        response = client.post("/v1/ask", json=body, headers=auth(QUERY))

    assert response.status_code == 503, response.text
    detail = response.json()["detail"]
    assert StEmbedder.name in detail and "install the 'st' extra" in detail


def test_rag_eval_asks_a_service_in_the_collection_named(client: TestClient) -> None:
    from eval.runner import http_asker

    asking = TestClient(client.app, client=NETWORK_CLIENT, headers=auth(QUERY))

    answer = http_asker(asking, REGS)(HANDBOOK_QUESTION, 5, ())  # type: ignore[arg-type]

    assert cited_files(answer) == {HANDBOOK}
