"""The LLM composer: a chat model writes the answer from the passages, cited and checked."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import replace
from typing import TYPE_CHECKING

from rag.answer.base import ABSTAIN_TEXT, Composer
from rag.answer.cite import cite
from rag.answer.llm.citations import check_citations, quote_span, says_not_found, without_thinking
from rag.answer.llm.client import LLMConfig, make_chat_model
from rag.answer.llm.deadline import DeadlineExceeded, seconds_left, within_deadline
from rag.answer.llm.prompt import PROMPT_VERSION, build_messages
from rag.settings import Settings
from rag.text.script import detect_script, to_script
from rag.types import Answer, ScoredPassage

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

log = logging.getLogger("rag.llm")


class LLMComposer:
    """Has a chat model answer from the numbered passages, then checks every citation.

    A citation [n] must name one of the passages given: others are removed, and a sentence
    left citing nothing is listed as unsupported. Cited passage n becomes a `Citation` like
    the extractive ones, quoting the sentences of the passage that best back the sentences
    citing it (`quote_span`), with exact file offsets.

    Whatever goes wrong with the model (refused connection, HTTP error, rate limit, the
    `timeout` for the whole answer, or less when the question's `deadline` comes first)
    gives the `fallback` composer's answer instead, with a
    `note` saying why. The API key in `secrets` never reaches a log line or a note.
    """

    def __init__(
        self,
        model: BaseChatModel,
        fallback: Composer,
        timeout: float,
        secrets: Sequence[str] = (),
    ) -> None:
        self.model = model
        self.fallback = fallback
        self.timeout = timeout
        self._secrets = [s for s in secrets if s]

    def compose(
        self, question: str, passages: Sequence[ScoredPassage], deadline: float | None = None
    ) -> Answer:
        if not passages:
            return self._nothing_to_cite(question)
        messages = build_messages(question, passages)
        seconds = seconds_left(self.timeout, deadline)
        try:
            (reply,) = within_deadline(lambda: [self.model.invoke(messages)], seconds)
        except Exception as err:  # any failure of the model call: see failure_reason
            return self._fall_back(question, passages, err)
        return self._checked(question, passages, reply.text)

    def stream_compose(
        self, question: str, passages: Sequence[ScoredPassage], deadline: float | None = None
    ) -> Iterator[str | Answer]:
        """The model's tokens as they arrive, then the checked answer (see `Composer`)."""
        if not passages:
            yield self._nothing_to_cite(question)
            return
        messages = build_messages(question, passages)
        parts: list[str] = []
        seconds = seconds_left(self.timeout, deadline)
        chunks = within_deadline(lambda: self.model.stream(messages), seconds)
        try:
            with closing(chunks):
                for chunk in chunks:
                    if chunk.text:
                        parts.append(chunk.text)
                        yield chunk.text
        except Exception as err:
            yield self._fall_back(question, passages, err, midway=bool(parts))
            return
        yield self._checked(question, passages, "".join(parts))

    # -- the answer -------------------------------------------------------------------------

    def _checked(self, question: str, passages: Sequence[ScoredPassage], text: str) -> Answer:
        text = without_thinking(text)
        if not text:
            return self._fall_back(question, passages, EmptyAnswer())
        script = detect_script(question)
        if script is not None and detect_script(text) not in (script, None):
            text = to_script(text, script)  # the prompt asked for it; make sure
        checked = check_citations(text, len(passages))
        if not checked.text:  # nothing but citation marks
            return self._fall_back(question, passages, EmptyAnswer())
        note = None
        if checked.removed:
            numbers = ", ".join(f"[{n}]" for n in checked.removed)
            note = f"removed citations of passages that were not given: {numbers}"
            log.info("LLM cited passages it was not given: %s", numbers)
        if not checked.cited and says_not_found(checked.text):
            return Answer(
                question, checked.text, True, (), tuple(passages), composer="llm", note=note
            )
        citations = []
        for n in checked.cited:
            passage = passages[n - 1]
            start, end = quote_span(checked.claims(n), passage.passage.text)
            citations.append(cite(n, passage, start, end))
        return Answer(
            question,
            checked.text,
            False,
            tuple(citations),
            tuple(passages),
            composer="llm",
            unsupported=checked.unsupported,
            note=note,
        )

    def _nothing_to_cite(self, question: str) -> Answer:
        """Nothing was retrieved: no model call, the plain "not found" answer."""
        script = detect_script(question) or "hans"
        return Answer(question, to_script(ABSTAIN_TEXT, script), True, (), (), composer="llm")

    def _fall_back(
        self,
        question: str,
        passages: Sequence[ScoredPassage],
        err: Exception,
        midway: bool = False,
    ) -> Answer:
        reason = failure_reason(err, self.timeout, midway)
        log.warning(
            "LLM unavailable (%s), answering extractively: %s: %s",
            reason,
            type(err).__name__,
            self._redact(str(err)),
        )
        answer = self.fallback.compose(question, passages)
        return replace(
            answer, composer="extractive", note=f"LLM unavailable ({reason}); extractive answer"
        )

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


class EmptyAnswer(Exception):
    """The model answered with no text."""


def failure_reason(err: Exception, timeout: float, midway: bool = False) -> str:
    """A short reason for a failed model call, for notes and logs: never the error's text.

    Error messages can carry what the server echoed back (a key, the prompt); the reason is
    built from the kind of error and the status code only. `midway`: the model had already
    sent part of a streamed answer.
    """
    import httpx
    import openai

    if isinstance(err, DeadlineExceeded | openai.APITimeoutError | httpx.TimeoutException):
        reason = f"timeout after {timeout:g} s"
    elif isinstance(err, openai.RateLimitError):
        reason = "rate limited, HTTP 429"
    elif isinstance(err, openai.APIStatusError):
        reason = f"HTTP {err.status_code}"
    elif isinstance(err, openai.APIConnectionError | httpx.TransportError):
        reason = "connection lost" if midway else "connection failed"
    elif isinstance(err, EmptyAnswer):
        reason = "empty answer"
    else:
        reason = type(err).__name__
    return f"stream broken: {reason}" if midway else reason


def make_llm_composer(settings: Settings, fallback: Composer) -> LLMComposer:
    """The LLM composer of `settings` (`RAG_LLM_*`), falling back to `fallback`."""
    config = LLMConfig.from_settings(settings)
    model = make_chat_model(config)
    log.info(
        "LLM composer: model %s at %s, prompt %s", config.model, config.base_url, PROMPT_VERSION
    )
    secrets = [config.api_key.get_secret_value()] if config.api_key else []
    return LLMComposer(model, fallback, config.timeout, secrets)
