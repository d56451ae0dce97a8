"""Conversation sets from SQuAD-format data: follow-ups that lean on earlier turns.

Several questions about one passage become a conversation of two or three turns. The first
turn is the first question as written; each later question that shares an entity with it
(their longest common stretch of two or more characters) is rephrased to lean on the first:
the entity becomes a pronoun (他 for a name, 它 or 其 otherwise), a demonstrative with its
head noun (该铁路 for 大莱龙铁路), or is dropped when it opens the question. The question as
written is kept as the gold standalone question. Choices are seeded: the same input and seed
give the same set.

    python -m eval.conversations ../shared/datasets/cmrc2018_dev.json --contexts 60 --out DIR

writes DIR/docs/ (the articles, one context a line, as `rag eval` indexes SQuAD files) and
four JSONL sets over the same follow-ups, for `rag eval DIR/<set>.jsonl --docs DIR/docs`:
`followups` (asked with their history), `standalone` (the gold standalone questions, no
history), `bare` (the follow-ups without history: what a service without conversations
sees) and `switch` (each first turn asked after another conversation's last turn: a new
topic, whose question must be left as it is).
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval.datasets import Question, SquadSet, first_contexts, load_squad, write_corpus
from rag.text.script import detect_script, fold_script

# Common stretches that are question words or glue, not an entity the turns share.
_GENERIC = frozenset(
    {"什么", "哪些", "哪个", "多少", "是什么", "为什么", "哪里", "哪一", "如何", "怎样", "是否"}
)
_MIN_SHARED = 2


@dataclass(frozen=True)
class FollowUp:
    question: Question  # as written: the gold standalone question
    asked: str  # rephrased to lean on the first turn
    form: str  # pronoun | possessive | demonstrative | dropped
    entity: str


@dataclass
class Conversation:
    first: Question
    followups: list[FollowUp] = field(default_factory=list)


def shared_entity(a: str, b: str) -> str | None:
    """The longest run of whole words of `b` that `a` holds too and that ends on a noun.

    Words are jieba's on the script-folded text; two characters at least, no question word.
    """
    import jieba.posseg

    fa, fb = fold_script(a), fold_script(b)
    if len(fb) != len(b):
        return None  # folding changed lengths: positions would not map back
    words = [(w.word, w.flag) for w in jieba.posseg.cut(fb)]
    starts = [0]
    for word, _ in words:
        starts.append(starts[-1] + len(word))
    bounds_a = _boundaries(fa)
    best: tuple[int, int] | None = None
    for i in range(len(words)):
        for j in range(i + 1, len(words) + 1):
            piece = fb[starts[i] : starts[j]]
            if piece not in fa:
                break
            whole = any(
                (k, k + len(piece)) in bounds_a for k in _find_all(fa, piece)
            )  # a whole phrase of the first turn too, not part of a word of it
            inside = (i > 0 and words[i - 1][1].startswith("n")) or (
                j < len(words) and words[j][1].startswith("n")
            )  # part of a longer noun phrase ("马祖" of "马祖人")
            if (
                whole
                and not inside
                and len(piece) >= _MIN_SHARED
                and words[j - 1][1].startswith("n")
                and _is_entity(piece)
            ) and (best is None or starts[j] - starts[i] > best[1] - best[0]):
                best = (starts[i], starts[j])
    return None if best is None else b[best[0] : best[1]]


def _boundaries(text: str) -> set[tuple[int, int]]:
    """Pairs (start, end) such that both are word boundaries of jieba's cut of `text`."""
    import jieba

    edges = [0]
    for word in jieba.cut(text):
        edges.append(edges[-1] + len(word))
    return {(a, b) for a in edges for b in edges if a < b}


def _find_all(text: str, piece: str) -> list[int]:
    return [k for k in range(len(text)) if text.startswith(piece, k)]


def _is_entity(piece: str) -> bool:
    return piece not in _GENERIC and not any(g in piece for g in ("什么", "哪", "多少", "？", "，"))


def _is_person(entity: str) -> bool:
    from rag.conversation.rules import noun_phrases

    phrases = noun_phrases(fold_script(entity))
    return len(phrases) == 1 and phrases[0].person and phrases[0].text == fold_script(entity)


def _head_noun(entity: str) -> str | None:
    """The common noun ending a name ("铁路" of "大莱龙铁路"), if the name has one."""
    import jieba.posseg

    words = list(jieba.posseg.cut(fold_script(entity)))
    if len(words) >= 2 and words[-1].flag == "n" and len(words[-1].word) >= 2:
        return entity[-len(words[-1].word) :]
    return None


def rephrase(question: str, entity: str, rng: random.Random) -> tuple[str, str] | None:
    """`question` with `entity` replaced by a reference to it, and the form used."""
    at = question.find(entity)
    if at < 0:
        return None
    before, after = question[:at], question[at + len(entity) :]
    forms: list[tuple[str, str]] = []
    pronoun = "他" if _is_person(entity) else "它"
    forms.append(("pronoun", before + pronoun + after))
    if after.startswith("的") and not _is_person(entity):
        forms.append(("possessive", before + "其" + after[1:]))
    head = _head_noun(entity)
    if head is not None and head != entity:
        this = "該" if detect_script(question) == "hant" else "该"
        forms.append(("demonstrative", before + this + head + after))
    if at == 0 and len(after.lstrip("的")) >= 4:
        forms.append(("dropped", after.lstrip("的")))
    form, text = rng.choice(forms)
    return text, form


def conversations(
    questions: list[Question], rng: random.Random, max_turns: int = 3
) -> Iterator[Conversation]:
    """One conversation per passage with a follow-up: its questions in dataset order."""
    by_place: dict[tuple[str | None, int | None], list[Question]] = {}
    for q in questions:
        if q.answers:
            by_place.setdefault((q.file, q.paragraph), []).append(q)
    for group in by_place.values():
        first, *rest = group
        conversation = Conversation(first)
        for q in rest:
            if len(conversation.followups) >= max_turns - 1:
                break
            entity = shared_entity(first.question, q.question)
            if entity is None:
                continue
            rephrased = rephrase(q.question, entity, rng)
            if rephrased is not None and rephrased[0] != q.question:
                conversation.followups.append(FollowUp(q, rephrased[0], rephrased[1], entity))
        if conversation.followups:
            yield conversation


def _row(q: Question, asked: str, history: list[dict[str, str]], kind: str) -> dict[str, Any]:
    return {
        "id": q.id,
        "question": asked,
        "history": history,
        "standalone": q.question,
        "answers": list(q.answers),
        "file": q.file,
        "paragraph": q.paragraph,
        "kind": kind,
    }


def build(source: Path | SquadSet, contexts: int, seed: int, out: Path) -> dict[str, int]:
    """Write the documents and the four sets (see the module); return their sizes."""
    loaded = source if isinstance(source, SquadSet) else load_squad(source)
    squad = first_contexts(loaded, contexts)
    rng = random.Random(seed)
    convs = list(conversations(list(squad.questions), rng))
    write_corpus([squad], out / "docs")
    sets: dict[str, list[dict[str, Any]]] = {"followups": [], "standalone": [], "bare": []}
    sets["switch"] = []
    name = squad.name
    for n, conv in enumerate(convs):
        history = [{"question": conv.first.question, "answer": conv.first.answers[0]}]
        for f in conv.followups:
            turns = len(history) + 1
            kind = f"{name}-turn{turns}-{f.form}"
            sets["followups"].append(_row(f.question, f.asked, list(history), kind))
            sets["standalone"].append(_row(f.question, f.question.question, [], kind))
            sets["bare"].append(_row(f.question, f.asked, [], kind))
            history.append({"question": f.asked, "answer": f.question.answers[0]})
        if n:
            previous = convs[n - 1]
            last = previous.followups[-1]
            before = [{"question": last.asked, "answer": last.question.answers[0]}]
            sets["switch"].append(_row(conv.first, conv.first.question, before, f"{name}-switch"))
    for set_name, rows in sets.items():
        with (out / f"{set_name}.jsonl").open("w", encoding="utf-8") as sink:
            for row in rows:
                sink.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {set_name: len(rows) for set_name, rows in sets.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("squad", type=Path, help="SQuAD-format JSON (CMRC 2018, DRCD dev)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--contexts", type=int, default=60, help="first N contexts [60]")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        squad = load_squad(args.squad)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        # What `rag eval` says of a file that is not a SQuAD set, not a traceback.
        parser.error(f"{args.squad}: not a SQuAD file ({type(err).__name__}: {err})")
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = build(squad, args.contexts, args.seed, args.out)
    print(json.dumps(sizes))


if __name__ == "__main__":
    main()
