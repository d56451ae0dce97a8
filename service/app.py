"""The FastAPI app: `create_app()` wires settings, auth, metrics, routes and the lifespan.

Run it with `rag serve`, or `uvicorn --factory service.app:create_app`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from rag.settings import Settings, get_settings
from service.auth import Gate
from service.metrics import MetricsMiddleware
from service.routes import ask, chat, documents, ops, widget
from service.state import LoadPipeline, ServiceState, load_default_pipeline

log = logging.getLogger("rag.service")


def create_app(
    settings: Settings | None = None, load_pipeline: LoadPipeline = load_default_pipeline
) -> FastAPI:
    """The service app; the index and the model load in the background after start-up.

    Args:
        settings: defaults to `get_settings()` (the `RAG_*` environment).
        load_pipeline: opens the pipeline from settings; tests inject a fake-embedder one.
    """
    settings = settings or get_settings()
    state = ServiceState(settings, Gate(settings))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if settings.open_access:
            log.warning(
                "no API keys configured: every endpoint is open, so only loopback clients "
                "(127.0.0.1) are served"
            )
        loading = asyncio.create_task(asyncio.to_thread(state.load, load_pipeline))
        try:
            yield
        finally:
            await loading
            await asyncio.to_thread(state.close)

    app = FastAPI(
        title="Chinese documents QA",
        version="1.0",
        summary="Answers from your documents, every claim cited by file and paragraph.",
        lifespan=lifespan,
        # Uploads are the largest bodies; other routes set smaller limits of their own.
        max_body_size=settings.max_upload_files * settings.max_upload_mb * 1024 * 1024,
    )
    app.state.service = state
    for module in (ask, chat, documents, ops, widget):
        app.include_router(module.router)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; see the service log"}, 500)

    app.add_middleware(
        CORSMiddleware,
        allow_origins=state.gate.allowed_origins,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "X-API-Key"],
        max_age=600,
    )
    if settings.open_access:
        app.add_middleware(LoopbackOnly)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app


class LoopbackOnly:
    """Without keys the service is open, so it answers loopback clients only.

    `rag serve` also binds to 127.0.0.1 then; this guards a service started some other way
    (say `uvicorn --host 0.0.0.0`) from being open to the network.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not _is_loopback(scope.get("client")):
            response = JSONResponse(
                {"detail": "this service has no API keys configured and serves only 127.0.0.1"},
                403,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _is_loopback(client: tuple[str, int] | None) -> bool:
    if client is None:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False
