"""Managing documents over HTTP: upload as background jobs, delete, and reading meanwhile."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.settings import ServiceSettings
from tests.api import api_client, without_tokens
from tests.fakes import GatedEmbedder, HashEmbedder

NEW_DOC = "熊猫基地位于成都北郊。\n\n大熊猫每天要吃十二个小时的竹子。\n".encode()
PANDA = "大熊猫每天吃多久的竹子？"


@pytest.fixture
def settings(tmp_path: Path) -> ServiceSettings:
    return ServiceSettings(index_dir=tmp_path / "index", dense_floor=0.0, max_upload_files=3)


@pytest.fixture
def client(settings: ServiceSettings) -> Iterator[TestClient]:
    with api_client(settings, HashEmbedder()) as test_client:
        yield test_client


def upload(client: TestClient, *files: tuple[str, bytes]) -> Any:
    return client.post(
        "/v1/documents", files=[("files", (name, data, "text/plain")) for name, data in files]
    )


def wait_job(client: TestClient, job_id: str) -> dict[str, Any]:
    for _ in range(500):
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in {"done", "failed"}:
            return job
        time.sleep(0.02)
    raise TimeoutError(job_id)


def files_listed(client: TestClient) -> set[str]:
    return {d["file"] for d in client.get("/v1/documents").json()["documents"]}


def test_documents_are_listed_with_their_counts(client: TestClient) -> None:
    documents = client.get("/v1/documents").json()["documents"]

    assert len(documents) == 5
    first = documents[0]
    assert first["id"] == first["file"]
    assert first["paragraphs"] > 0 and first["passages"] > 0
    assert len(first["content_hash"]) == 64 and first["ingested_at"]


def test_an_uploaded_file_is_ingested_in_the_background_and_answers(client: TestClient) -> None:
    response = upload(client, ("panda.txt", NEW_DOC))

    assert response.status_code == 202
    assert response.json()["files"] == ["panda.txt"]
    job = wait_job(client, response.json()["job_id"])
    assert job["status"] == "done", job
    assert job["report"]["files"] == 1 and job["report"]["new_passages"] >= 1
    assert "panda.txt" in files_listed(client)
    answer = client.post("/v1/ask", json={"question": PANDA}).json()
    assert answer["citations"][0]["file"] == "panda.txt"
    assert "十二个小时" in answer["answer"]


def test_a_bad_file_among_good_ones_is_reported_and_skipped(client: TestClient) -> None:
    binary = bytes(range(256)) * 8

    job = wait_job(
        client,
        upload(client, ("panda.txt", NEW_DOC), ("broken.txt", binary)).json()["job_id"],
    )

    assert job["status"] == "done"
    assert [s["path"] for s in job["report"]["skipped"]] == ["broken.txt"]
    assert job["report"]["skipped"][0]["reason"]
    assert "panda.txt" in files_listed(client) and "broken.txt" not in files_listed(client)


def test_uploading_a_document_again_emptied_removes_it_and_says_so(client: TestClient) -> None:
    wait_job(client, upload(client, ("panda.txt", NEW_DOC)).json()["job_id"])

    job = wait_job(client, upload(client, ("panda.txt", b" \n\n ")).json()["job_id"])

    assert job["status"] == "done" and job["report"]["skipped"] == []
    [removed] = job["report"]["removed"]
    assert removed["path"] == "panda.txt" and "removed" in removed["reason"]
    assert "panda.txt" not in files_listed(client)
    answer = client.post("/v1/ask", json={"question": PANDA}).json()
    assert all(c["file"] != "panda.txt" for c in answer["citations"])


def test_deleting_a_document_removes_it_from_answers(
    client: TestClient, settings: ServiceSettings
) -> None:
    wait_job(client, upload(client, ("panda.txt", NEW_DOC)).json()["job_id"])

    response = client.delete("/v1/documents/panda.txt")

    assert response.json() == {"deleted": "panda.txt"}
    assert "panda.txt" not in files_listed(client)
    assert not (settings.uploads / "panda.txt").exists()
    answer = client.post("/v1/ask", json={"question": PANDA}).json()
    assert all(c["file"] != "panda.txt" for c in answer["citations"])
    assert client.delete("/v1/documents/panda.txt").status_code == 404


@pytest.mark.parametrize(
    ("files", "status", "message"),
    [
        ([("notes.wps", b"\xd0\xcf\x11\xe0")], 415, "unsupported file type"),
        ([(".hidden.txt", b"x")], 400, "not a usable file name"),
        ([("a.txt", b"x"), ("dir/a.txt", b"y")], 400, "same name"),
        ([(f"{i}.txt", b"x") for i in range(4)], 413, "the limit is 3"),
    ],
)
def test_refused_uploads_store_nothing(
    client: TestClient,
    settings: ServiceSettings,
    files: list[tuple[str, bytes]],
    status: int,
    message: str,
) -> None:
    response = upload(client, *files)

    assert response.status_code == status
    assert message in response.json()["detail"]
    assert not settings.uploads.exists() or not any(settings.uploads.iterdir())


def test_an_upload_name_cannot_leave_the_upload_directory(
    client: TestClient, settings: ServiceSettings, tmp_path: Path
) -> None:
    response = upload(client, ("../../escape.txt", NEW_DOC))

    assert response.json()["files"] == ["escape.txt"]
    wait_job(client, response.json()["job_id"])
    assert (settings.uploads / "escape.txt").exists()
    assert not (tmp_path / "escape.txt").exists()
    assert not (settings.uploads.parent.parent / "escape.txt").exists()


def test_an_oversized_file_is_413(tmp_path: Path) -> None:
    settings = ServiceSettings(index_dir=tmp_path / "index", dense_floor=0.0, max_upload_mb=1)
    with api_client(settings, HashEmbedder()) as client:
        response = upload(client, ("big.txt", "字".encode() * 400_000))

    assert response.status_code == 413
    assert "big.txt is larger than the 1 MB limit" in response.json()["detail"]


def test_an_unknown_job_is_404(client: TestClient) -> None:
    assert client.get("/v1/jobs/nope").status_code == 404


def test_readers_see_the_last_committed_index_while_a_job_writes(tmp_path: Path) -> None:
    """Freeze an ingestion inside its transaction: queries still see the committed state."""
    embedder = GatedEmbedder()
    settings = ServiceSettings(index_dir=tmp_path / "index", dense_floor=0.0)
    with api_client(settings, embedder) as client:
        before = client.post("/v1/ask", json={"question": PANDA}).json()
        embedder.hold.set()
        job_id = upload(client, ("panda.txt", NEW_DOC)).json()["job_id"]
        assert embedder.waiting.wait(timeout=10)

        # Mid-ingestion: the document row is written but not committed.
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "running"
        with ThreadPoolExecutor(4) as pool:
            answers = list(
                pool.map(
                    lambda _: client.post("/v1/ask", json={"question": PANDA}).json(), range(8)
                )
            )
        assert "panda.txt" not in files_listed(client)
        expected = without_tokens(before["citations"])
        assert all(without_tokens(a["citations"]) == expected for a in answers)
        assert client.get("/v1/documents/panda.txt/paragraphs/1").status_code == 404

        embedder.release.set()
        assert wait_job(client, job_id)["status"] == "done"
        assert "panda.txt" in files_listed(client)
        after = client.post("/v1/ask", json={"question": PANDA}).json()
        assert after["citations"][0]["file"] == "panda.txt"


def test_while_another_process_writes_a_delete_is_503_and_an_upload_waits(
    client: TestClient, settings: ServiceSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rag.store.lock import WriteLock
    from service.routes import documents

    monkeypatch.setattr(documents, "DELETE_WAIT_S", 0.2)
    other_process = WriteLock(settings.index_dir, timeout=0)
    with other_process():
        response = client.delete("/v1/documents/001_f59391d5d2b02854.txt")
        assert response.status_code == 503
        assert response.headers["retry-after"]
        assert "being written by another process" in response.json()["detail"]
        job = upload(client, ("panda.txt", NEW_DOC)).json()
        time.sleep(0.3)
        assert client.get(f"/v1/jobs/{job['job_id']}").json()["status"] == "running"
    assert wait_job(client, job["job_id"])["status"] == "done"
    assert "001_f59391d5d2b02854.txt" in files_listed(client)
    assert "panda.txt" in files_listed(client)
