"""The FastAPI app: `create_app()` wires settings, auth, metrics, routes and the lifespan.

Run it with `rag serve`, or `uvicorn --factory service.app:create_app`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from rag.store.base import StoreUnavailableError
from service.admission import Admission
from service.auth import Gate
from service.errors import JsonTooLarge, writable_errors
from service.metrics import MetricsMiddleware
from service.redact import SERVER_LOGGERS, RedactKeys
from service.routes import ask, chat, collections, documents, ops, widget
from service.settings import ServiceSettings, get_service_settings
from service.shared import StateUnavailable, describe_state, make_rate_storage
from service.state import LoadPipeline, ServiceState, load_default_pipeline

log = logging.getLogger("rag.service")


def create_app(
    settings: ServiceSettings | None = None, load_pipeline: LoadPipeline = load_default_pipeline
) -> FastAPI:
    """The service app; the index and the model load in the background after start-up.

    Args:
        settings: defaults to `get_service_settings()` (the `RAG_*` environment).
        load_pipeline: opens the pipeline from settings; tests inject a fake-embedder one.
    """
    settings = settings or get_service_settings()
    state = ServiceState(settings, Gate(settings, make_rate_storage(settings)))
    # Keys stay out of the logs, even when a client puts one in a URL.
    llm_key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else ""
    redaction = RedactKeys(
        [
            *settings.admin_keys,
            *settings.query_keys,
            *settings.publishable_keys,
            *settings.citation_secrets,
            llm_key,
        ]
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if settings.open_access:
            log.warning(
                "no API keys configured: every endpoint is open, so only loopback clients "
                "(127.0.0.1) are served"
            )
        if settings.publishable_keys and not settings.citation_secrets:
            log.warning(
                "RAG_CITATION_SECRETS is not set: citation tokens are signed with a random "
                "secret of this process, so they stop working when it restarts and are not "
                "accepted by other replicas"
            )
        if settings.redis_url:
            log.info("state: %s", describe_state(settings))
        else:
            log.warning("state: %s", describe_state(settings))
        loading = asyncio.create_task(asyncio.to_thread(state.load, load_pipeline))
        for name in SERVER_LOGGERS:
            logging.getLogger(name).addFilter(redaction)
        try:
            yield
        finally:
            for name in SERVER_LOGGERS:
                logging.getLogger(name).removeFilter(redaction)
            state.stop_loading()
            await loading
            await asyncio.to_thread(state.close)

    app = ServiceApp(
        title="Chinese documents QA",
        version="1.0",
        summary="Answers from your documents, every claim cited by file and paragraph.",
        lifespan=lifespan,
        # Uploads are the largest bodies; other routes set smaller limits of their own.
        max_body_size=settings.max_upload_files * settings.max_upload_mb * 1024 * 1024,
    )
    app.state.service = state
    # Bounds the query routes (their `AskCollection`-like dependencies); other routes are never
    # shed by it.
    app.state.admission = admission = Admission(
        settings.max_inflight, settings.max_queue, settings.queue_timeout_s
    )
    state.metrics.track_admission(admission)
    for module in (ask, chat, documents, collections, ops, widget):
        app.include_router(module.router)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": writable_errors(err.errors())}, 422)

    @app.exception_handler(sqlite3.Error)
    async def store_failed(request: Request, err: sqlite3.Error) -> JSONResponse:
        # Writers take turns through the write lock and readers never block in WAL mode,
        # so this is the store file itself in trouble: say so, and that it may pass.
        log.error("index store error on %s %s: %s", request.method, request.url.path, err)
        return JSONResponse(
            {"detail": "the index store is unavailable; try again later"},
            503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(StoreUnavailableError)
    async def store_unreachable(request: Request, err: StoreUnavailableError) -> JSONResponse:
        # A Milvus server down or unreachable: the request may succeed once it is back.
        log.error("index store error on %s %s: %s", request.method, request.url.path, err)
        return JSONResponse(
            {"detail": "the index store (Milvus) is unavailable; try again later"},
            503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(StateUnavailable)
    async def state_unavailable(request: Request, err: StateUnavailable) -> JSONResponse:
        # Redis is down or unreachable: the request may succeed once it is back. Queries
        # need no shared state and keep being answered meanwhile.
        log.error("shared state unavailable on %s %s: %s", request.method, request.url.path, err)
        return JSONResponse(
            {"detail": f"{err}; try again later"}, 503, headers={"Retry-After": "5"}
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; see the service log"}, 500)

    # Without keys the pages of this machine are served (`LoopbackOnly`): CORS lets them in too.
    cors = LocalPagesCors if settings.open_access else CORSMiddleware
    app.add_middleware(
        cors,
        allow_origins=state.gate.allowed_origins,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "X-API-Key"],
        max_age=600,
    )
    if settings.open_access:
        app.add_middleware(LoopbackOnly, allowed_origins=state.gate.allowed_origins)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app


class ServiceApp(FastAPI):
    """FastAPI, with the body limit's 413 written as JSON like every other error."""

    def build_middleware_stack(self) -> ASGIApp:
        # The body limit sits outside every middleware `add_middleware` can add.
        return JsonTooLarge(super().build_middleware_stack())


class LocalPagesCors(CORSMiddleware):
    """CORS for the allowed origins and every page of this machine, for a service without keys.

    `LoopbackOnly` serves the pages of this machine (a development server on another port):
    their scripts must be able to read the answers too, or the widget on them fails as if
    the service were down.
    """

    def is_allowed_origin(self, origin: str) -> bool:
        return _is_local(origin) or super().is_allowed_origin(origin)


class LoopbackOnly:
    """Without keys the service is open, so it answers loopback clients only.

    `rag serve` also binds to 127.0.0.1 then; this guards a service started some other way
    (say `uvicorn --host 0.0.0.0`) from being open to the network. Web pages are clients
    too: any page the user visits may post a form to 127.0.0.1 (an upload needs no CORS
    preflight), so a request a browser marks with a foreign `Origin` is refused as well.
    """

    def __init__(self, app: ASGIApp, allowed_origins: list[str]) -> None:
        self.app = app
        self.allowed_origins = frozenset(allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            detail = self._refusal(scope)
            if detail:
                await JSONResponse({"detail": detail}, 403)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> str | None:
        if not _is_loopback(scope.get("client")):
            return "this service has no API keys configured and serves only 127.0.0.1"
        headers = Headers(scope=scope)
        # DNS rebinding: a page of evil.example whose name is made to resolve to 127.0.0.1
        # is same-origin with us to the browser, sends no foreign Origin on GETs, and could
        # read the answers. Its requests still name evil.example in `Host`.
        host = headers.get("host", "")
        if not _is_local(f"http://{host}") and not any(
            urlsplit(allowed).netloc == host for allowed in self.allowed_origins
        ):
            return (
                "this service has no API keys configured and answers only requests "
                f"addressed to 127.0.0.1 or localhost, not {host!r}"
            )
        origin = headers.get("origin")
        if origin and origin.rstrip("/") not in self.allowed_origins and not _is_local(origin):
            return (
                f"this service has no API keys configured and serves pages of 127.0.0.1 "
                f"only, not {origin}"
            )
        return None


def _is_loopback(client: tuple[str, int] | None) -> bool:
    if client is None:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


def _is_local(origin: str) -> bool:
    """A web origin on this machine: http(s)://localhost, 127.0.0.1 or [::1], any port."""
    try:
        parts = urlsplit(origin)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme not in {"http", "https"} or host is None:
        return False
    return host == "localhost" or _is_loopback((host, 0))
