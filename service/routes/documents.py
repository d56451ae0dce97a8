"""Documents: list, upload (ingested in the background), delete, read a cited paragraph.

Each route works on one collection, named by `?collection=` (default `default`).
"""

from __future__ import annotations

import hashlib
import mimetypes
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, HTTPException, Query, Response, UploadFile
from fastapi import Path as PathParam

from rag.collections import NoSuchCollection
from rag.pipeline import IngestReport
from rag.store.base import ParagraphRow
from rag.store.lock import IndexBusyError
from service.auth import Role
from service.citation_tokens import CitationTokens, InvalidCitationToken
from service.deps import (
    CiteAccess,
    CitedCollection,
    InCollection,
    JobsDep,
    ManageAccess,
    ManagedCollection,
    PipelinesDep,
    ReadCollection,
    SearchAccess,
    SettingsDep,
    StateDep,
)
from service.jobs import Job
from service.routes.ask import ERRORS
from service.schemas import (
    DeletedOut,
    DocumentsOut,
    DocumentTextOut,
    ErrorOut,
    JobOut,
    ParagraphContextOut,
    UploadAccepted,
)
from service.uploads import UploadError, safe_name, sent_name

router = APIRouter(prefix="/v1", tags=["documents"], responses=ERRORS)

MB = 1024 * 1024
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut}}
# A delete is a request someone waits on: if another process (a `rag ingest` beside the
# service) holds the index this long, answer 503 rather than hold the connection.
DELETE_WAIT_S = 10.0
# Paragraph numbers are stored as 64-bit integers: SQLite cannot even compare with a larger
# one (OverflowError, a 500), and no document holds that many paragraphs.
ParagraphNumber = Annotated[int, PathParam(ge=-(2**63), le=2**63 - 1)]


@router.get("/documents", response_model=DocumentsOut)
def list_documents(_: ManageAccess, target: ManagedCollection) -> dict[str, Any]:
    return {
        "documents": [
            {
                "id": row.file,
                "file": row.file,
                "paragraphs": row.paragraphs,
                "passages": row.passages,
                "content_hash": row.content_hash,
                "encoding": row.encoding,
                "format": row.format,
                "ingested_at": row.ingested_at,
            }
            for row in target.pipeline.documents()
        ]
    }


@router.post(
    "/documents",
    status_code=202,
    response_model=UploadAccepted,
    responses={415: {"model": ErrorOut}},  # no loader reads its extension
)
def upload_documents(
    _: ManageAccess,
    files: Annotated[
        list[UploadFile],
        File(
            description="One or more documents; GET /openapi.json lists no types: see docs/api.md"
        ),
    ],
    settings: SettingsDep,
    jobs: JobsDep,
    pipelines: PipelinesDep,
    target: ManagedCollection,
) -> dict[str, Any]:
    """Store the files and queue their ingestion into the collection; poll
    `GET /v1/jobs/{job_id}`."""
    if len(files) > settings.max_upload_files:
        raise HTTPException(
            413, f"{len(files)} files sent; the limit is {settings.max_upload_files} per request"
        )
    try:
        names = [
            safe_name(sent_name(f.filename, f.headers.get("content-disposition"))) for f in files
        ]
        if len(set(names)) != len(names):
            raise UploadError(400, "two uploaded files have the same name")
        for upload, name in zip(files, names, strict=True):
            if (upload.size or 0) > settings.max_upload_mb * MB:
                raise UploadError(
                    413, f"{name} is larger than the {settings.max_upload_mb} MB limit"
                )
        # Checked all before storing any: a refused request leaves nothing behind. The job
        # store keeps the files until a worker (of any replica, with Redis) ingests them
        # into the collection (from its own upload directory).
        sent = [(n, f.file) for f, n in zip(files, names, strict=True)]
        job = jobs.submit(sent, target.name)
    except UploadError as err:
        raise HTTPException(err.status, err.detail) from err
    return {"job_id": job.id, "files": names}


@router.get("/jobs/{job_id}", response_model=JobOut, responses=NOT_FOUND)
def get_job(caller: ManageAccess, job_id: str, jobs: JobsDep) -> dict[str, Any]:
    job = jobs.get(job_id)
    if job is None or not caller.may_use(job.collection):  # out of scope: as if missing
        raise HTTPException(404, f"no job {job_id}")
    return _job_payload(job)


@router.delete("/documents/{file:path}", response_model=DeletedOut, responses=NOT_FOUND)
def delete_document(
    _: ManageAccess, file: str, target: ManagedCollection, pipelines: PipelinesDep
) -> dict[str, Any]:
    """Remove a document: its vectors, lexical postings and passages no other file holds."""
    try:
        removed = target.pipeline.remove(file, timeout=DELETE_WAIT_S)
    except IndexBusyError as err:
        raise HTTPException(503, str(err), headers={"Retry-After": "30"}) from err
    if not removed:
        raise HTTPException(404, f"no document {file!r}")
    try:
        uploads = pipelines.settings_for(target.name).uploads
    except NoSuchCollection as err:  # removed meanwhile, with its documents and uploads
        raise HTTPException(404, f"no collection {target.name!r}") from err
    uploaded = uploads / file
    if uploaded.parent.resolve() == uploads.resolve():
        uploaded.unlink(missing_ok=True)  # an uploaded copy would come back on re-ingest
    return {"deleted": file}


@router.get(
    "/documents/{file:path}/paragraphs/{number}",
    response_model=ParagraphContextOut,
    responses=NOT_FOUND,
)
def read_paragraph(
    caller: CiteAccess,
    file: str,
    number: ParagraphNumber,
    state: StateDep,
    target: CitedCollection,
    context: Annotated[int, Query(ge=0, le=5, description="Neighbours on each side")] = 1,
    token: Annotated[
        str | None,
        Query(
            max_length=200,
            description="The citation's `token`: required with a publishable key, which "
            "opens only paragraphs an answer cited",
        ),
    ] = None,
) -> dict[str, Any]:
    """A paragraph with its neighbours, so a citation can be read in context.

    A publishable key is public, and file names and paragraph numbers are easy to guess:
    it needs the citation's token, and gets at most `RAG_CITATION_CONTEXT` neighbours.
    """
    if caller.role is Role.PUBLISHABLE:
        # Checked before the index is read: a refused caller learns nothing, not even
        # whether the file exists.
        _check_citation(state.citations, token, file, number, target)
        context = min(context, state.settings.citation_context)
    found = target.pipeline.paragraph(file, number, context)
    if found is None:
        raise HTTPException(404, f"no document {file!r}")
    before, paragraph, after = found
    if paragraph is None:
        raise HTTPException(404, f"{file!r} has no paragraph {number}")
    return {
        "file": file,
        "paragraph": _paragraph(paragraph),
        "before": [_paragraph(p) for p in before],
        "after": [_paragraph(p) for p in after],
    }


@router.get("/documents/{file:path}/text", response_model=DocumentTextOut, responses=NOT_FOUND)
def read_text(_: SearchAccess, file: str, target: ReadCollection) -> dict[str, Any]:
    """The document's extracted text: what every citation's `char_start`/`char_end` index.

    For a PDF, Word or Excel file this is the text its loader extracted (pages separated by
    a line holding a form feed), not the file's bytes. Not for publishable keys: they read
    cited paragraphs only.
    """
    row = target.pipeline.document(file)
    if row is None:
        raise HTTPException(404, f"no document {file!r}")
    text = target.pipeline.document_text(file)
    if text is None:
        raise HTTPException(
            404, f"{file!r} was ingested before extracted texts were kept; ingest it again"
        )
    return {"file": file, "format": row.format, "text": text}


# Served inline: a browser shows these itself and runs nothing in them. Anything else (an
# HTML or Markdown file, an Office file) is a download, so that a document never runs as a
# page of this service's origin.
INLINE_TYPES = frozenset({"application/pdf", "image/png", "image/jpeg", "image/tiff"})


@router.get(
    "/documents/{file:path}/raw",
    response_class=Response,
    responses={
        **NOT_FOUND,
        200: {
            "description": "The original file",
            "content": {t: {} for t in (*sorted(INLINE_TYPES), "application/octet-stream")},
        },
    },
)
def read_raw(
    caller: CiteAccess,
    file: str,
    state: StateDep,
    target: CitedCollection,
    paragraph: Annotated[
        int | None, Query(ge=1, description="With a publishable key: the cited paragraph")
    ] = None,
    token: Annotated[
        str | None,
        Query(max_length=200, description="With a publishable key: that citation's `token`"),
    ] = None,
) -> Response:
    """The original file as it was ingested (a PDF opens at a page with `#page=N`).

    Same access as a paragraph: a publishable key needs a citation of this file, named by
    its `paragraph` and `token`, and is refused when RAG_PUBLISHABLE_ORIGINALS is false.
    """
    if caller.role is Role.PUBLISHABLE:
        if not state.settings.publishable_originals:
            raise HTTPException(
                403,
                "this service gives publishable keys no original files "
                "(RAG_PUBLISHABLE_ORIGINALS): open the cited paragraph with its token",
            )
        if token and paragraph is None:  # else "not issued for paragraph 0", as if forged
            raise HTTPException(
                403,
                "a citation token opens the original with the paragraph it cites: send the "
                "citation's paragraph as ?paragraph= beside its token",
            )
        _check_citation(state.citations, token, file, paragraph or 0, target)
    row = target.pipeline.document(file)
    if row is None:
        raise HTTPException(404, f"no document {file!r}")
    try:
        data = Path(row.path).read_bytes()
    except OSError:
        data = b""
    # The index keeps passages, not files: the original is served only while the file it
    # was read from still holds exactly what was ingested.
    if hashlib.sha256(data).hexdigest() != row.content_hash:
        raise HTTPException(404, f"the original of {file!r} has changed or gone since ingest")
    media = mimetypes.guess_type(file)[0] or "application/octet-stream"
    disposition = "inline" if media in INLINE_TYPES else "attachment"
    name = Path(file).name
    return Response(
        data,
        media_type=media if disposition == "inline" else "application/octet-stream",
        headers={
            "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(name, safe='')}",
            "X-Content-Type-Options": "nosniff",
        },
    )


def _check_citation(
    tokens: CitationTokens, token: str | None, file: str, number: int, target: InCollection
) -> None:
    if not token:
        raise HTTPException(
            403,
            "a publishable key opens only paragraphs an answer cited: send the citation's "
            "token as ?token=",
        )
    try:
        grant = tokens.verify(token, file, number, time.time(), target.name)
    except InvalidCitationToken as err:
        raise HTTPException(403, str(err)) from err
    # The name is the same, but a file deleted and uploaded again under it is another text:
    # its paragraph N is not what the answer quoted.
    row = target.pipeline.document(file)
    if row is not None and not grant.cites(row.content_hash):
        raise HTTPException(
            403,
            f"{file!r} has changed since the answer cited it: the citation token opens the "
            "version it cited only; ask the question again for fresh citations",
        )


def _paragraph(row: ParagraphRow) -> dict[str, Any]:
    return asdict(row)


def _report(report: IngestReport) -> dict[str, Any]:
    return {
        "files": report.files,
        "unchanged": report.unchanged,
        "paragraphs": report.paragraphs,
        "passages": report.chunks,
        "new_passages": report.new_passages,
        "duplicates_merged": report.duplicates_merged,
        # The name the client uploaded, not where the server keeps it.
        "skipped": [{"path": Path(s.path).name, "reason": s.reason} for s in report.skipped],
        "notes": [{"path": Path(n.path).name, "reason": n.reason} for n in report.notes],
        "removed": [{"path": Path(r.path).name, "reason": r.reason} for r in report.removed],
        "seconds": round(report.seconds, 3),
    }


def _job_payload(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "collection": job.collection,
        "status": job.status,
        "files": job.files,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "report": None if job.report is None else _report(job.report),
        "error": job.error,
    }
