"""Collections (knowledge bases): list, create, remove; and `GET /v1/models`, the collections
a key may use as OpenAI clients expect them."""

from __future__ import annotations

import shutil
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from fastapi import Path as PathParam

from rag.collections import (
    DEFAULT,
    NAME_PATTERN,
    NAME_RULE,
    CollectionExists,
    InvalidCollectionName,
    NoSuchCollection,
)
from rag.pipeline import index_config
from rag.store.lock import IndexBusyError
from service.auth import Caller
from service.deps import AskAccess, ManageAccess, PipelinesDep, StateDep, scoped_collection
from service.routes.ask import ERRORS
from service.routes.documents import DELETE_WAIT_S
from service.schemas import (
    CollectionCreate,
    CollectionOut,
    CollectionsOut,
    ErrorOut,
    ModelsOut,
)
from service.state import ServiceState

router = APIRouter(prefix="/v1", tags=["collections"], max_body_size=64 * 1024, responses=ERRORS)

CONFLICT: dict[int | str, dict[str, Any]] = {409: {"model": ErrorOut}}


def _visible(caller: Caller, state: ServiceState) -> list[str]:
    return [name for name in state.collections.names() if caller.may_use(name)]


@router.get("/collections", response_model=CollectionsOut)
def list_collections(caller: ManageAccess, state: StateDep) -> dict[str, Any]:
    """The collections this key may use, with the settings each was built with."""
    collections = state.collections
    out = []
    for name in _visible(caller, state):
        try:
            config = collections.config(name)
        except NoSuchCollection:
            continue  # removed while listing
        out.append(
            {
                "name": name,
                "embedder": config.embedder if config else None,
                "tokenizer": config.tokenizer if config else None,
                "chunk_size": config.chunk_size if config else None,
            }
        )
    return {"collections": out}


@router.post("/collections", status_code=201, response_model=CollectionOut, responses=CONFLICT)
def create_collection(
    caller: ManageAccess, body: CollectionCreate, state: StateDep, pipelines: PipelinesDep
) -> dict[str, Any]:
    """Create an empty collection, built with the service's embedder and settings, or the
    tokenizer and chunk size given.

    Upload into it with `POST /v1/documents?collection=NAME`.
    """
    name = scoped_collection(body.name, caller, state, exists=False)
    overrides = {
        k: v for k, v in (("tokenizer", body.tokenizer), ("chunk_size", body.chunk_size)) if v
    }
    if state.collections.exists(name):  # before loading a model for nothing
        raise HTTPException(409, f"collection {name!r} already exists")
    settings = state.settings.model_copy(update=overrides)
    embedder = pipelines.default.embedder
    config = index_config(settings, embedder).with_tokenizer_of(None)  # a new index's
    try:
        state.collections.create(name, config)
    except CollectionExists as err:
        raise HTTPException(409, str(err)) from err
    except InvalidCollectionName as err:  # a reserved name
        raise HTTPException(422, str(err)) from err
    except IndexBusyError as err:  # a writer of a removed namesake still at it
        raise HTTPException(503, str(err), headers={"Retry-After": "30"}) from err
    return {
        "name": name,
        "embedder": embedder.name,
        "tokenizer": config.tokenizer,
        "chunk_size": config.chunk_size,
    }


@router.delete(
    "/collections/{name:path}",
    status_code=200,
    responses={404: {"model": ErrorOut}, **CONFLICT},
)
def delete_collection(
    caller: ManageAccess,
    name: Annotated[
        str,
        PathParam(
            description=f"The collection: {NAME_RULE}",
            json_schema_extra={"pattern": f"^{NAME_PATTERN.pattern}$"},
        ),
    ],
    state: StateDep,
    pipelines: PipelinesDep,
) -> dict[str, str]:
    """Remove a collection and everything of it: documents, passages, vectors, uploads.

    Waits for an ingestion running on it (503 past a few seconds); queries running on it
    finish on the files they have open.
    """
    name = scoped_collection(name, caller, state)
    if name == DEFAULT:
        raise HTTPException(409, "the default collection cannot be removed; delete its documents")
    collections = replace(state.collections, lock_timeout=DELETE_WAIT_S)
    try:
        # Read from the collection, so gone too if another process removed it since the check.
        uploads = pipelines.settings_for(name).uploads
        collections.remove(name)
    except NoSuchCollection as err:  # removed by someone else meanwhile
        raise HTTPException(404, f"no collection {name!r}") from err
    except IndexBusyError as err:
        raise HTTPException(503, str(err), headers={"Retry-After": "30"}) from err
    pipelines.retire(name)
    if state.settings.upload_dir is not None:  # else they were inside the collection
        shutil.rmtree(uploads, ignore_errors=True)
    return {"deleted": name}


@router.get("/models", response_model=ModelsOut, tags=["openai"])
def list_models(caller: AskAccess, state: StateDep) -> dict[str, Any]:
    """The collections this key may ask, as OpenAI models: pass one as a chat's `model`."""
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "rag"}
            for name in _visible(caller, state)
        ],
    }
