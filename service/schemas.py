"""The HTTP edge: request and response models (inside the service, plain dataclasses rule).

Answer, passage, citation and source objects are built by `rag.wire` (the one wire format,
shared with `rag ask --json`, the evaluator and the widget); the models here document that
same shape for OpenAPI, and tests/test_wire.py holds the two together.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from rag.collections import DEFAULT, NAME_PATTERN, NAME_RULE
from rag.text.surrogates import lone_surrogate
from rag.text.tokenize import TokenizerName

# Unsent, the route uses RAG_TOP_K (`service.deps`); 5 is that setting's default.
TopK = Field(
    default=5, ge=1, le=50, description="How many passages to retrieve (unsent: RAG_TOP_K)"
)


def collection_field() -> Any:
    """The `collection` of a JSON body: checked by the route, so that a bad name, one outside
    the key's scope and a missing one each get their own answer (422, 403, 404)."""
    return Field(
        default=DEFAULT,
        max_length=1000,  # a long name is refused by the rule; a huge one unread
        description=f"The collection (knowledge base) to use: {NAME_RULE}",
        json_schema_extra={"pattern": f"^{NAME_PATTERN.pattern}$"},
    )


def unicode_text(value: str) -> str:
    """`value`, or ValueError if it holds a lone surrogate.

    JSON may escape half of a UTF-16 pair ("\\ud800"); Python decodes it, and every UTF-8
    encoder downstream (the embedder, SQLite, the response) then fails. pydantic refuses
    one only in a string with constraints (such as `min_length`).
    """
    at = lone_surrogate(value)
    if at is not None:
        raise ValueError(f"the text holds a lone surrogate at position {at}")
    return value


# Free text that is echoed or processed: a lone surrogate in it is a 422, not a 500.
Text = Annotated[str, AfterValidator(unicode_text)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- requests -----------------------------------------------------------------------------


class TurnIn(Strict):
    """An earlier exchange of the conversation, as the client showed it."""

    question: Text = Field(description="A question asked earlier in the conversation")
    answer: Text = Field(description="The answer's text it was given")


class AskRequest(Strict):
    question: str = Field(min_length=1, description="The question, simplified or traditional")
    top_k: int = TopK
    history: list[TurnIn] = Field(
        default_factory=list,
        description="The conversation's earlier turns, oldest first: a follow-up is rewritten "
        "to stand alone from them (see `standalone_question`). At most "
        "RAG_MAX_HISTORY_TURNS turns and RAG_MAX_HISTORY_CHARS characters, each answer "
        "counted as its first 300 characters, all that is read of it (422 beyond)",
    )
    collection: str = collection_field()


class SearchRequest(Strict):
    query: str = Field(min_length=1)
    top_k: int = TopK
    collection: str = collection_field()


def text_parts(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`parts`, or ValueError if a text part's `text` is not a string (it was read as its
    Python repr, "{'value': 'x'}", and answered)."""
    for at, part in enumerate(parts):
        if part.get("type") == "text" and not isinstance(part.get("text"), str):
            raise ValueError(f"content part {at} is of type text but its `text` is not a string")
    return parts


class ChatMessage(BaseModel):
    # "function": the results of OpenAI's deprecated function calling, which clients still
    # send; like "tool", it is no turn of the conversation.
    role: Literal["system", "user", "assistant", "tool", "function", "developer"]
    # OpenAI clients may send content as a list of typed parts; only text parts count.
    content: Text | Annotated[list[dict[str, Any]], AfterValidator(text_parts)] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        parts = self.content or []
        return "".join(p["text"] for p in parts if p.get("type") == "text")


class ChatRequest(BaseModel):
    # Other OpenAI parameters (temperature, ...) are accepted and ignored: the answer is
    # extracted from the documents, or written by the LLM the service is configured with.
    model: Text = Field(
        default="rag",
        max_length=1000,
        description="The collection to answer from (`GET /v1/models` lists them); "
        '"rag" means `default`',
    )
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False


# -- answers --------------------------------------------------------------------------------


class LocationOut(BaseModel):
    """The fields of `rag.types.Location`, shared by sources and citations."""

    file: str
    paragraph: int
    line_start: int
    line_end: int
    char_start: int
    char_end: int
    page: int | None = Field(default=None, description="1-based PDF page or slide, else null")
    sheet: str | None = Field(default=None, description="Spreadsheet sheet, else null")
    ocr_confidence: float | None = Field(
        default=None, description="Mean OCR confidence (0-1) of text read by OCR, else null"
    )


class SourceOut(LocationOut):
    pass


class PassageOut(BaseModel):
    id: int
    text: str
    score: float
    sources: list[SourceOut]


class PlaceOut(BaseModel):
    file: str
    paragraph: int


class CitationOut(LocationOut):
    n: int
    char_start: int = Field(description="Offset of the quote in the original file")
    quote: str = Field(description="The cited text, cleaned, in the file's own script")
    passage_id: int
    also_in: list[PlaceOut] = Field(description="Other files holding the same passage")
    token: str | None = Field(
        default=None,
        description="Signed, expiring proof that this answer cited this paragraph: a "
        "publishable key must send it to open the paragraph (null from `rag ask --json`)",
    )


class ShortAnswerOut(BaseModel):
    text: str = Field(description="The words that answer the question, as in the quote")
    citation: int = Field(description="The `n` of the citation whose quote holds them")
    quote_start: int = Field(description="Offset of the short answer in that quote")
    quote_end: int
    char_start: int = Field(description="Offset of the short answer in the original file")
    char_end: int


class AnswerOut(BaseModel):
    question: str
    answer: str
    abstained: bool
    citations: list[CitationOut]
    passages: list[PassageOut]
    timings_ms: dict[str, float]
    composer: Literal["extractive", "llm"] = Field(
        description="Who wrote the answer: an LLM answer that failed falls back to extractive"
    )
    unsupported: list[str] = Field(
        description="Sentences of an LLM answer that cite no passage (always empty for extractive)"
    )
    note: str | None = Field(
        description="Why the answer differs from what was configured (LLM unavailable, "
        "citations of passages that were not given removed), else null"
    )
    standalone_question: str | None = Field(
        description="The question as searched and answered: a follow-up rewritten to stand "
        "alone from `history`; the question itself when it has no history or needs no rewrite"
    )
    short_answer: ShortAnswerOut | None = Field(
        default=None,
        description="The answer itself (a name, date, number...) inside a cited quote; "
        "null for why/how questions or when no span fits",
    )


class SearchOut(BaseModel):
    passages: list[PassageOut]
    timings_ms: dict[str, float]


# -- documents and jobs ---------------------------------------------------------------------


class DocumentOut(BaseModel):
    id: str = Field(description="The document's file name, as citations name it")
    file: str
    paragraphs: int
    passages: int
    content_hash: str
    encoding: str
    format: str
    ingested_at: str


class DocumentsOut(BaseModel):
    documents: list[DocumentOut]


class DeletedOut(BaseModel):
    deleted: str


class UploadAccepted(BaseModel):
    job_id: str
    files: list[str]


class SkippedOut(BaseModel):
    path: str
    reason: str


class ReportOut(BaseModel):
    files: int
    unchanged: int
    paragraphs: int
    passages: int
    new_passages: int
    duplicates_merged: int
    skipped: list[SkippedOut]
    # Files read in part: what was truncated or passed over inside them, with why.
    notes: list[SkippedOut] = []
    # Documents of the collection removed: files uploaded again that now hold no text.
    removed: list[SkippedOut] = []
    seconds: float


class JobOut(BaseModel):
    id: str
    collection: str
    status: Literal["queued", "running", "done", "failed"]
    files: list[str]
    created_at: str
    started_at: str | None
    finished_at: str | None
    report: ReportOut | None
    error: str | None


class ParagraphOut(BaseModel):
    number: int
    text: str = Field(description="Cleaned paragraph text; a citation's quote is a substring")
    line_start: int
    line_end: int
    char_start: int
    char_end: int


class DocumentTextOut(BaseModel):
    file: str
    format: str
    text: str


class ParagraphContextOut(BaseModel):
    file: str
    paragraph: ParagraphOut
    before: list[ParagraphOut]
    after: list[ParagraphOut]


# -- collections ----------------------------------------------------------------------------


class CollectionCreate(Strict):
    name: str = Field(
        max_length=1000,
        description=f"The new collection's name: {NAME_RULE}",
        json_schema_extra={"pattern": f"^{NAME_PATTERN.pattern}$"},
    )
    # Unset: the service's own settings; a collection keeps these for good. The embedder is
    # the service's (one model per process; `rag collections create --embedder` picks
    # another, which the service then loads when the collection is first used).
    # Unset tokenizer: RAG_TOKENIZER, else the newest (`rag.text.tokenize.DEFAULT_TOKENIZER`).
    tokenizer: TokenizerName | None = None
    chunk_size: int | None = Field(default=None, ge=50, le=4000)


class CollectionOut(BaseModel):
    name: str
    embedder: str | None = Field(description="null: `default` before its first document")
    tokenizer: str | None
    chunk_size: int | None


class CollectionsOut(BaseModel):
    collections: list[CollectionOut]


class ModelOut(BaseModel):
    id: str = Field(description="A collection name, for the `model` of chat completions")
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "rag"


class ModelsOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


# -- operations -----------------------------------------------------------------------------


class StatusOut(BaseModel):
    status: str
    detail: str | None = None


class ErrorOut(BaseModel):
    detail: str


class InvalidOut(BaseModel):
    """A 422: pydantic's list of errors for a malformed body, or one message for a well-formed
    request that still cannot be served (say, a question of only spaces)."""

    detail: str | list[dict[str, Any]]
