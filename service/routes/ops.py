"""Operations: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from service.deps import ManageAccess, StateDep
from service.schemas import ErrorOut, StatusOut

router = APIRouter(tags=["ops"])


# HEAD too: uptime monitors and load balancers probe with it (a GET route alone answers 405).
@router.api_route(
    "/healthz",
    methods=["GET", "HEAD"],
    response_model=StatusOut,
    response_model_exclude_none=True,
)
async def healthz() -> dict[str, str]:
    """The process is up (it may still be loading; see /readyz)."""
    return {"status": "ok"}


@router.api_route(
    "/readyz",
    methods=["GET", "HEAD"],
    response_model=StatusOut,
    responses={503: {"model": StatusOut}},
)
async def readyz(state: StateDep) -> JSONResponse:
    """The index and the model are loaded and queries can be answered."""
    if state.pipeline is not None:
        return JSONResponse({"status": "ready"})
    if state.error:
        return JSONResponse({"status": "failed", "detail": state.error}, 503)
    if state.waiting:  # a store is away: loading is tried again
        return JSONResponse({"status": "waiting", "detail": state.waiting}, 503)
    return JSONResponse({"status": "loading", "detail": "loading the index and the model"}, 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={code: {"model": ErrorOut} for code in (401, 403)},
)
def metrics(caller: ManageAccess, state: StateDep) -> Response:
    """Prometheus text format (an admin key of every collection is needed when keys are
    configured)."""
    if caller.collections is not None:
        # The metrics name every open collection, its documents and its traffic, which a
        # key scoped to some collections may not learn of.
        raise HTTPException(403, "the metrics cover every collection: this key reaches only some")
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
