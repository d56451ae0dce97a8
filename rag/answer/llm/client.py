"""Building the chat model: LangChain's ChatOpenAI for any OpenAI-compatible endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import SecretStr

from rag.settings import Settings

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel


@dataclass(frozen=True)
class LLMConfig:
    base_url: str | None
    model: str | None
    api_key: SecretStr | None  # SecretStr: a repr or a log line of the config never shows it
    timeout: float
    max_tokens: int

    @classmethod
    def from_settings(cls, settings: Settings) -> LLMConfig:
        return cls(
            base_url=settings.llm_base_url,
            model=settings.llm_model,
            api_key=settings.llm_api_key,
            timeout=settings.llm_timeout,
            max_tokens=settings.llm_max_tokens,
        )


def make_chat_model(config: LLMConfig) -> BaseChatModel:
    """A ChatOpenAI client for `config`, without retries.

    Raises:
        ValueError: the endpoint or the model is not set.
        ImportError: langchain-openai is not installed.
    """
    if not config.base_url or not config.model:
        missing = [
            name
            for name, value in (
                ("RAG_LLM_BASE_URL", config.base_url),
                ("RAG_LLM_MODEL", config.model),
            )
            if not value
        ]
        raise ValueError(f"RAG_ANSWERER=llm needs {' and '.join(missing)}")
    try:
        from langchain_openai import ChatOpenAI
    except ImportError as err:
        raise ImportError("RAG_ANSWERER=llm needs langchain-openai: pip install '.[llm]'") from err
    return ChatOpenAI(
        model=config.model,
        base_url=config.base_url,
        # Local servers ignore the key but the client insists on one; passing it explicitly
        # also keeps the client from reading OPENAI_API_KEY from the environment.
        api_key=config.api_key or SecretStr("no-key"),
        # Per read and per connect; the whole answer is bounded by `within_deadline`.
        timeout=config.timeout,
        # A retry would double the wait on a model that is down or overloaded; the
        # extractive answer is the retry.
        max_retries=0,
        # Sent as `max_completion_tokens`, the OpenAI API's current name for max_tokens.
        max_completion_tokens=config.max_tokens,
    )
