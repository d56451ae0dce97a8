"""Conversation sets: built from SQuAD-format data, seeded, and read back by `rag eval`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.conversations import build, shared_entity
from eval.datasets import load_jsonl
from rag.types import Turn

CONTEXT = "大莱龙铁路位于山东省北部环渤海地区，全线投资11.42亿元，是德龙烟铁路的组成部分。"
SQUAD = {
    "data": [
        {
            "title": "大莱龙铁路",
            "paragraphs": [
                {
                    "context": CONTEXT,
                    "qas": [
                        {
                            "id": "q1",
                            "question": "大莱龙铁路位于哪里？",
                            "answers": [{"text": "山东省北部环渤海地区"}],
                        },
                        {
                            "id": "q2",
                            "question": "大莱龙铁路一共投资多少亿元？",
                            "answers": [{"text": "11.42亿元"}],
                        },
                        {
                            "id": "q3",
                            "question": "大莱龙铁路是哪条铁路的组成部分？",
                            "answers": [{"text": "德龙烟铁路"}],
                        },
                        {
                            "id": "q4",
                            "question": "德龙烟铁路有多长？",
                            "answers": [{"text": "未知"}],
                        },
                    ],
                }
            ],
        }
    ]
}


@pytest.fixture
def squad(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_dev.json"
    path.write_text(json.dumps(SQUAD, ensure_ascii=False), encoding="utf-8")
    return path


def test_the_shared_entity_is_a_whole_noun_phrase_of_both_questions() -> None:
    assert shared_entity("大莱龙铁路位于哪里？", "大莱龙铁路一共投资多少亿元？") == "大莱龙铁路"
    assert shared_entity("大莱龙铁路位于哪里？", "德龙烟铁路有多长？") is None


def test_follow_ups_lean_on_the_first_turn_and_keep_their_gold(squad: Path, tmp_path: Path) -> None:
    out = tmp_path / "set"
    sizes = build(squad, contexts=1, seed=0, out=out)

    assert sizes["followups"] == 2  # q2 and q3; q4 shares no entity with q1
    followups = load_jsonl(out / "followups.jsonl")
    second, third = followups
    assert (second.standalone, third.standalone) == (
        "大莱龙铁路一共投资多少亿元？",
        "大莱龙铁路是哪条铁路的组成部分？",
    )
    assert "大莱龙铁路" not in second.question and "大莱龙铁路" not in third.question
    assert second.history == (Turn("大莱龙铁路位于哪里？", "山东省北部环渤海地区"),)
    assert [t.question for t in third.history] == ["大莱龙铁路位于哪里？", second.question]
    assert (second.file, second.paragraph) == ("tiny_dev/0000_大莱龙铁路.txt", 1)
    assert (out / "docs" / "tiny_dev" / "0000_大莱龙铁路.txt").read_text(encoding="utf-8")
    standalone = load_jsonl(out / "standalone.jsonl")
    assert [(q.question, q.history) for q in standalone] == [(q.standalone, ()) for q in followups]


def test_the_same_seed_builds_the_same_set(squad: Path, tmp_path: Path) -> None:
    build(squad, contexts=1, seed=3, out=tmp_path / "a")
    build(squad, contexts=1, seed=3, out=tmp_path / "b")
    for name in ("followups", "standalone", "bare", "switch"):
        a = (tmp_path / "a" / f"{name}.jsonl").read_text(encoding="utf-8")
        assert a == (tmp_path / "b" / f"{name}.jsonl").read_text(encoding="utf-8")


def test_a_history_row_without_an_answer_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "它在哪？", "history": [{"question": "甲"}]}\n', "utf-8")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: history turn 1"):
        load_jsonl(path)


@pytest.mark.parametrize("text", [None, "{not json", '{"data": [{"title": "无段落"}]}'])
def test_building_from_a_file_that_is_no_squad_set_is_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | None
) -> None:
    from eval.conversations import main

    squad = tmp_path / "dev.json"
    if text is not None:
        squad.write_text(text, encoding="utf-8")

    with pytest.raises(SystemExit) as exited:
        main([str(squad), "--out", str(tmp_path / "out")])

    assert exited.value.code == 2
    assert "dev.json: not a SQuAD file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
