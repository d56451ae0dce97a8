"""The rewriter of the settings: rules alone, or an LLM with the rules as its fallback."""

from __future__ import annotations

from rag.conversation.base import Rewriter
from rag.conversation.rules import RuleConfig, RuleRewriter
from rag.settings import Settings


def make_rewriter(settings: Settings) -> Rewriter:
    """With `RAG_ANSWERER=llm` the configured chat model rewrites; else the rules do.

    Raises:
        ValueError, ImportError: as `rag.answer.llm.client.make_chat_model`.
    """
    rules = RuleRewriter(RuleConfig(ellipsis=settings.rewrite_ellipsis))
    if settings.answerer != "llm":
        return rules
    # Imported here: LangChain's OpenAI client is an optional extra, and heavy.
    from rag.conversation.llm import make_llm_rewriter

    return make_llm_rewriter(settings, rules)
