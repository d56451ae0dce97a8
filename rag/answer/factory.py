"""Composers by name: the one place that maps `RAG_ANSWERER` to a composer.

A new composer is one module (a class satisfying `rag.answer.base.Composer`) and one line
in `COMPOSERS`.
"""

from __future__ import annotations

from collections.abc import Callable

from rag.answer.base import Composer, Lexicon
from rag.answer.extractive import ExtractiveComposer, ExtractiveConfig
from rag.settings import Settings


def extractive_composer(settings: Settings, lexicon: Lexicon) -> ExtractiveComposer:
    """The extractive composer of `settings`; also every other composer's fallback."""
    return ExtractiveComposer(
        ExtractiveConfig(
            abstain_confidence=settings.abstain_confidence,
            support_weight=settings.support_weight,
            abstain_below=settings.abstain_below,
            min_support=settings.min_support,
            max_sentences=settings.answer_sentences,
            max_chars=settings.answer_max_chars,
            context_chars=settings.answer_context_chars,
        ),
        lexicon,
    )


def _llm_composer(settings: Settings, lexicon: Lexicon) -> Composer:
    # Imported here: LangChain's OpenAI client is an optional extra, and heavy.
    from rag.answer.llm.composer import make_llm_composer

    return make_llm_composer(settings, extractive_composer(settings, lexicon))


COMPOSERS: dict[str, Callable[[Settings, Lexicon], Composer]] = {
    "extractive": extractive_composer,
    "llm": _llm_composer,
}


def make_composer(settings: Settings, lexicon: Lexicon) -> Composer:
    """The composer `settings.answerer` names.

    Raises:
        ValueError: No such composer (the message lists the valid names), or the composer's
            own settings are incomplete.
    """
    build = COMPOSERS.get(settings.answerer)
    if build is None:
        valid = ", ".join(COMPOSERS)
        raise ValueError(f"unknown answerer {settings.answerer!r}; valid: {valid}")
    return build(settings, lexicon)
