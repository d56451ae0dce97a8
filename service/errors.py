"""Error bodies the framework would otherwise get wrong: every refusal is `{"detail": ...}` JSON.

Two cases found by hostile-request tests (tests/test_hostile_requests.py): validation errors
whose echoed input JSON cannot carry (they became 500s), and the request-body limit, which
Starlette answers in plain text from outside every exception handler.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def writable_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """FastAPI's 422 body, less the echoed input of errors whose input JSON cannot carry.

    FastAPI echoes each invalid value back, and some cannot be written as JSON: NaN and
    Infinity (which Python's JSON parser accepts) and lone surrogates ("\\ud800"). Each
    error once: FastAPI reports a body error again for every dependency that reads the body
    (the route and the one that finds its collection).
    """
    written: list[dict[str, Any]] = []
    for error in jsonable_encoder(errors):
        try:
            json.dumps(error, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except ValueError:  # UnicodeEncodeError is one
            error = {k: v for k, v in error.items() if k not in {"input", "ctx"}}
        if error not in written:
            written.append(error)
    return written


class JsonTooLarge:
    """Rewrites Starlette's plain-text "413 Content Too Large" as a JSON error with the limit.

    The body limit (FastAPI's `max_body_size`) sends its 413 itself, whatever the route's
    handler answered, so only a middleware outside it can change the response.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replacing = False

        async def send_json(message: Message) -> None:
            nonlocal replacing
            if message["type"] == "http.response.start" and message["status"] == 413:
                content_type = Headers(raw=message.get("headers", [])).get("content-type", "")
                replacing = content_type.startswith("text/plain")
            if not replacing:
                await send(message)
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                limit = scope.get(MAX_BODY_SIZE_SCOPE_KEY)
                where = f" of {_size(limit)}" if isinstance(limit, int) else ""
                detail = f"the request body is larger than this endpoint's limit{where}"
                await JSONResponse({"detail": detail}, 413)(scope, receive, send)

        await self.app(scope, receive, send_json)


def _size(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):g} MB"
    return f"{n / (1 << 10):g} KB"
