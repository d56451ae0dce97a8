"""Named FastAPI dependencies: the state, the pipeline, access checks, validated questions.

They are `async def` although none awaits: FastAPI runs a plain `def` dependency in the
thread pool, and half a dozen thread hops per request showed up in the HTTP overhead.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request

from rag.pipeline import Pipeline
from rag.types import Turn
from rag.wire import CitationSigner
from service.admission import Admission, Overloaded
from service.auth import AccessDenied, Action, Caller, Role
from service.jobs import JobQueue
from service.schemas import AskRequest, ChatRequest, TurnIn, unicode_text
from service.settings import ServiceSettings
from service.state import ServiceState


async def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]


async def get_settings(state: StateDep) -> ServiceSettings:
    return state.settings


SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]


def _not_ready(state: ServiceState) -> HTTPException:
    if state.error:
        return HTTPException(503, f"the service failed to load: {state.error}")
    return HTTPException(503, "the index and the model are still loading", {"Retry-After": "2"})


async def get_pipeline(state: StateDep) -> Pipeline:
    if state.pipeline is None:
        raise _not_ready(state)
    return state.pipeline


PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]


async def admitted_pipeline(
    request: Request, state: StateDep, pipeline: PipelineDep
) -> AsyncIterator[Pipeline]:
    """The pipeline, with a query slot held until the response has been sent.

    Declared after the access check and the body in a route's signature, so that a caller
    without a key, rate-limited, or with a bad body is answered without taking a slot or a
    place in the queue. For a stream the slot covers the answer's events too: they are
    written as soon as the pipeline returns, so that is pipeline time plus the writes (see
    docs/benchmarks.md, "Load").
    """
    admission: Admission = request.app.state.admission
    try:
        await admission.acquire()
    except Overloaded as err:
        route = getattr(request.scope.get("route"), "path", "unmatched")
        state.metrics.shed.labels(route, err.reason.value).inc()
        raise HTTPException(503, err.detail, {"Retry-After": str(err.retry_after_s)}) from err
    try:
        yield pipeline
    finally:
        admission.release()


# The query routes' pipeline: ask, stream, search and chat run under admission control.
AdmittedPipeline = Annotated[Pipeline, Depends(admitted_pipeline)]


async def get_jobs(state: StateDep) -> JobQueue:
    if state.jobs is None:
        raise _not_ready(state)
    return state.jobs


JobsDep = Annotated[JobQueue, Depends(get_jobs)]


def api_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    # Servers strip spaces around a header value; an in-process client may not.
    return request.headers.get("x-api-key", "").strip() or None


def request_origin(request: Request) -> str | None:
    """The web origin a request comes from: `Origin`, else the origin of `Referer`.

    Browsers send no `Origin` on a same-origin GET (the widget opening a cited paragraph on
    the page that hosts it); the widget's referrer policy "origin" makes `Referer` carry
    exactly the page's origin instead.
    """
    origin = request.headers.get("origin")
    if origin:
        return origin
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.scheme and referer.netloc:
        return f"{referer.scheme}://{referer.netloc}"
    return None


def _access(action: Action) -> object:
    async def check(request: Request, state: StateDep) -> Caller:
        client = request.client.host if request.client else "unknown"
        own_origin = f"{request.url.scheme}://{request.url.netloc}"
        try:
            return state.gate.check(
                action, api_key(request), request_origin(request), own_origin, client
            )
        except AccessDenied as err:
            raise HTTPException(err.status, err.detail, err.headers) from err

    return Depends(check)


AskAccess = Annotated[Caller, _access(Action.ASK)]
SearchAccess = Annotated[Caller, _access(Action.SEARCH)]
CiteAccess = Annotated[Caller, _access(Action.CITE)]
ManageAccess = Annotated[Caller, _access(Action.MANAGE)]


async def citation_signer(state: StateDep) -> CitationSigner:
    """Signs each citation of this request's answer with a token valid from now."""
    tokens, now = state.citations, time.time()
    return lambda citation: tokens.issue(
        citation.file, citation.paragraph, citation.passage_id, now
    )


# The `token` of every citation an answer returns (see service/citation_tokens.py).
CitationSignerDep = Annotated[CitationSigner, Depends(citation_signer)]


def checked_question(text: str, settings: ServiceSettings) -> str:
    """The question stripped, or a 422 saying why it cannot be asked."""
    question = text.strip()
    if not question:
        raise HTTPException(422, "the question is empty")
    try:
        unicode_text(question)  # the text parts of chat content are not `Text`
    except ValueError as err:
        raise HTTPException(422, str(err)) from err
    if len(question) > settings.max_question_chars:
        raise HTTPException(
            422,
            f"the question is {len(question)} characters; "
            f"the limit is {settings.max_question_chars}",
        )
    return question


async def ask_question(body: AskRequest, settings: SettingsDep, caller: AskAccess) -> AskRequest:
    if caller.role is Role.PUBLISHABLE and body.top_k > settings.publishable_max_top_k:
        raise HTTPException(
            403,
            f"a publishable key may ask for at most {settings.publishable_max_top_k} passages "
            f"(top_k), not {body.top_k}",
        )
    checked_history([(t.question, t.answer) for t in body.history], settings)
    return AskRequest(
        question=checked_question(body.question, settings), top_k=body.top_k, history=body.history
    )


AskBody = Annotated[AskRequest, Depends(ask_question)]


def checked_history(turns: list[tuple[str, str]], settings: ServiceSettings) -> None:
    """A 422 naming the limit if the history has too many turns or characters."""
    if len(turns) > settings.max_history_turns:
        raise HTTPException(
            422,
            f"the history has {len(turns)} turns; the limit is {settings.max_history_turns} "
            "(RAG_MAX_HISTORY_TURNS)",
        )
    chars = sum(len(q) + len(a) for q, a in turns)
    if chars > settings.max_history_chars:
        raise HTTPException(
            422,
            f"the history holds {chars} characters; the limit is {settings.max_history_chars} "
            "(RAG_MAX_HISTORY_CHARS)",
        )


def history_turns(history: list[TurnIn]) -> tuple[Turn, ...]:
    return tuple(Turn(t.question, t.answer) for t in history)


async def chat_question(body: ChatRequest, settings: SettingsDep) -> str:
    users = [m for m in body.messages if m.role == "user"]
    if not users:
        raise HTTPException(422, "messages hold no user message to answer")
    return checked_question(users[-1].text(), settings)


ChatQuestion = Annotated[str, Depends(chat_question)]


async def chat_history(body: ChatRequest, settings: SettingsDep) -> tuple[Turn, ...]:
    """The turns before the last user message: each user message with the reply after it.

    System and tool messages are not turns; a user message without a reply is a turn with an
    empty answer.
    """
    users = [i for i, m in enumerate(body.messages) if m.role == "user"]
    last = users[-1] if users else len(body.messages)  # no question: `chat_question` says so
    turns: list[tuple[str, str]] = []
    question: str | None = None
    for message in body.messages[:last]:
        if message.role == "user":
            if question is not None:
                turns.append((question, ""))
            question = message.text()
        elif message.role == "assistant" and question is not None:
            turns.append((question, message.text()))
            question = None
    if question is not None:
        turns.append((question, ""))
    checked_history(turns, settings)
    try:
        for q, a in turns:
            unicode_text(q + a)  # the text parts of chat content are not `Text`
    except ValueError as err:
        raise HTTPException(422, str(err)) from err
    return tuple(Turn(q, a) for q, a in turns)


# Declared after `ChatQuestion` in a route: a request without a user message is refused there.
ChatHistory = Annotated[tuple[Turn, ...], Depends(chat_history)]
