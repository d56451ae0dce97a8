"""The sentence ranker study: its features see what they claim, and its fit learns them."""

from __future__ import annotations

import numpy as np

from eval.studies.sentence_ranker import FEATURES, Evidence, Row, accuracy, fit, sentence_features
from rag.answer.spans.features import prepare

TEXT = "全国质量技术监督工作座谈会在北京召开。局长支树平讲话。副局长梅克保主持座谈会。"


def _evidence() -> list[Evidence]:
    spans = [(0, 19), (19, 27), (27, 39)]
    return [Evidence(a, b, gain=0.5, direct=0.2 * i, typed=False) for i, (a, b) in enumerate(spans)]


def test_the_words_around_the_wh_word_are_found_in_the_sentence_that_answers() -> None:
    rows = sentence_features(prepare("谁主持了座谈会？"), TEXT, _evidence(), None)
    right = rows[:, FEATURES.index("right_anchor")]
    # "主持" starts the question after 谁: the sentence naming who chaired has it.
    assert right.tolist() == [0, 0, 2 / 6]


def test_the_top_sentence_and_its_neighbours_are_marked() -> None:
    rows = sentence_features(prepare("谁主持了座谈会？"), TEXT, _evidence(), None)
    assert rows[:, FEATURES.index("is_top")].tolist() == [0, 0, 1]
    assert rows[:, FEATURES.index("before_top")].tolist() == [0, 1, 0]
    assert rows[:, FEATURES.index("after_top")].tolist() == [0, 0, 0]


def test_the_fit_learns_the_feature_that_marks_the_right_sentence() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(200):
        x = rng.normal(size=(4, len(FEATURES)))
        right = int(np.argmax(x[:, 3]))  # the sentence with the highest "typed" is right
        mask = np.zeros(4, dtype=bool)
        mask[right] = True
        rows.append(Row(mask, 0, x, ((0, 1), (1, 2), (2, 3), (3, 4)), None))
    model = fit(rows)
    assert int(np.argmax(np.abs(model[0]))) == 3
    assert accuracy(rows, 0, model) > 0.9 > accuracy(rows, 0, None)
