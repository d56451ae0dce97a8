"""The reader study's labels: the gold answer's tokens in each window, and back to its text."""

from __future__ import annotations

import numpy as np
import pytest

from embeddings.e5 import E5Embedder
from eval.studies.reader import Example, around_answer, best_span, encode, labels

pytest.importorskip("transformers", reason="the reader study needs transformers")

CONTEXT = (
    "全国质量技术监督工作座谈会在北京召开。国家质检总局副局长梅克保主持座谈会，局长支树平讲话。"
)


@pytest.fixture(scope="module")
def tokenizer(e5: object) -> object:
    from transformers import AutoTokenizer

    assert isinstance(e5, E5Embedder)
    return AutoTokenizer.from_pretrained(e5.folder)


def _example(answer: str, context: str = CONTEXT) -> Example:
    return Example("q1", "谁主持了座谈会？", context, (answer,), context.find(answer))


def test_the_labelled_tokens_slice_back_to_the_gold_answer(tokenizer: object) -> None:
    ex = _example("梅克保")
    enc = encode(tokenizer, [ex], window=256, stride=64)
    starts, ends = labels(enc, [ex])
    width = enc["input_ids"].shape[1]
    start, end = np.full((1, width), -5.0), np.full((1, width), -5.0)
    start[0, starts[0]] = end[0, ends[0]] = 5.0
    assert starts[0] > 0
    assert best_span(enc, start, end, [ex]) == ["梅克保"]


def test_a_window_without_the_answer_points_at_the_first_token(tokenizer: object) -> None:
    # Windows of 24 tokens: the answer near the end is outside the first ones.
    ex = _example("支树平")
    enc = encode(tokenizer, [ex], window=24, stride=4)
    starts, ends = labels(enc, [ex])
    assert len(starts) > 1
    assert (starts[0], ends[0]) == (0, 0)
    assert any(s > 0 for s in starts)


@pytest.mark.parametrize("answer", ["全国", "梅克保", "讲话"])
def test_the_window_around_the_answer_holds_it_at_its_offset(answer: str) -> None:
    # At the context's start, inside it and at its end: the window keeps its width.
    for seed in range(20):
        ex = Example(str(seed), "问题", CONTEXT, (answer,), CONTEXT.find(answer))
        window = around_answer(ex, 20)
        assert len(window.context) == 20
        assert window.context[window.start : window.start + len(answer)] == answer
