"""The service's settings: the core ones plus what only HTTP needs (`RAG_*` variables too).

`rag serve` and the tests build one `ServiceSettings`; the pipeline takes it as the core
`Settings` it extends, so there is still one object per process.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from rag.settings import Settings
from service.origins import origin_of

# A list of keys or origins, written in the environment as "a,b,c".
CommaList = Annotated[list[str], NoDecode]

# Admission defaults when an LLM writes the answers (see `_admission_for_a_remote_model`).
LLM_MAX_INFLIGHT = 16
LLM_QUEUE_TIMEOUT_S = 10.0
# Shortest RAG_CITATION_SECRETS entry accepted (a secret that signs tokens anyone may hold).
MIN_SECRET_CHARS = 16


class ServiceSettings(Settings):
    """The core settings and the HTTP service's own."""

    # See docs/api.md. With no keys at all the service is open but binds
    # to 127.0.0.1 only.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    admin_keys: CommaList = Field(default_factory=list)
    query_keys: CommaList = Field(default_factory=list)
    # Widget keys: they sit in web pages, so they may only ask, from allowed origins.
    publishable_keys: CommaList = Field(default_factory=list)
    allowed_origins: CommaList = Field(default_factory=list)
    widget_rate_limit: str = "30/minute"  # per publishable key and client address
    # Citation tokens (service/citation_tokens.py): a publishable key opens a paragraph only
    # with the signed token an answer gave for it. The first secret signs, all verify, so a
    # rotated-out secret keeps working for the tokens it signed. Unset: a random secret per
    # process (tokens then die with it and do not work across replicas).
    citation_secrets: CommaList = Field(default_factory=list)
    citation_token_ttl_s: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    # Neighbours each side a publishable key gets around a cited paragraph: 0, only the
    # paragraph the answer cited (a passage never spans paragraphs).
    citation_context: int = Field(default=0, ge=0, le=5)
    # Whether a publishable key with a citation's token may download the cited file whole
    # (`/raw`: the widget opens a cited PDF at its page). A publishable key is public, so
    # anyone may ask, get a token and take the file: false keeps it to cited paragraphs.
    publishable_originals: bool = True
    # Passages a publishable key may ask for (`top_k`): every one comes back with its text,
    # so a large `top_k` would make asking a search, which that key may not do.
    publishable_max_top_k: int = Field(default=5, ge=1, le=50)
    max_question_chars: int = Field(default=500, ge=1, le=10000)
    # Conversations: the earlier turns a request may send (`history` of /v1/ask, the messages
    # of /v1/chat/completions) and their characters in all, questions and answers. The
    # rewrite reads only the last few turns: beyond these /v1/ask is refused (422) rather
    # than parsed and carried for nothing, and a chat keeps its latest turns within them.
    max_history_turns: int = Field(default=20, ge=0, le=1000)
    max_history_chars: int = Field(default=20_000, ge=0, le=1_000_000)
    max_upload_mb: int = Field(default=20, ge=1)
    max_upload_files: int = Field(default=20, ge=1)
    upload_dir: Path | None = None  # default: <index_dir>/uploads
    # Admission control of the query routes (ask, stream, search, chat; see
    # service/admission.py): two cores and one model thread are saturated by a few queries
    # at once, so more in flight only adds latency, and an unbounded backlog ends in client
    # timeouts. Beyond `max_inflight` running and `max_queue` waiting, or after
    # `queue_timeout_s` in the queue (well under common client timeouts; a full queue drains
    # in about a second), a query gets 503 with Retry-After. Health, readiness and metrics
    # are never shed. Figures: docs/benchmarks.md, "Load". With answerer "llm" a slot also
    # waits on the model's endpoint, not the CPU: unset, these then default to
    # LLM_MAX_INFLIGHT and LLM_QUEUE_TIMEOUT_S; size them to what the endpoint serves.
    max_inflight: int = Field(default=4, ge=1, le=1024)
    max_queue: int = Field(default=32, ge=0, le=100_000)
    queue_timeout_s: float = Field(default=2.0, gt=0, le=600)
    # uvicorn's `limit_concurrency` for `rag serve`: open connections plus running requests
    # beyond which uvicorn itself answers 503 before the app runs (health checks too). A
    # backstop for what admission control cannot see, such as a flood of idle keep-alive
    # connections; far above max_inflight + max_queue so that it never sheds real
    # traffic first. 0: no limit.
    max_connections: int = Field(default=512, ge=0)

    # -- Collections and scoped keys (issue 16; rag/collections.py, service/keys.py) --
    # A TOML or JSON file of API keys (by SHA-256 hash), each scoped to collections, with
    # its own origins and rate limit; in addition to the keys above, which reach every
    # collection.
    keys_file: Path | None = None
    # Collections other than `default` kept open at once; the least recently used one is
    # closed (once its running queries end) to open another.
    open_collections: int = Field(default=8, ge=1, le=1000)

    @field_validator(
        "admin_keys",
        "query_keys",
        "publishable_keys",
        "allowed_origins",
        "citation_secrets",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("citation_secrets")
    @classmethod
    def _long_secrets(cls, value: list[str]) -> list[str]:
        # A token is an HMAC anyone may hold: a short secret could be guessed offline from it.
        short = [i + 1 for i, secret in enumerate(value) if len(secret) < MIN_SECRET_CHARS]
        if short:
            raise ValueError(
                f"citation secret(s) number {short} are shorter than {MIN_SECRET_CHARS} "
                "characters; make one with: python -c "
                "'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        try:
            return [origin_of(entry) for entry in value]
        except ValueError as err:
            raise ValueError(f"RAG_ALLOWED_ORIGINS: {err}") from None

    @model_validator(mode="after")
    def _admission_for_a_remote_model(self) -> ServiceSettings:
        # The admission defaults are sized for CPU work. An LLM answer holds its slot for
        # seconds while the CPU idles, so unless they were set, allow more at once and let
        # a request wait about as long as an answer takes.
        if self.answerer == "llm":
            if "max_inflight" not in self.model_fields_set:
                self.max_inflight = LLM_MAX_INFLIGHT
            if "queue_timeout_s" not in self.model_fields_set:
                self.queue_timeout_s = min(self.llm_timeout, LLM_QUEUE_TIMEOUT_S)
        return self

    @property
    def uploads(self) -> Path:
        return self.upload_dir or self.index_dir / "uploads"

    @property
    def open_access(self) -> bool:
        return not (self.admin_keys or self.query_keys or self.publishable_keys or self.keys_file)


@lru_cache
def get_service_settings() -> ServiceSettings:
    return ServiceSettings()
