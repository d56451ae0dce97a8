"""A STUB OpenAI-compatible chat server for tests, and a way to serve any ASGI app on loopback.

Not a model: every request gets the `Reply` the test scripted, over real HTTP on 127.0.0.1, so
the real LangChain client, the openai SDK and httpx run end to end, errors and timeouts
included. `requests` records what the stub was sent (the prompt, the headers).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.types import ASGIApp

from bench.service import free_port

GOOD = "质检总局局长是支树平[1]。他出席会议并讲话[1]。"


@dataclass
class Reply:
    """What the stub answers next, and how."""

    text: str = GOOD
    status: int = 200  # anything else: an OpenAI-style error with this status
    delay: float = 0.0  # seconds before the response starts (a slow model)
    chunk_chars: int = 3  # characters per streamed chunk
    gap: float = 0.0  # seconds between streamed chunks (a trickling model)
    # Streamed only: drop the connection after this many chunks (a crash mid-answer) ...
    fail_after: int | None = None
    # ... or wait for `StubLLM.release` after this many chunks (a test watches meanwhile).
    hold_after: int | None = None


@dataclass
class Seen:
    """One request the stub received."""

    body: dict[str, Any]
    authorization: str

    @property
    def system(self) -> str:
        return str(self.body["messages"][0]["content"])

    @property
    def user(self) -> str:
        return str(self.body["messages"][-1]["content"])


@dataclass
class StubLLM:
    """STUB: an OpenAI-compatible `/v1/chat/completions` that replays `reply`."""

    reply: Reply = field(default_factory=Reply)
    requests: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    closing: threading.Event = field(default_factory=threading.Event)  # ends delays early
    url: str = ""  # the base URL, ".../v1", once served

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def completions(request: Request) -> Response:
            body = await request.json()
            authorization = request.headers.get("authorization", "")
            self.requests.append(Seen(body, authorization))
            reply = self.reply
            if reply.delay:
                await asyncio.to_thread(self.closing.wait, reply.delay)
            if reply.status != 200:
                # Echoes the credentials it got, as careless servers do: the service must
                # still never show them.
                error = {"message": f"scripted failure for {authorization}", "type": "stub"}
                headers = {"Retry-After": "1"} if reply.status == 429 else {}
                return JSONResponse({"error": error}, reply.status, headers)
            if body.get("stream"):
                events = self._events(reply, body["model"])
                return StreamingResponse(events, media_type="text/event-stream")
            return JSONResponse(_completion(reply.text, body["model"]))

        return app

    async def _events(self, reply: Reply, model: str) -> AsyncIterator[bytes]:
        size = reply.chunk_chars
        pieces = [reply.text[i : i + size] for i in range(0, len(reply.text), size)]
        for sent, piece in enumerate(pieces):
            if sent == reply.fail_after:
                raise ConnectionAbortedError("STUB: dropping the stream midway")
            if sent == reply.hold_after:
                await asyncio.to_thread(self.release.wait, 30)
            if sent and reply.gap:
                await asyncio.sleep(reply.gap)
            yield _event(_chunk(model, {"role": "assistant", "content": piece}))
        yield _event(_chunk(model, {}, "stop"))
        yield b"data: [DONE]\n\n"


def _completion(text: str, model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _chunk(model: str, delta: dict[str, str], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _event(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


@contextmanager
def serve(app: ASGIApp) -> Iterator[str]:
    """`app` served by uvicorn on a free 127.0.0.1 port in a thread; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop="asyncio",
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the server on port {port} did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def running_stub() -> Iterator[StubLLM]:
    """A STUB LLM served on loopback; `stub.url` is its OpenAI base URL."""
    stub = StubLLM()
    with serve(stub.app()) as url:
        stub.url = f"{url}/v1"
        try:
            yield stub
        finally:
            # Let held streams and slow replies finish, so the server can stop.
            stub.closing.set()
            stub.release.set()
