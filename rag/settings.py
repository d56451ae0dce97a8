"""The one settings object: every tunable of the pipeline, from `RAG_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# A list of keys or origins, written in the environment as "a,b,c".
CommaList = Annotated[list[str], NoDecode]


# Admission defaults when an LLM writes the answers (see `_admission_for_a_remote_model`).
LLM_MAX_INFLIGHT = 16
LLM_QUEUE_TIMEOUT_S = 10.0


class Settings(BaseSettings):
    """Built once by `get_settings()` and passed down; `rag/` never reads the environment itself."""

    model_config = SettingsConfigDict(env_prefix="RAG_", env_file=".env", extra="ignore")

    index_dir: Path = Path(".rag-index")
    embedder: str = "e5-small"

    # Chunking: characters per passage (see docs/benchmarks.md for how these were chosen).
    chunk_size: int = Field(default=400, ge=50, le=4000)

    # Near-duplicate detection: Jaccard similarity of character shingles.
    dedupe_threshold: float = Field(default=0.85, gt=0, le=1)
    shingle_size: int = Field(default=3, ge=1, le=8)
    minhash_perm: int = Field(default=128, ge=16, le=512)

    # Lexical index tokenisation of folded text.
    tokenizer: Literal["bigram", "jieba", "bigram+jieba"] = "bigram"

    # Retrieval and fusion.
    top_k: int = Field(default=5, ge=1, le=50)
    candidates: int = Field(default=50, ge=1, le=1000)
    dense_weight: float = Field(default=0.7, ge=0, le=1)
    # Cosine similarity that counts as unrelated for the embedder (multilingual-e5 puts
    # unrelated text around 0.75, not 0); the dense score is rescaled from here to 1.
    dense_floor: float = Field(default=0.8, ge=-1, lt=1)

    # Answer composition: "llm" has a chat model write the answer from the passages
    # (rag/llm/, needs the `llm` extra), falling back to "extractive" when the model fails.
    answerer: Literal["extractive", "llm"] = "extractive"
    abstain_below: float = Field(default=0.5, ge=0, le=1)
    min_support: float = Field(default=0.35, ge=0, le=1)
    answer_sentences: int = Field(default=2, ge=1, le=10)
    answer_max_chars: int = Field(default=150, ge=20)
    # Grow the best sentence with its neighbours up to this many characters (0: never).
    answer_context_chars: int = Field(default=120, ge=0)
    max_file_mb: int = Field(default=50, ge=1)

    # The LLM composer: any OpenAI-compatible chat endpoint (vLLM, Ollama, a hosted API).
    llm_base_url: str | None = None  # e.g. http://127.0.0.1:11434/v1
    llm_model: str | None = None
    # Never logged or returned; local servers need none.
    llm_api_key: SecretStr | None = None
    # Seconds for the whole answer, streamed or not; past it the extractive answer is given.
    llm_timeout: float = Field(default=30.0, gt=0, le=600)
    llm_max_tokens: int = Field(default=512, ge=16, le=32768)
    # Seconds a write (ingest, delete) waits for another process writing the same index.
    lock_timeout: float = Field(default=600.0, ge=0)

    # HTTP service (see docs/api.md). With no keys at all the service is open but binds
    # to 127.0.0.1 only.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    admin_keys: CommaList = []
    query_keys: CommaList = []
    # Widget keys: they sit in web pages, so they may only ask, from allowed origins.
    publishable_keys: CommaList = []
    allowed_origins: CommaList = []
    widget_rate_limit: str = "30/minute"  # per publishable key and client address
    max_question_chars: int = Field(default=500, ge=1, le=10000)
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

    @field_validator(
        "admin_keys", "query_keys", "publishable_keys", "allowed_origins", mode="before"
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _admission_for_a_remote_model(self) -> Settings:
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
        return not (self.admin_keys or self.query_keys or self.publishable_keys)


@lru_cache
def get_settings() -> Settings:
    return Settings()
