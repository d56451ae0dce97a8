"""The LLM composer through the real LangChain client against a STUB server on loopback."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from bench.service import free_port
from rag.answer.extractive import ExtractiveComposer, ExtractiveConfig
from rag.answer.factory import make_composer
from rag.answer.llm.composer import LLMComposer, make_llm_composer
from rag.settings import Settings
from rag.types import Answer
from rag.wire import answer_payload
from tests.stub_llm import GOOD, Reply, StubLLM, running_stub
from tests.test_answer import FlatLexicon, scored

KEY = "sk-stub-SECRET-4242"
QUESTION = "质检总局局长是谁？"
PASSAGES = [
    scored(1, "会议在北京召开。质检总局局长支树平出席会议并讲话。", 0.8, at=100),
    scored(2, "天气很好。", 0.5, file="b.txt"),
]
FALLBACK = ExtractiveComposer(ExtractiveConfig(context_chars=0), FlatLexicon())
TIMEOUT = 0.5


@pytest.fixture(scope="module")
def served() -> Iterator[StubLLM]:
    FALLBACK.compose(QUESTION, PASSAGES)  # loads jieba's dictionary (a second), not timed below
    with running_stub() as stub:
        yield stub


@pytest.fixture
def stub(served: StubLLM) -> StubLLM:
    served.reply = Reply()
    served.requests.clear()
    served.release.clear()
    return served


def llm_settings(base_url: str, **extra: object) -> Settings:
    return Settings(
        answerer="llm",
        llm_base_url=base_url,
        llm_model="stub-model",
        llm_api_key=SecretStr(KEY),
        llm_timeout=TIMEOUT,
        **extra,  # type: ignore[arg-type]
    )


def composer(base_url: str) -> LLMComposer:
    return make_llm_composer(llm_settings(base_url), FALLBACK)


def streamed(llm: LLMComposer, question: str = QUESTION) -> tuple[list[str], Answer]:
    items = list(llm.stream_compose(question, PASSAGES))
    *deltas, answer = items
    assert all(isinstance(d, str) for d in deltas) and isinstance(answer, Answer)
    return [str(d) for d in deltas], answer


# -- answers the model writes -----------------------------------------------------------------


def test_a_cited_answer_quotes_the_cited_passage_with_file_offsets(stub: StubLLM) -> None:
    answer = composer(stub.url).compose(QUESTION, PASSAGES)

    assert answer.answer == GOOD
    assert (answer.composer, answer.abstained, answer.note, answer.unsupported) == (
        "llm",
        False,
        None,
        (),
    )
    (citation,) = answer.citations
    assert (citation.n, citation.file, citation.passage_id) == (1, "a.txt", 1)
    # The passage sentence that backs "质检总局局长是支树平", with its offsets in the file.
    assert citation.quote == "质检总局局长支树平出席会议并讲话。"
    assert (citation.char_start, citation.char_end) == (108, 125)
    (request,) = stub.requests
    assert request.authorization == f"Bearer {KEY}"
    assert request.body["model"] == "stub-model"
    assert request.body["max_completion_tokens"] == 512
    assert not request.body.get("stream")
    assert '<资料 编号="2">\n天气很好。\n</资料>' in request.user


def test_citations_of_passages_that_were_not_given_are_removed_and_noted(stub: StubLLM) -> None:
    stub.reply = Reply("局长是支树平[1][5]。天气很好[2]。")

    answer = composer(stub.url).compose(QUESTION, PASSAGES)

    assert answer.answer == "局长是支树平[1]。天气很好[2]。"
    assert [(c.n, c.file) for c in answer.citations] == [(1, "a.txt"), (2, "b.txt")]
    assert answer.note == "removed citations of passages that were not given: [5]"
    assert answer.composer == "llm"


def test_sentences_without_citations_are_listed_as_unsupported(stub: StubLLM) -> None:
    stub.reply = Reply("局长是支树平[1]。他是一位优秀的领导。")

    answer = composer(stub.url).compose(QUESTION, PASSAGES)

    assert answer.unsupported == ("他是一位优秀的领导。",)
    assert [c.n for c in answer.citations] == [1]
    assert not answer.abstained


def test_the_models_not_found_reply_abstains(stub: StubLLM) -> None:
    stub.reply = Reply("文档中没有找到这个问题的答案。")

    answer = composer(stub.url).compose("上海迪士尼门票多少钱？", PASSAGES)

    assert answer.abstained and answer.citations == () and answer.composer == "llm"


def test_the_answer_is_in_the_questions_script(stub: StubLLM) -> None:
    stub.reply = Reply("会议在北京召开[1]。")

    answer = composer(stub.url).compose("會議在哪裡召開？", PASSAGES)

    assert answer.answer == "會議在北京召開[1]。"
    assert "用繁体中文回答" in stub.requests[0].system


@pytest.mark.parametrize("text", ["", "[1][2]", "<think>资料1说……</think>"])
def test_an_answer_that_says_nothing_gives_the_extractive_one(stub: StubLLM, text: str) -> None:
    stub.reply = Reply(text)

    answer = composer(stub.url).compose(QUESTION, PASSAGES)

    assert answer.composer == "extractive"
    assert answer.note == "LLM unavailable (empty answer); extractive answer"


def test_with_nothing_retrieved_the_model_is_not_asked(stub: StubLLM) -> None:
    answer = composer(stub.url).compose(QUESTION, [])

    assert answer.abstained and answer.composer == "llm"
    assert stub.requests == []


# -- streaming ---------------------------------------------------------------------------------


def test_streamed_tokens_arrive_as_sent_then_the_checked_answer(stub: StubLLM) -> None:
    stub.reply = Reply("局长是支树平[1][5]。天气很好[2]。", chunk_chars=2)

    deltas, answer = streamed(composer(stub.url))

    assert deltas == ["局长", "是支", "树平", "[1", "][", "5]", "。天", "气很", "好[", "2]", "。"]
    assert answer.answer == "局长是支树平[1]。天气很好[2]。"  # checked: [5] removed
    assert [c.n for c in answer.citations] == [1, 2] and answer.composer == "llm"
    assert stub.requests[0].body["stream"] is True


# -- the model fails: the extractive answer, with a note -----------------------------------------

FAILURES = [
    pytest.param(Reply(delay=5), f"timeout after {TIMEOUT:g} s", id="slow"),
    pytest.param(Reply(status=500), "HTTP 500", id="server-error-500"),
    pytest.param(Reply(status=503), "HTTP 503", id="unavailable-503"),
    pytest.param(Reply(status=429), "rate limited, HTTP 429", id="rate-limited-429"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
@pytest.mark.parametrize(("reply", "reason"), FAILURES)
def test_a_failing_model_gives_the_extractive_answer_with_a_note(
    stub: StubLLM, reply: Reply, reason: str, stream: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stub.reply = reply
    llm = composer(stub.url)

    started = time.monotonic()
    answer = streamed(llm)[1] if stream else llm.compose(QUESTION, PASSAGES)
    elapsed = time.monotonic() - started

    expected = FALLBACK.compose(QUESTION, PASSAGES)
    assert (answer.answer, answer.citations) == (expected.answer, expected.citations)
    assert answer.composer == "extractive"
    assert answer.note == f"LLM unavailable ({reason}); extractive answer"
    assert elapsed < TIMEOUT + 1.0
    assert len(stub.requests) == 1  # no retries: the extractive answer is the retry
    assert_key_never_shown(answer, caplog)


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_with_the_questions_time_used_up_the_model_is_not_asked(
    stub: StubLLM, stream: bool
) -> None:
    """A follow-up's stalled rewrite can use up the question's time: the answer is then
    the extractive one at once, not another `timeout` spent on the model."""
    llm = composer(stub.url)
    used_up = time.monotonic()

    if stream:
        (answer,) = llm.stream_compose(QUESTION, PASSAGES, deadline=used_up)
    else:
        answer = llm.compose(QUESTION, PASSAGES, deadline=used_up)

    assert isinstance(answer, Answer) and answer.composer == "extractive"
    assert answer.note == f"LLM unavailable (timeout after {TIMEOUT:g} s); extractive answer"
    assert stub.requests == []


def test_a_refused_connection_falls_back_at_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    llm = composer(f"http://127.0.0.1:{free_port()}/v1")  # nothing listens there

    started = time.monotonic()
    answers = [llm.compose(QUESTION, PASSAGES), streamed(llm)[1]]

    assert time.monotonic() - started < 2 * TIMEOUT
    for answer in answers:
        assert answer.composer == "extractive"
        assert answer.note == "LLM unavailable (connection failed); extractive answer"
        assert_key_never_shown(answer, caplog)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        pytest.param(Reply(fail_after=3), "connection lost", id="dropped"),
        # A token every 0.2 s never trips a per-read timeout; the deadline is for the whole.
        pytest.param(
            Reply("会议" * 20, chunk_chars=1, gap=0.2), "timeout after 0.5 s", id="trickle"
        ),
    ],
)
def test_a_stream_that_breaks_midway_ends_with_the_extractive_answer(
    stub: StubLLM, reply: Reply, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    stub.reply = reply

    started = time.monotonic()
    deltas, answer = streamed(composer(stub.url))

    assert deltas  # some tokens came before the break
    assert answer.composer == "extractive"
    assert answer.note == f"LLM unavailable (stream broken: {reason}); extractive answer"
    assert answer.answer == FALLBACK.compose(QUESTION, PASSAGES).answer
    assert time.monotonic() - started < TIMEOUT + 1.0
    assert_key_never_shown(answer, caplog)


def assert_key_never_shown(answer: Answer, caplog: pytest.LogCaptureFixture) -> None:
    assert KEY not in json.dumps(answer_payload(answer), ensure_ascii=False)
    assert KEY not in caplog.text
    assert "LLM unavailable" in caplog.text


def test_the_key_echoed_in_an_error_is_redacted_from_the_log(
    stub: StubLLM, caplog: pytest.LogCaptureFixture
) -> None:
    stub.reply = Reply(status=500)  # the stub's error message repeats the Authorization header

    composer(stub.url).compose(QUESTION, PASSAGES)

    assert "scripted failure for Bearer ***" in caplog.text
    assert KEY not in caplog.text


# -- building it -------------------------------------------------------------------------------


def test_settings_choose_the_composer() -> None:
    assert isinstance(make_composer(Settings(), FlatLexicon()), ExtractiveComposer)
    chosen = make_composer(llm_settings("http://127.0.0.1:9/v1"), FlatLexicon())
    assert isinstance(chosen, LLMComposer)
    assert isinstance(chosen.fallback, ExtractiveComposer)
    assert KEY not in repr(llm_settings("http://127.0.0.1:9/v1"))


def test_a_missing_endpoint_or_model_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="needs RAG_LLM_BASE_URL and RAG_LLM_MODEL"):
        make_composer(Settings(answerer="llm"), FlatLexicon())
    with pytest.raises(ValueError, match=r"needs RAG_LLM_MODEL$"):
        make_composer(Settings(answerer="llm", llm_base_url="http://x/v1"), FlatLexicon())


def test_without_langchain_openai_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "langchain_openai", None)  # as if not installed

    with pytest.raises(ImportError, match=r"pip install '\.\[llm\]'"):
        make_composer(llm_settings("http://127.0.0.1:9/v1"), FlatLexicon())


def test_importing_the_pipeline_does_not_load_langchain_openai() -> None:
    code = "import sys, rag.pipeline, service.app; print('langchain_openai' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
