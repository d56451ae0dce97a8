"""Named FastAPI dependencies: the state, access checks, the collection a request uses and
its pipeline, validated questions.

They are `async def` although none awaits: FastAPI runs a plain `def` dependency in the
thread pool, and half a dozen thread hops per request showed up in the HTTP overhead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Query, Request

from rag.collections import (
    DEFAULT,
    NAME_PATTERN,
    NAME_RULE,
    InvalidCollectionName,
    NoSuchCollection,
    check_name,
)
from rag.conversation import llm as llm_rewrite
from rag.conversation import rules as rules_rewrite
from rag.pipeline import Pipeline
from rag.types import Turn
from rag.wire import CitationSigner
from service.admission import Admission, Overloaded
from service.auth import AccessDenied, Action, Caller, Role
from service.jobs import JobQueue
from service.pipelines import CollectionUnavailable, Pipelines
from service.schemas import AskRequest, ChatRequest, SearchRequest, TurnIn, unicode_text
from service.settings import ServiceSettings
from service.state import ServiceState

# `model` values of /v1/chat/completions that mean the default collection: what OpenAI
# clients of this service sent before collections existed.
DEFAULT_MODELS = frozenset({"rag", ""})


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
    if state.waiting:
        return HTTPException(
            503, f"the service is waiting for its stores: {state.waiting}", {"Retry-After": "5"}
        )
    return HTTPException(503, "the index and the model are still loading", {"Retry-After": "2"})


async def get_pipelines(state: StateDep) -> Pipelines:
    if state.pipelines is None:
        raise _not_ready(state)
    return state.pipelines


PipelinesDep = Annotated[Pipelines, Depends(get_pipelines)]


@dataclass(frozen=True)
class InCollection:
    """The collection a request uses, its open pipeline, and how to sign its citations."""

    name: str
    pipeline: Pipeline
    sign: CitationSigner


def out_of_scope() -> HTTPException:
    """The one answer to a key asking for a collection outside its scope, whether or not
    that collection exists: it learns nothing about what exists."""
    return HTTPException(403, "this key may not use that collection")


def scoped_collection(name: str, caller: Caller, state: ServiceState, exists: bool = True) -> str:
    """`name` if `caller` may use it (and, with `exists`, it exists), else the 4xx to send.

    422 for a name breaking the rule, 403 for one outside the key's scope (existing or
    not), then 404 for a missing one the key could use.
    """
    try:
        check_name(name)
    except InvalidCollectionName as err:
        raise HTTPException(422, str(err)) from err
    if not caller.may_use(name):
        raise out_of_scope()
    if exists and not state.collections.exists(name):
        raise HTTPException(404, f"no collection {name!r}")
    return name


@asynccontextmanager
async def _leased(
    request: Request, state: ServiceState, name: str, admitted: bool
) -> AsyncIterator[InCollection]:
    """The pipeline of collection `name`, leased until the response has been sent; with
    `admitted`, with a query slot held as long."""
    pipelines = await get_pipelines(state)
    admission: Admission = request.app.state.admission
    if admitted:
        try:
            await admission.acquire()
        except Overloaded as err:
            route = getattr(request.scope.get("route"), "path", "unmatched")
            state.metrics.shed.labels(route, err.reason.value).inc()
            raise HTTPException(503, err.detail, {"Retry-After": str(err.retry_after_s)}) from err
    try:
        try:
            if name == DEFAULT:
                lease = pipelines.acquire(name)
            else:  # may open the collection: not on the event loop
                lease = await asyncio.to_thread(pipelines.acquire, name)
        except NoSuchCollection as err:  # removed since the check
            raise HTTPException(404, f"no collection {name!r}") from err
        except CollectionUnavailable as err:
            raise HTTPException(503, str(err)) from err
        route = getattr(request.scope.get("route"), "path", "unmatched")
        state.metrics.collection_requests.labels(name, route).inc()
        try:
            yield InCollection(name, lease.pipeline, state.signer(name, lease.pipeline))
        finally:
            pipelines.release(lease)
    finally:
        if admitted:
            admission.release()


# The `?collection=` of the routes without a JSON body.
CollectionParam = Annotated[
    str,
    Query(
        description=f"The collection: {NAME_RULE}",
        json_schema_extra={"pattern": f"^{NAME_PATTERN.pattern}$"},
    ),
]


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
    try:
        referer = urlsplit(request.headers.get("referer", ""))
    except ValueError:  # a bad IPv6 bracket ("http://["): it names no page
        return None
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


# One dependency per action, so that a route and its collection's dependency share it and
# FastAPI checks the key once per request.
_ASK, _SEARCH, _CITE, _MANAGE = (
    _access(a) for a in (Action.ASK, Action.SEARCH, Action.CITE, Action.MANAGE)
)
AskAccess = Annotated[Caller, _ASK]
SearchAccess = Annotated[Caller, _SEARCH]
CiteAccess = Annotated[Caller, _CITE]
ManageAccess = Annotated[Caller, _MANAGE]


# -- the collection of each kind of request -----------------------------------------------
#
# The query routes' collection comes from their JSON body and runs under admission control
# (declared after the access check and the body, so that a caller without a key, rate-limited,
# or with a bad body is answered without taking a slot or a place in the queue; for a stream
# the slot covers the answer's events too: see docs/benchmarks.md, "Load"). The document
# routes take `?collection=` and are never shed.


def _document_target(access: object) -> object:
    """The dependency giving a document route its collection (`?collection=`), for a caller
    that `access` lets in."""

    async def target(
        request: Request,
        state: StateDep,
        caller: Caller = access,  # type: ignore[assignment]  # a FastAPI dependency
        collection: CollectionParam = DEFAULT,
    ) -> AsyncIterator[InCollection]:
        name = scoped_collection(collection, caller, state)
        async with _leased(request, state, name, False) as leased:
            yield leased

    return Depends(target)


ManagedCollection = Annotated[InCollection, _document_target(_MANAGE)]
CitedCollection = Annotated[InCollection, _document_target(_CITE)]
ReadCollection = Annotated[InCollection, _document_target(_SEARCH)]


def checked_question(text: str, settings: ServiceSettings, what: str = "question") -> str:
    """The question (or search query: `what`) stripped, or a 422 saying why it cannot be asked."""
    question = text.strip()
    if not question:
        raise HTTPException(422, f"the {what} is empty")
    try:
        unicode_text(question)  # the text parts of chat content are not `Text`
    except ValueError as err:
        raise HTTPException(422, str(err)) from err
    if len(question) > settings.max_question_chars:
        raise HTTPException(
            422,
            f"the {what} is {len(question)} characters; the limit is {settings.max_question_chars}",
        )
    return question


def sent_top_k(body: AskRequest | SearchRequest, settings: ServiceSettings) -> int:
    """The body's `top_k`, or RAG_TOP_K when it sent none (the schema's default is fixed)."""
    return body.top_k if "top_k" in body.model_fields_set else settings.top_k


def unsent_top_k(caller: Caller, settings: ServiceSettings) -> int:
    """The top_k of a question that names none: RAG_TOP_K, held to RAG_PUBLISHABLE_MAX_TOP_K
    for a publishable key, whose answers may quote every passage retrieved."""
    if caller.role is Role.PUBLISHABLE:
        return min(settings.top_k, settings.publishable_max_top_k)
    return settings.top_k


async def ask_question(body: AskRequest, settings: SettingsDep, caller: AskAccess) -> AskRequest:
    if "top_k" not in body.model_fields_set:  # the widget sends none: never a refusal
        top_k = unsent_top_k(caller, settings)
    elif caller.role is Role.PUBLISHABLE and body.top_k > settings.publishable_max_top_k:
        raise HTTPException(
            403,
            f"a publishable key may ask for at most {settings.publishable_max_top_k} "
            f"passages (top_k), not {body.top_k}",
        )
    else:
        top_k = body.top_k
    history = checked_history(body.history, settings)
    # model_copy: every other field of the body is kept as sent.
    question = checked_question(body.question, settings)
    return body.model_copy(update={"question": question, "top_k": top_k, "history": history})


AskBody = Annotated[AskRequest, Depends(ask_question)]


async def search_query(body: SearchRequest, settings: SettingsDep) -> SearchRequest:
    """The body with its query checked as a question is: the embedder reads a long query in
    windows, so an unbounded one held a query slot for seconds (60,000 characters: 19 s)."""
    query = checked_question(body.query, settings, "query")
    return body.model_copy(update={"query": query, "top_k": sent_top_k(body, settings)})


SearchBody = Annotated[SearchRequest, Depends(search_query)]


def checked_history(turns: list[TurnIn], settings: ServiceSettings) -> list[TurnIn]:
    """The turns with their answers cut to what is read of them (`read_answer`), or a 422
    naming the limit if they are too many or hold too many characters so cut.

    A client sends back the answers it was given, whole: counted whole, one long answer
    was refused though all but its opening is never read.
    """
    if len(turns) > settings.max_history_turns:
        raise HTTPException(
            422,
            f"the history has {len(turns)} turns; the limit is {settings.max_history_turns} "
            "(RAG_MAX_HISTORY_TURNS)",
        )
    read = [t.model_copy(update={"answer": read_answer(t.answer)}) for t in turns]
    chars = sum(len(t.question) + len(t.answer) for t in read)
    if chars > settings.max_history_chars:
        raise HTTPException(
            422,
            f"the history holds {chars} characters (answers counted as cut to their first "
            f"{ANSWER_READ}); the limit is {settings.max_history_chars} "
            "(RAG_MAX_HISTORY_CHARS)",
        )
    return read


# The longest opening of an earlier answer a rewriter reads.
ANSWER_READ = max(rules_rewrite.ANSWER_CHARS, llm_rewrite.ANSWER_CHARS)


def read_answer(answer: str) -> str:
    """What the rewriters read of an earlier answer: its opening, stripped."""
    return answer.strip()[:ANSWER_READ]


def latest_turns(turns: list[tuple[str, str]], settings: ServiceSettings) -> list[tuple[str, str]]:
    """The latest of `turns` within RAG_MAX_HISTORY_TURNS and RAG_MAX_HISTORY_CHARS.

    A chat client sends its whole conversation with every message: refusing it past the
    limits would end the conversation for good, and a follow-up is rewritten from the last
    few turns only, so the earlier ones are left out instead. Answers are cut to what the
    rewriters read of them: one long answer counted whole left the next follow-up with no
    history at all.
    """
    kept: list[tuple[str, str]] = []
    chars = 0
    for question, answer in reversed(turns):
        answer = read_answer(answer)
        chars += len(question) + len(answer)
        if len(kept) == settings.max_history_turns or chars > settings.max_history_chars:
            break
        kept.append((question, answer))
    return kept[::-1]


def history_turns(history: list[TurnIn]) -> tuple[Turn, ...]:
    return tuple(Turn(t.question, t.answer) for t in history)


async def _ask_target(
    request: Request, state: StateDep, caller: AskAccess, body: AskBody
) -> AsyncIterator[InCollection]:
    name = scoped_collection(body.collection, caller, state)
    async with _leased(request, state, name, True) as target:
        yield target


async def _search_target(
    request: Request, state: StateDep, caller: SearchAccess, body: SearchBody
) -> AsyncIterator[InCollection]:
    name = scoped_collection(body.collection, caller, state)
    async with _leased(request, state, name, True) as target:
        yield target


async def _chat_target(
    request: Request, state: StateDep, caller: AskAccess, body: ChatRequest
) -> AsyncIterator[InCollection]:
    # OpenAI clients name a model: here, the collection to answer from.
    name = DEFAULT if body.model in DEFAULT_MODELS else body.model
    name = scoped_collection(name, caller, state)
    async with _leased(request, state, name, True) as target:
        yield target


# The query routes' collection and pipeline, with a query slot.
AskCollection = Annotated[InCollection, Depends(_ask_target)]
SearchCollection = Annotated[InCollection, Depends(_search_target)]
ChatCollection = Annotated[InCollection, Depends(_chat_target)]


async def chat_question(body: ChatRequest, settings: SettingsDep) -> str:
    users = [m for m in body.messages if m.role == "user"]
    if not users:
        raise HTTPException(422, "messages hold no user message to answer")
    return checked_question(users[-1].text(), settings)


ChatQuestion = Annotated[str, Depends(chat_question)]


async def chat_top_k(settings: SettingsDep, caller: AskAccess) -> int:
    """A chat request names no top_k: the one of a question that names none."""
    return unsent_top_k(caller, settings)


ChatTopK = Annotated[int, Depends(chat_top_k)]


async def chat_history(body: ChatRequest, settings: SettingsDep) -> tuple[Turn, ...]:
    """The turns before the last user message: each user message with the reply after it.

    System, tool and function messages are not turns, nor is an assistant message without
    text (a tool call); a user message without a reply is a turn with an empty answer.
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
        elif message.role == "assistant" and question is not None and message.text():
            # A reply without text (a tool call) is not the answer: the one after its results is.
            turns.append((question, message.text()))
            question = None
    if question is not None:
        turns.append((question, ""))
    turns = latest_turns(turns, settings)
    try:
        for q, a in turns:
            unicode_text(q + a)  # the text parts of chat content are not `Text`
    except ValueError as err:
        raise HTTPException(422, str(err)) from err
    return tuple(Turn(q, a) for q, a in turns)


# Declared after `ChatQuestion` in a route: a request without a user message is refused there.
ChatHistory = Annotated[tuple[Turn, ...], Depends(chat_history)]
