"""Contract test of the `Composer` protocol: every composer of the factory passes it.

Each answer's citations quote their passage's source exactly, name where it stands, and the
answer text carries their numbers; no passages means an abstention. The LLM composer runs
against the stub chat server (tests/stub_llm.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from rag.answer.base import Composer, StreamingComposer
from rag.answer.factory import COMPOSERS, make_composer
from rag.settings import Settings
from rag.types import Answer
from tests.stub_llm import Reply, StubLLM, running_stub
from tests.test_answer import FlatLexicon, scored

QUESTION = "质检总局局长是谁？"
PASSAGES = [
    scored(1, "会议在北京召开。质检总局局长支树平出席会议并讲话。", 0.8, at=100),
    scored(2, "天气很好。", 0.5, file="b.txt"),
]


@pytest.fixture(scope="module")
def stub() -> Iterator[StubLLM]:
    with running_stub() as served:
        yield served


def settings_for(name: str, stub: StubLLM) -> Settings:
    if name == "llm":
        return Settings(
            answerer="llm",
            llm_base_url=stub.url,
            llm_model="stub-model",
            llm_api_key=SecretStr("sk-contract"),
            llm_timeout=5,
        )
    return Settings(answerer=name)


@pytest.fixture(params=list(COMPOSERS))
def composer(request: pytest.FixtureRequest, stub: StubLLM) -> Composer:
    stub.reply = Reply()
    return make_composer(settings_for(request.param, stub), FlatLexicon())


def check(answer: Answer) -> None:
    assert answer.question == QUESTION
    assert answer.composer in COMPOSERS
    if answer.abstained:
        assert not answer.citations
        return
    assert answer.citations
    for c in answer.citations:
        passage = next(p.passage for p in PASSAGES if p.passage.id == c.passage_id)
        source = passage.sources[0]
        assert c.quote and c.quote in source.text
        start = source.text.index(c.quote)
        assert (c.char_start, c.char_end) == source.quote_span(start, start + len(c.quote))
        assert (c.file, c.paragraph, c.page) == (source.file, source.paragraph, source.page)
        assert f"[{c.n}]" in answer.answer


def test_a_composer_answers_with_exact_citations(composer: Composer) -> None:
    answer = composer.compose(QUESTION, PASSAGES)
    assert not answer.abstained
    assert "支树平" in answer.answer
    check(answer)


def test_a_composer_abstains_without_passages(composer: Composer) -> None:
    answer = composer.compose(QUESTION, [])
    assert answer.abstained and not answer.citations


def test_a_streaming_composer_ends_its_stream_with_the_checked_answer(composer: Composer) -> None:
    if not isinstance(composer, StreamingComposer):
        pytest.skip("not a streaming composer")
    *pieces, last = list(composer.stream_compose(QUESTION, PASSAGES))
    assert all(isinstance(p, str) for p in pieces) and isinstance(last, Answer)
    check(last)


def test_the_factory_names_every_composer_when_asked_for_another() -> None:
    with pytest.raises(ValueError, match="valid: extractive, llm"):
        make_composer(Settings(answerer="oracle"), FlatLexicon())
