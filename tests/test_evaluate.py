"""`rag eval` as a whole, with a fake target: files written, Ctrl-C, question selection."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from eval import checks, scoring
from eval import evaluate as evaluate_module
from eval.checks import EvalError
from eval.evaluate import EvalOptions, Target, evaluate, load_question_set, select
from eval.report import render_html
from eval.versions import SCORING_VERSION
from rag.types import Turn
from tests.conftest import SEEDS_DEV, visible_text

pytestmark = pytest.mark.skipif(not SEEDS_DEV.exists(), reason="../shared/qa not found")


def fake_answer(question: str, top_k: int, history: Sequence[Turn] = ()) -> dict[str, Any]:
    """TEST FAKE: answers every question with its own text, citing nothing."""
    return {
        "question": question,
        "answer": question,
        "abstained": False,
        "citations": [],
        "passages": [],
        "timings_ms": {"total": 1.0},
    }


def use_target(monkeypatch: pytest.MonkeyPatch, ask: Any) -> None:
    @contextlib.contextmanager
    def fake_target(*_: object) -> Iterator[Target]:
        yield Target(ask, lambda _: None, {"fake": True})

    monkeypatch.setattr(evaluate_module, "open_target", fake_target)


def test_a_run_writes_report_predictions_and_html(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_target(monkeypatch, fake_answer)
    options = EvalOptions(
        inputs=[SEEDS_DEV],
        predictions=tmp_path / "p.jsonl",
        out=tmp_path / "r.json",
        html=tmp_path / "r.html",
    )

    report = evaluate(options)

    lines = (tmp_path / "p.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == report["run"]["questions"] == 11
    assert json.loads(lines[0])["id"] == "d-01"
    assert json.loads((tmp_path / "r.json").read_text(encoding="utf-8")) == report
    assert "unanswerable" in report["by_kind"]
    assert report["metrics"]["abstention_recall"] == 0.0  # the fake never abstains
    assert "<svg" in (tmp_path / "r.html").read_text(encoding="utf-8")


def test_a_conversation_set_is_asked_with_its_history(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    histories: list[Sequence[Turn]] = []

    def remembering(question: str, top_k: int, history: Sequence[Turn]) -> dict[str, Any]:
        histories.append(history)
        return fake_answer(question, top_k)

    questions = tmp_path / "followups.jsonl"
    row = {
        "id": "c1",
        "question": "它在哪？",
        "history": [{"question": "大莱龙铁路有多长？", "answer": "157公里"}],
        "standalone": "大莱龙铁路在哪？",
        "answers": ["山东"],
        "file": "a.txt",
        "paragraph": 2,
    }
    questions.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    use_target(monkeypatch, remembering)

    evaluate(EvalOptions(inputs=[questions], predictions=tmp_path / "p.jsonl"))

    assert histories == [(Turn("大莱龙铁路有多长？", "157公里"),)]
    prediction = json.loads((tmp_path / "p.jsonl").read_text(encoding="utf-8"))
    assert prediction["gold_standalone"] == "大莱龙铁路在哪？"


def test_ctrl_c_leaves_a_valid_partial_report(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    asked: list[str] = []

    def interrupted_after_three(
        question: str, top_k: int, history: Sequence[Turn]
    ) -> dict[str, Any]:
        if len(asked) == 3:
            raise KeyboardInterrupt
        asked.append(question)
        return fake_answer(question, top_k)

    use_target(monkeypatch, interrupted_after_three)
    report = evaluate(EvalOptions(inputs=[SEEDS_DEV], out=tmp_path / "r.json"))

    saved = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert saved["run"]["interrupted"] is True
    # run.questions is the number planned, metrics.questions the number answered: the
    # report said 3 and 3, so the page's "interrupted after 3 of 11" could never show 11.
    assert (saved["run"]["questions"], saved["metrics"]["questions"]) == (11, 3)
    assert report == saved


def test_sample_and_limit_choose_questions_reproducibly() -> None:
    questions = load_question_set([SEEDS_DEV]).questions

    first = select(questions, EvalOptions(inputs=[], sample=5, seed=1))
    again = select(questions, EvalOptions(inputs=[], sample=5, seed=1))

    assert [q.id for q in first] == [q.id for q in again] and len(first) == 5
    assert len(select(questions, EvalOptions(inputs=[], limit=2))) == 2


def test_mixed_or_unknown_inputs_are_refused(tmp_path: Path) -> None:
    squad = tmp_path / "set.json"
    squad.write_text(json.dumps({"data": []}), encoding="utf-8")
    with pytest.raises(EvalError, match="not both"):
        load_question_set([squad, SEEDS_DEV])
    with pytest.raises(EvalError, match="no questions"):
        load_question_set([tmp_path / "notes.txt"])


def test_an_input_that_is_no_question_set_is_refused_not_skipped(tmp_path: Path) -> None:
    # `rag eval seeds.jsonl more.txt` ran seeds.jsonl alone and reported it as the run.
    notes = tmp_path / "more questions.txt"
    notes.write_text('{"question": "甲？"}\n', encoding="utf-8")
    with pytest.raises(EvalError, match=r"no questions read from .*more questions\.txt"):
        load_question_set([SEEDS_DEV, notes])


def test_suffixes_are_told_in_any_case(tmp_path: Path) -> None:
    upper = tmp_path / "SEEDS.JSONL"
    upper.write_text(SEEDS_DEV.read_text(encoding="utf-8"), encoding="utf-8")
    assert len(load_question_set([upper]).questions) == 11


@pytest.mark.parametrize(
    ("name", "text"), [("empty.jsonl", ""), ("blank.jsonl", "\n\n"), ("none.json", '{"data": []}')]
)
def test_a_set_without_questions_is_refused(tmp_path: Path, name: str, text: str) -> None:
    # A SQuAD file with no articles went on to build and ask an empty index.
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(EvalError, match=f"no questions in .*{name}"):
        load_question_set([path])


@pytest.mark.parametrize("name", ["seeds.jsonl", "squad.json"])
def test_a_set_saved_with_a_byte_order_mark_is_read(tmp_path: Path, name: str) -> None:
    # Notepad and Excel save UTF-8 with a BOM: line 1 was refused as "not JSON".
    row = {"id": "q1", "question": "质检总局局长是谁？", "answers": ["支树平"]}
    squad = {"question": row["question"], "id": "q1", "answers": [{"text": "支树平"}]}
    data = {"data": [{"title": "t", "paragraphs": [{"context": "支树平。", "qas": [squad]}]}]}
    text = json.dumps(row if name.endswith("l") else data, ensure_ascii=False)
    path = tmp_path / name
    path.write_text(text + "\n", encoding="utf-8-sig")

    (question,) = load_question_set([path]).questions

    assert (question.id, question.answers) == ("q1", ("支树平",))
    assert question.question == row["question"]


def test_a_folder_named_like_a_set_is_refused_with_a_message(tmp_path: Path) -> None:
    for name in ("folder.json", "folder.jsonl"):
        (tmp_path / name).mkdir()
        with pytest.raises(EvalError, match=f"cannot read .*{name}"):
            load_question_set([tmp_path / name])


@pytest.mark.parametrize(
    ("name", "text", "said"),
    [
        ("set.jsonl", '{"id": 1, "question": "甲？"}\nnot json\n', "set.jsonl:2: not JSON"),
        ("set.jsonl", '{"id": 1, "answers": ["乙"]}\n', "set.jsonl:1: not a question"),
        ("set.jsonl", '["甲？", "乙"]\n', "set.jsonl:1: not a question"),
        ("set.jsonl", '{"question": "甲？", "answers": "北京"}\n', 'set.jsonl:1: "answers" must'),
        ("set.jsonl", '{"question": "甲？", "answers": [1990]}\n', 'set.jsonl:1: "answers" must'),
        ("set.jsonl", '{"question": "甲？", "paragraph": "2"}\n', 'set.jsonl:1: "paragraph" must'),
        ("set.jsonl", '{"question": "甲？", "paragraph": 0}\n', 'set.jsonl:1: "paragraph" must'),
        ("set.jsonl", '{"question": "甲？", "file": 7}\n', 'set.jsonl:1: "file" must'),
        ("set.json", '{"data": [{"title": "无段落"}]}', "set.json: not a SQuAD file"),
        (
            "set.json",
            '{"data": [{"paragraphs": [{"context": "甲。", "qas": '
            '[{"id": "q1", "question": "乙？", "answers": [{"text": 1990}]}]}]}]}',
            "set.json: question 'q1': the question and answer texts must be strings",
        ),
        ("set.json", "{not json", "set.json: "),
        # Blank gold is in every answer: each such question scored a hit whatever it said.
        (
            "set.jsonl",
            '{"id": "b7", "question": "甲？", "answers": ["乙", " \\u3000\\n"]}\n',
            'set.jsonl:1: "answers": an answer is empty or only white space',
        ),
        (
            "set.jsonl",
            '{"id": "e2", "question": "甲？", "file": "a.txt", "evidence": "  "}\n',
            'set.jsonl:1: "evidence" is empty or only white space',
        ),
        (
            "set.json",
            '{"data": [{"paragraphs": [{"context": "甲。", "qas": '
            '[{"id": "q1", "question": "乙？", "answers": [{"text": " "}]}]}]}]}',
            "set.json: question 'q1': an answer is empty or only white space",
        ),
        # Gold of only punctuation: 。 is in almost every answer, and exact match drops it.
        (
            "set.jsonl",
            '{"id": "p1", "question": "甲？", "answers": ["乙", "。"]}\n',
            'set.jsonl:1: "answers": an answer is only punctuation or symbols',
        ),
        (
            "set.jsonl",
            '{"id": "p2", "question": "甲？", "file": "a.txt", "evidence": "……"}\n',
            'set.jsonl:1: "evidence" is only punctuation or symbols',
        ),
        (
            "set.json",
            '{"data": [{"paragraphs": [{"context": "甲——乙。", "qas": '
            '[{"id": "q1", "question": "乙？", "answers": [{"text": "——"}]}]}]}]}',
            "set.json: question 'q1': an answer is only punctuation or symbols",
        ),
        # A blank question was asked all the same and scored a miss (or an error) of the run.
        (
            "set.jsonl",
            '{"id": 1, "question": "甲？"}\n{"id": 2, "question": " \\u3000\\t"}\n',
            'set.jsonl:2: "question" is empty or only white space: there is nothing to ask',
        ),
        (
            "set.json",
            '{"data": [{"paragraphs": [{"context": "甲。", "qas": '
            '[{"id": "q1", "question": "", "answers": [{"text": "甲"}]}]}]}]}',
            "set.json: question 'q1': the question is empty or only white space",
        ),
    ],
)
def test_a_malformed_question_set_is_refused_with_where(
    tmp_path: Path, name: str, text: str, said: str
) -> None:
    # These ended `rag eval` in a KeyError or ValueError traceback instead of a message.
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(EvalError) as refused:
        load_question_set([path])
    assert said in str(refused.value)


def test_a_blank_question_is_refused_before_any_question_is_asked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # As blank gold is: exit 2 naming the line, not a run with that question a miss.
    from typer.testing import CliRunner

    from cli.app import app

    asked: list[str] = []

    def counting(question: str, top_k: int, history: Sequence[Turn]) -> dict[str, Any]:
        asked.append(question)
        return fake_answer(question, top_k)

    rows = [{"id": "q1", "question": "谁出席了会议？"}, {"id": "q2", "question": "  "}]
    questions = tmp_path / "set.jsonl"
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    use_target(monkeypatch, counting)
    monkeypatch.setattr("signal.signal", lambda *_: None)  # leave pytest's SIGTERM alone
    result = CliRunner().invoke(app, ["eval", str(questions), "--out", str(tmp_path / "r.json")])

    assert result.exit_code == 2, result.output
    said = " ".join(result.stderr.split())  # rich wraps the long path
    assert 'set.jsonl:2: "question" is empty or only white space' in said
    assert asked == [] and not (tmp_path / "r.json").exists()


def test_a_missing_index_without_docs_is_refused_and_not_built(tmp_path: Path) -> None:
    # `rag eval set.jsonl --index typo` built an empty index at typo, then called it empty.
    typo = tmp_path / "typo"
    with (
        pytest.raises(EvalError, match=r"no index at .*give --docs DIR"),
        evaluate_module._ours_target(None, typo, lambda _: None),
    ):
        pass
    assert not typo.exists()


def test_our_pipeline_is_warmed_up_before_the_first_question_is_timed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from rag.pipeline import WARM_UP_QUESTION, Pipeline

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("质检总局局长支树平出席会议并讲话。\n", encoding="utf-8")
    events: list[str] = []
    warm_up = Pipeline.warm_up

    def recorded(self: Pipeline, question: str = WARM_UP_QUESTION) -> None:
        events.append("warm_up")
        warm_up(self, question)

    monkeypatch.setattr(Pipeline, "warm_up", recorded)
    with evaluate_module._ours_target(docs, tmp_path / "index", lambda _: None) as target:
        events.append("ready")
        answer = target.ask("质检总局局长是谁？", 3, ())
    assert events == ["warm_up", "ready"]
    assert "支树平" in answer["answer"]


def test_output_files_go_into_folders_made_for_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # `--out runs/ours.json` with no runs/ yet ended a finished run in a traceback, the
    # report unwritten.
    use_target(monkeypatch, fake_answer)
    runs = tmp_path / "runs of 十一月"
    options = EvalOptions(
        inputs=[SEEDS_DEV],
        out=runs / "r.json",
        html=runs / "html" / "r.html",
        predictions=runs / "p.jsonl",
    )

    report = evaluate(options)

    assert json.loads((runs / "r.json").read_text(encoding="utf-8")) == report
    assert (runs / "html" / "r.html").is_file() and (runs / "p.jsonl").is_file()


@pytest.mark.parametrize(
    ("compare", "out", "said"),
    [
        ("absent.json", "r.json", "--compare .*absent.json: cannot read a report"),
        ("bad.json", "r.json", "--compare .*bad.json: cannot read a report"),
        ("list.json", "r.json", "--compare .*list.json: not a report"),
        (None, ".", "is a directory"),
    ],
)
def test_a_bad_compare_or_output_path_is_refused_before_any_question_is_asked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, compare: str | None, out: str, said: str
) -> None:
    # They were found once every question had been answered: the run was lost to a traceback.
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "list.json").write_text("[]", encoding="utf-8")
    asked: list[str] = []

    def counting(question: str, top_k: int, history: Sequence[Turn]) -> dict[str, Any]:
        asked.append(question)
        return fake_answer(question, top_k)

    use_target(monkeypatch, counting)
    options = EvalOptions(
        inputs=[SEEDS_DEV],
        out=tmp_path / out,
        html=tmp_path / "r.html",
        compare=tmp_path / compare if compare else None,
    )

    with pytest.raises(EvalError, match=said):
        evaluate(options)
    assert asked == []
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize(
    ("part", "said"),
    [
        ({"by_kind": {"factoid": 0.8}}, "by_kind.factoid is not an object"),
        ({"by_kind": {"factoid": {"hit@1": "87%"}}}, "by_kind.factoid.hit@1 is '87%'"),
        ({"by_kind": ["factoid"]}, "by_kind is not an object"),
        ({"hit_curve": {"1": None}}, "hit_curve is not an object"),
        ({"metrics": {"hit@1": [0.8]}}, r"metrics.hit@1 is \[0.8\]"),
        ({"metrics": {"errors": "none"}}, "metrics.errors is 'none'"),
        ({"metrics": {"latency_ms": {"total": {"p50": 3}}}}, "metrics.latency_ms.total needs p50"),
        ({"run": {"seconds": "812"}}, "run.seconds is '812'"),
        ({"run": {"pipeline": 7}, "hit_curve": {"1": 0.5}}, "run.pipeline is 7"),
        ({"run": {"scoring_version": "2"}}, "run.scoring_version is '2', not a version"),
        ({"run": {"scoring_version": True}}, "run.scoring_version is True, not a version"),
    ],
)
def test_a_compare_report_the_page_cannot_read_is_refused_before_the_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, part: dict[str, Any], said: str
) -> None:
    # Only `run` and `metrics` were checked to be objects: a malformed `by_kind` crashed the
    # HTML render once every question had been answered.
    asked: list[str] = []

    def counting(question: str, top_k: int, history: Sequence[Turn]) -> dict[str, Any]:
        asked.append(question)
        return fake_answer(question, top_k)

    use_target(monkeypatch, counting)
    compared: dict[str, Any] = {
        "run": {"pipeline": "langchain-baseline"},
        "metrics": {"questions": 11},
    }
    for key, value in part.items():
        compared[key] = {**compared.get(key, {}), **value} if isinstance(value, dict) else value
    (tmp_path / "base.json").write_text(json.dumps(compared), encoding="utf-8")
    options = EvalOptions(
        inputs=[SEEDS_DEV], html=tmp_path / "r.html", compare=tmp_path / "base.json"
    )

    with pytest.raises(EvalError, match=f"--compare .*base.json: not a report .*: {said}"):
        evaluate(options)
    assert asked == []


def test_a_well_formed_compare_report_is_rendered_beside_the_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_target(monkeypatch, fake_answer)
    evaluate(EvalOptions(inputs=[SEEDS_DEV], out=tmp_path / "base.json", top_k=5))
    options = EvalOptions(
        inputs=[SEEDS_DEV], html=tmp_path / "r.html", compare=tmp_path / "base.json"
    )

    evaluate(options)

    assert "MRR@5" in (tmp_path / "r.html").read_text(encoding="utf-8")


def flaky(question: str, top_k: int, history: Sequence[Turn] = ()) -> dict[str, Any]:
    """TEST FAKE: fails the questions that start with 质检 (some of the seed set)."""
    if question.startswith("质检"):
        raise RuntimeError("HTTP 503")
    return fake_answer(question, top_k)


def report_of(
    monkeypatch: pytest.MonkeyPatch, path: Path, ask: Any, scoring_version: bool = True
) -> dict[str, Any]:
    """A report of the seed set written to `path`, without its scoring version if told so
    (as reports were before they recorded one)."""
    use_target(monkeypatch, ask)
    report = evaluate(EvalOptions(inputs=[SEEDS_DEV], out=path))
    if not scoring_version:
        del report["run"]["scoring_version"]
        path.write_text(json.dumps(report, ensure_ascii=False), encoding="utf-8")
    return report


def eval_comparing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, compared: Path
) -> tuple[Any, dict[str, Any], str]:
    """`rag eval` of the seed set (every question answered) with `--compare compared`: the
    CLI result, the JSON report and the HTML page's text."""
    from typer.testing import CliRunner

    from cli.app import app

    use_target(monkeypatch, fake_answer)
    monkeypatch.setattr("signal.signal", lambda *_: None)  # leave pytest's SIGTERM alone
    out, html = tmp_path / "r.json", tmp_path / "r.html"
    args = ["eval", str(SEEDS_DEV), "--compare", str(compared), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--html", str(html)])
    assert result.exit_code == 0, result.output
    page = visible_text(html.read_text(encoding="utf-8"))
    return result, json.loads(out.read_text(encoding="utf-8")), page


def test_a_report_records_the_version_of_its_scoring(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_target(monkeypatch, fake_answer)
    report = evaluate(EvalOptions(inputs=[SEEDS_DEV], out=tmp_path / "r.json"))

    assert report["run"]["scoring_version"] == SCORING_VERSION
    page = visible_text(render_html(report))
    assert f"scoring version {SCORING_VERSION} (a failed question counts as a miss" in page


def test_comparing_with_an_unversioned_report_with_failures_warns(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Reports before errors counted as misses left failed questions out of every rate: set
    # beside this run's, 100% of the answered read as if of all, with not a word said.
    old = report_of(monkeypatch, tmp_path / "old.json", flaky, scoring_version=False)
    failed = old["metrics"]["errors"]
    assert failed  # the fake fails some

    result, report, page = eval_comparing(monkeypatch, tmp_path, tmp_path / "old.json")

    said = " ".join(result.stderr.split())  # rich wraps lines
    assert "warning: --compare" in said
    assert f"old.json has no scoring version and {failed} of its 11 questions failed" in said
    assert report["compared"] == {
        "report": str(tmp_path / "old.json"),
        "scoring_version": None,
        "comparable": False,
        "note": report["compared"]["note"],
    }
    assert "too little per question to recompute" in report["compared"]["note"]
    assert json.loads(result.stdout)["compared"] == report["compared"]
    assert "The baseline's rates may not be scored as this run's" in page
    assert "no scoring version" in page


def test_an_unversioned_report_without_failures_compares_and_says_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # With no question failed, the old rule and the new give the same rates.
    report_of(monkeypatch, tmp_path / "old.json", fake_answer, scoring_version=False)

    result, report, page = eval_comparing(monkeypatch, tmp_path, tmp_path / "old.json")

    assert report["compared"]["comparable"] is True
    assert "nothing to recompute" in report["compared"]["note"]
    assert "warning" not in result.stderr
    assert "note: --compare" in " ".join(result.stderr.split())
    assert "may not be scored as this run's" not in page and "nothing to recompute" in page


def test_a_report_of_this_scoring_version_compares_without_a_word(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    report_of(monkeypatch, tmp_path / "base.json", flaky)

    result, report, page = eval_comparing(monkeypatch, tmp_path, tmp_path / "base.json")

    assert report["compared"]["scoring_version"] == SCORING_VERSION
    assert (report["compared"]["comparable"], report["compared"]["note"]) == (True, None)
    assert "--compare" not in result.stderr
    assert "may not be scored as this run's" not in page


def test_squad_2_impossible_questions_expect_an_abstention(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # SQuAD 2.0's `is_impossible` was ignored: an abstention on such a question was scored
    # "should answer" and its retrieval a passage miss, and abstention went unmeasured.
    qas = [
        {"id": "a", "question": "谁出席了会议？", "answers": [{"text": "支树平"}]},
        {"id": "i", "question": "会议在哪一年闭幕？", "answers": [], "is_impossible": True},
    ]
    context = {"context": "质检总局局长支树平出席会议并讲话。", "qas": qas}
    squad = tmp_path / "squad2.json"
    squad.write_text(
        json.dumps({"data": [{"title": "会议", "paragraphs": [context]}]}), encoding="utf-8"
    )

    def abstaining(question: str, top_k: int, history: Sequence[Turn]) -> dict[str, Any]:
        return fake_answer(question, top_k) | {"answer": "", "abstained": True}

    use_target(monkeypatch, abstaining)
    report = evaluate(EvalOptions(inputs=[squad]))

    assert [q.kind for q in load_question_set([squad]).questions] == ["squad2", "unanswerable"]
    assert report["metrics"]["unanswerable"] == 1
    assert report["metrics"]["abstention_recall"] == 1.0
    assert report["metrics"]["abstention_precision"] == 0.5
    assert {f["id"]: f["reasons"] for f in report["failures"]} == {
        "a": ["passage_miss", "answer_miss", "citation_wrong", "should_answer"]
    }


def test_an_interrupted_run_prints_its_partial_summary_and_exits_130(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # It exited 0: `rag eval ... && publish` published a partial run as a whole one.
    from typer.testing import CliRunner

    from cli.app import app

    asked: list[str] = []

    def interrupted_after_two(question: str, top_k: int, history: Sequence[Turn]) -> dict[str, Any]:
        if len(asked) == 2:
            raise KeyboardInterrupt
        asked.append(question)
        return fake_answer(question, top_k)

    use_target(monkeypatch, interrupted_after_two)
    monkeypatch.setattr("signal.signal", lambda *_: None)  # leave pytest's SIGTERM alone
    result = CliRunner().invoke(app, ["eval", str(SEEDS_DEV), "--out", str(tmp_path / "r.json")])

    assert result.exit_code == 130, result.output
    assert json.loads(result.stdout)["run"]["interrupted"] is True
    assert "partial report of 2 of 11 questions" in result.stderr
    saved = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert (saved["run"]["questions"], saved["metrics"]["questions"]) == (11, 2)


def test_sigterm_while_scoring_still_writes_the_report_and_the_handler_is_restored(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Once the answers were in, a SIGTERM ended the run in "Aborted!" with no report; and
    # the SIGTERM handler `rag eval` set was left in place after it returned.
    import os
    import signal

    from typer.testing import CliRunner

    from cli.app import app

    scored: list[str] = []

    def score_under_sigterm(outcome: Any, source_text: Any) -> Any:
        if not scored:
            os.kill(os.getpid(), signal.SIGTERM)  # handled in this thread before kill returns
        scored.append(outcome.question.id)
        return real_score(outcome, source_text)

    real_score = scoring.score
    use_target(monkeypatch, fake_answer)
    monkeypatch.setattr(evaluate_module, "score", score_under_sigterm)
    before = signal.getsignal(signal.SIGTERM)
    try:
        result = CliRunner().invoke(app, ["eval", str(SEEDS_DEV), "--out", str(tmp_path / "r")])
        after = signal.getsignal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, before)

    assert result.exit_code == 0, result.output
    assert "writing the report of the answered questions first" in result.stderr
    assert json.loads((tmp_path / "r").read_text(encoding="utf-8"))["metrics"]["questions"] == 11
    assert len(scored) == 11
    assert after == before


def test_an_ignored_sigint_stays_ignored_while_the_report_is_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A run started with `nohup` or `&` ignores SIGINT; finishing the report must not
    # start taking it (as an interrupt to announce, or a second one to stop on).
    import os
    import signal

    said: list[str] = []

    def score_under_sigint(outcome: Any, source_text: Any) -> Any:
        if outcome.question.id == "d-01":
            os.kill(os.getpid(), signal.SIGINT)
        return real_score(outcome, source_text)

    real_score = scoring.score
    use_target(monkeypatch, fake_answer)
    monkeypatch.setattr(evaluate_module, "score", score_under_sigint)
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        report = evaluate(EvalOptions(inputs=[SEEDS_DEV]), log=said.append)
        after = signal.getsignal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, before)

    assert report["metrics"]["questions"] == 11
    assert said == [] and after is signal.SIG_IGN


def test_an_interrupt_before_the_first_answer_is_a_message_not_aborted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import signal

    from typer.testing import CliRunner

    from cli.app import app

    @contextlib.contextmanager
    def indexing_interrupted(*_: object) -> Iterator[Target]:
        raise KeyboardInterrupt  # Ctrl-C, or SIGTERM made one, while indexing
        yield  # pragma: no cover

    monkeypatch.setattr(evaluate_module, "open_target", indexing_interrupted)
    before = signal.getsignal(signal.SIGTERM)
    try:
        result = CliRunner().invoke(app, ["eval", str(SEEDS_DEV)])
        after = signal.getsignal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, before)

    assert result.exit_code == 130, result.output
    assert "interrupted before any question was answered" in result.stderr
    assert "Aborted" not in result.output
    assert after == before


@pytest.mark.parametrize("option", ["out", "html", "predictions"])
def test_an_output_over_a_question_set_is_refused_and_the_set_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, option: str
) -> None:
    # `--predictions set.jsonl` opened the input for writing: the questions were lost.
    questions = tmp_path / "set.jsonl"
    text = SEEDS_DEV.read_text(encoding="utf-8")
    questions.write_text(text, encoding="utf-8")
    use_target(monkeypatch, fake_answer)
    given = {option: tmp_path / "." / "set.jsonl"}

    with pytest.raises(EvalError, match=rf"--{option} .* would overwrite .*set\.jsonl"):
        evaluate(EvalOptions(inputs=[questions], **given))  # type: ignore[arg-type]
    assert questions.read_text(encoding="utf-8") == text


def test_two_outputs_at_one_path_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_target(monkeypatch, fake_answer)
    same = tmp_path / "run.json"
    with pytest.raises(EvalError, match=r"--predictions .*run\.json would overwrite the file of"):
        evaluate(EvalOptions(inputs=[SEEDS_DEV], out=same, predictions=same))


@pytest.mark.parametrize(
    ("inputs", "given", "said"),
    [
        ("seeds", {"url": "http://h", "pipeline": "langchain-baseline"}, "--pipeline lang"),
        ("seeds", {"url": "http://h", "index": Path("idx")}, "--index: not used with --url"),
        ("seeds", {"url": "http://h", "docs": Path("d")}, "--docs: not used with --url"),
        ("squad", {"docs": Path("d")}, "--docs: not used with SQuAD files"),
        ("seeds", {"pipeline": "langchain-baseline", "collection": "kb"}, "--collection: the"),
    ],
)
def test_an_option_the_run_would_ignore_is_refused(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    inputs: str,
    given: dict[str, Any],
    said: str,
) -> None:
    # Each was accepted and ignored: `--url ... --pipeline langchain-baseline` measured the
    # service and `--docs` beside SQuAD files indexed the SQuAD contexts alone.
    squad = tmp_path / "squad.json"
    context = {"context": "甲。", "qas": [{"id": 1, "question": "乙？"}]}
    squad.write_text(json.dumps({"data": [{"paragraphs": [context]}]}), encoding="utf-8")
    use_target(monkeypatch, fake_answer)
    with pytest.raises(EvalError, match=said):
        evaluate(EvalOptions(inputs=[SEEDS_DEV if inputs == "seeds" else squad], **given))


def test_two_squad_files_of_one_name_are_refused(tmp_path: Path) -> None:
    # cmrc/dev.json and drcd/dev.json both wrote dev/0000_<title>.txt: same titles overwrote
    # each other's contexts (gold pointing into the other text) and both were kind "dev".
    for folder, context in (("cmrc", "甲地在北方。"), ("drcd", "乙地在南方。")):
        (tmp_path / folder).mkdir()
        qa = {"id": folder, "question": "在哪？", "answers": [{"text": "方"}]}
        article = {"title": "地", "paragraphs": [{"context": context, "qas": [qa]}]}
        (tmp_path / folder / "dev.json").write_text(
            json.dumps({"data": [article]}), encoding="utf-8"
        )

    with pytest.raises(EvalError, match="two SQuAD files named dev"):
        load_question_set([tmp_path / "cmrc" / "dev.json", tmp_path / "drcd" / "dev.json"])
    with pytest.raises(EvalError, match=r"given twice: .*dev\.json"):
        load_question_set([tmp_path / "cmrc" / "dev.json"] * 2)


def test_a_question_set_given_twice_is_refused() -> None:
    # Its questions were asked and counted twice.
    with pytest.raises(EvalError, match=r"given twice: .*seeds-dev\.jsonl"):
        load_question_set([SEEDS_DEV, SEEDS_DEV.parent / "." / SEEDS_DEV.name])


def test_a_run_in_which_every_question_failed_exits_1_with_the_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # `rag eval set.jsonl --url ...` with the service down or a wrong key exited 0.
    from typer.testing import CliRunner

    from cli.app import app

    def refused(question: str, top_k: int, history: Sequence[Turn]) -> dict[str, Any]:
        raise RuntimeError('HTTP 401: {"detail": "invalid API key"}')

    use_target(monkeypatch, refused)
    monkeypatch.setattr("signal.signal", lambda *_: None)  # leave pytest's SIGTERM alone
    result = CliRunner().invoke(app, ["eval", str(SEEDS_DEV), "--out", str(tmp_path / "r.json")])

    assert result.exit_code == 1, result.output
    assert "not one question was answered" in result.output
    assert "HTTP 401" in result.output
    assert json.loads(result.stdout)["metrics"]["errors"] == 11  # the report is still written
    assert (tmp_path / "r.json").is_file()


def test_a_run_with_some_failed_questions_exits_0(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from cli.app import app

    def flaky(question: str, top_k: int, history: Sequence[Turn]) -> dict[str, Any]:
        if question.startswith("质检"):
            raise RuntimeError("HTTP 503")
        return fake_answer(question, top_k)

    use_target(monkeypatch, flaky)
    monkeypatch.setattr("signal.signal", lambda *_: None)
    result = CliRunner().invoke(app, ["eval", str(SEEDS_DEV)])

    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)["metrics"]
    assert 0 < metrics["errors"] < 11
    assert f"{metrics['errors']} of 11 questions failed" in result.stderr


def test_the_summary_line_names_mrr_by_the_ranks_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from cli.app import app

    use_target(monkeypatch, fake_answer)
    monkeypatch.setattr("signal.signal", lambda *_: None)
    result = CliRunner().invoke(app, ["eval", str(SEEDS_DEV), "--top-k", "3"])

    assert result.exit_code == 0, result.output
    assert "mrr@3 0.0" in result.stderr and "mrr@10" not in result.stderr
    assert json.loads(result.stdout)["metrics"]["mrr@10"] is None


@pytest.fixture
def hash_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    from embeddings import factory
    from tests.fakes import HashEmbedder

    monkeypatch.setattr(factory, "make_embedder", lambda *_: HashEmbedder())


def demo_docs(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("质检总局局长支树平出席会议并讲话。\n", encoding="utf-8")
    return docs


@pytest.mark.usefixtures("hash_embedder")
def test_a_baseline_save_cut_short_is_built_again(tmp_path: Path) -> None:
    # A run killed while saving left baseline/faiss without chunks.json: every later run
    # ended in a FileNotFoundError traceback on loading it.
    (tmp_path / "index" / "baseline" / "faiss").mkdir(parents=True)

    target = evaluate_module._baseline_target(demo_docs(tmp_path), tmp_path / "index", print)

    assert "支树平" in target.ask("质检总局局长是谁？", 3, ())["answer"]
    assert (tmp_path / "index" / "baseline" / "chunks.json").is_file()


@pytest.mark.usefixtures("hash_embedder")
def test_a_saved_baseline_is_built_again_when_the_documents_changed(tmp_path: Path) -> None:
    # <index>/baseline was reused whatever --docs held: the baseline answered from the
    # documents of an earlier run, and the comparison measured it on the wrong corpus.
    docs, index = demo_docs(tmp_path), tmp_path / "index"
    said: list[str] = []
    evaluate_module._baseline_target(docs, index, said.append)
    evaluate_module._baseline_target(docs, index, said.append)
    assert any(line.startswith("loading the baseline index") for line in said)

    (docs / "a.txt").write_text("海关总署署长于广洲出席会议。\n", encoding="utf-8")
    said.clear()
    target = evaluate_module._baseline_target(docs, index, said.append)

    assert any("is not of the documents in" in line for line in said), said
    assert "于广洲" in target.ask("海关总署署长是谁？", 3, ())["passages"][0]["text"]
    said.clear()
    evaluate_module._baseline_target(docs, index, said.append)  # the new build is reused
    assert any(line.startswith("loading the baseline index") for line in said)


@pytest.mark.usefixtures("hash_embedder")
def test_a_baseline_saved_with_another_embedder_is_refused_with_a_message(
    tmp_path: Path,
) -> None:
    # The loader's ValueError was not an EvalError: `rag eval` ended in a traceback.
    evaluate_module._baseline_target(demo_docs(tmp_path), tmp_path / "index", print)
    chunks = tmp_path / "index" / "baseline" / "chunks.json"
    meta = json.loads(chunks.read_text(encoding="utf-8"))
    chunks.write_text(json.dumps(meta | {"embedder": "e5-small"}), encoding="utf-8")

    with pytest.raises(EvalError, match=r"built with e5-small.*remove .*baseline to build"):
        evaluate_module._baseline_target(tmp_path / "docs", tmp_path / "index", print)


def test_an_index_that_cannot_be_opened_is_refused_with_a_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Both ended `rag eval` in a traceback: --index naming a file (FileExistsError), and an
    # index built with another embedder (IndexMismatchError).
    from embeddings import factory
    from tests.fakes import HashEmbedder

    class Other(HashEmbedder):
        name = "other-hash"

    monkeypatch.setattr(factory, "make_embedder", lambda *_: HashEmbedder())
    docs, a_file = demo_docs(tmp_path), tmp_path / "notes.txt"
    a_file.write_text("", encoding="utf-8")
    with (
        pytest.raises(EvalError, match=r"cannot open the index at .*notes\.txt"),
        evaluate_module._ours_target(docs, a_file, lambda _: None),
    ):
        pass
    with evaluate_module._ours_target(docs, tmp_path / "index", lambda _: None):
        pass

    monkeypatch.setattr(factory, "make_embedder", lambda *_: Other())
    with (
        pytest.raises(EvalError, match="fake-hash"),
        evaluate_module._ours_target(None, tmp_path / "index", lambda _: None),
    ):
        pass


def test_missing_docs_are_refused_before_the_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # `--index runs/index --docs typo` indexed nothing and evaluated the old index.
    use_target(monkeypatch, fake_answer)
    with pytest.raises(EvalError, match=r"--docs .*typo: no such file or folder"):
        evaluate(EvalOptions(inputs=[SEEDS_DEV], docs=tmp_path / "typo"))


@pytest.mark.usefixtures("hash_embedder")
def test_documents_that_could_not_be_indexed_are_named(tmp_path: Path) -> None:
    docs = demo_docs(tmp_path)
    (docs / "broken.pdf").write_bytes(b"not a pdf")
    said: list[str] = []

    with evaluate_module._ours_target(docs, tmp_path / "index", said.append):
        pass

    assert any(line.startswith("skipped ") and "broken.pdf: " in line for line in said), said


def test_the_report_gives_the_workers_that_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    # The baseline is asked one question at a time whatever --workers says; the report gave
    # --workers, so its latencies read as measured under a concurrency they were not.
    use_target(monkeypatch, fake_answer)
    ours = evaluate(EvalOptions(inputs=[SEEDS_DEV], workers=4))
    baseline = evaluate(EvalOptions(inputs=[SEEDS_DEV], workers=4, pipeline="langchain-baseline"))

    assert (ours["run"]["workers"], baseline["run"]["workers"]) == (4, 1)


@pytest.mark.usefixtures("hash_embedder")
def test_a_collection_under_an_index_that_is_a_file_is_refused_with_a_message(
    tmp_path: Path,
) -> None:
    # `--index notes.txt --collection kb --docs DIR` ended in a NotADirectoryError traceback.
    a_file = tmp_path / "notes.txt"
    a_file.write_text("", encoding="utf-8")
    options = EvalOptions(inputs=[SEEDS_DEV], index=a_file, collection="kb")

    with pytest.raises(EvalError, match=r"cannot open the index at .*notes\.txt"):
        evaluate_module._collection_index(options, create=True)


def test_the_report_masks_the_passwords_of_urls_in_its_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A password in RAG_REDIS_URL or RAG_LLM_BASE_URL was printed on stdout and written into
    # --out and the HTML page, which are made to be shared.
    from embeddings import factory
    from rag.settings import Settings, get_settings
    from tests.fakes import HashEmbedder

    monkeypatch.setattr(factory, "make_embedder", lambda *_: HashEmbedder())
    monkeypatch.setenv("RAG_LLM_BASE_URL", "http://bot:llm-pw@llm:8080/v1")
    get_settings.cache_clear()
    try:
        with evaluate_module._ours_target(demo_docs(tmp_path), tmp_path / "i", print) as target:
            shown = target.settings
    finally:
        get_settings.cache_clear()
    redis = Settings(redis_url="redis://:s3cret-pw@cache:6379/0").model_dump(mode="json")

    assert "llm-pw" not in json.dumps(shown)
    assert shown["llm_base_url"] == "http://bot:***@llm:8080/v1"
    assert checks.published(redis)["redis_url"] == "redis://:***@cache:6379/0"
    assert checks.without_password("http://[x") == "http://[x"
    assert checks.without_password("bigram") == "bigram"


def test_an_output_over_the_compared_report_is_refused_and_the_report_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # `--compare runs/baseline.json --out runs/baseline.json` replaced the baseline's report
    # (a run of its own, often the longer one) with this run's.
    use_target(monkeypatch, fake_answer)
    baseline = tmp_path / "baseline.json"
    evaluate(EvalOptions(inputs=[SEEDS_DEV], out=baseline))
    kept = baseline.read_text(encoding="utf-8")

    for option in ("out", "html"):
        given: dict[str, Any] = {option: baseline, "compare": baseline}
        with pytest.raises(EvalError, match=rf"--{option} .* would overwrite the --compare"):
            evaluate(EvalOptions(inputs=[SEEDS_DEV], **given))
    assert baseline.read_text(encoding="utf-8") == kept
