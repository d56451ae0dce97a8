"""Question sets: SQuAD-format JSON (CMRC 2018, DRCD) and JSONL, as plain questions with gold."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from eval.metrics import scorable
from rag.types import Turn
from rag.wire import turns_from_payload


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answers: tuple[str, ...]
    file: str | None = None  # gold file, as the index names it
    paragraph: int | None = None  # gold paragraph number, when known
    evidence: str | None = None
    kind: str | None = None
    # Conversation sets (eval/conversations.py): the earlier turns, and the question as it
    # would be asked alone (the gold of the rewrite).
    history: tuple[Turn, ...] = ()
    standalone: str | None = None


@dataclass(frozen=True)
class Article:
    file: str
    paragraphs: tuple[str, ...]


@dataclass(frozen=True)
class SquadSet:
    name: str
    articles: tuple[Article, ...]
    questions: tuple[Question, ...]


_SAFE = re.compile(r"[^\w.-]+")
# A blank gold answer is found in every answer (its folded, space-free form is ""): each
# question holding one scored an answer hit whatever was answered.
BLANK_ANSWER = "an answer is empty or only white space, which every answer would contain"
# Likewise gold of only punctuation or symbols: exact match and F1 drop all of it, and found
# as written, 。 is in almost every answer (every one that ends a sentence was a hit).
NO_WORD_ANSWER = (
    "an answer is only punctuation or symbols, which exact match drops and almost any "
    "answer contains (。)"
)
# A blank question was asked all the same: refused by the pipeline (or the service's 422),
# it counted as a failed question, a miss in every rate, for a fault of the set.
BLANK_QUESTION = "is empty or only white space: there is nothing to ask"


def load_squad(path: Path) -> SquadSet:
    """Each article becomes a document whose paragraphs are its contexts, one per line.

    Contexts are flattened to one line (their rare inner newlines become spaces) so that
    paragraph n of the written file is context n, which is the gold the questions point at.
    """
    # utf-8-sig: Windows editors save UTF-8 with a byte order mark, which json refuses.
    data = json.loads(path.read_text(encoding="utf-8-sig"))["data"]
    name = path.stem
    articles: list[Article] = []
    questions: list[Question] = []
    for a, article in enumerate(data):
        title = _SAFE.sub("_", str(article.get("title") or article.get("id") or a))[:40]
        file = f"{name}/{a:04d}_{title}.txt"
        contexts = []
        for p, para in enumerate(article["paragraphs"], start=1):
            contexts.append(" ".join(para["context"].split()))
            for qa in para["qas"]:
                # SQuAD 2.0's `is_impossible`: the context does not answer it, so the right
                # answer is an abstention, as for a JSONL question of kind "unanswerable".
                if qa.get("is_impossible"):
                    kind, answers = "unanswerable", ()
                else:
                    # The dataset's name as the kind: a run over several splits them per kind.
                    kind = name
                    answers = tuple(dict.fromkeys(x["text"] for x in qa.get("answers") or []))
                # As in JSONL: a number as an answer ended the finished run in a TypeError
                # traceback while scoring.
                texts: list[object] = [qa["question"], *answers]
                if not all(isinstance(text, str) for text in texts):
                    raise ValueError(
                        f"question {qa['id']!r}: the question and answer texts must be strings"
                    )
                if not qa["question"].strip():
                    raise ValueError(f"question {qa['id']!r}: the question {BLANK_QUESTION}")
                if any(not str(gold).strip() for gold in texts[1:]):
                    raise ValueError(f"question {qa['id']!r}: {BLANK_ANSWER}")
                if not all(scorable(str(gold)) for gold in texts[1:]):
                    raise ValueError(f"question {qa['id']!r}: {NO_WORD_ANSWER}")
                questions.append(
                    Question(str(qa["id"]), qa["question"], answers, file, p, kind=kind)
                )
        articles.append(Article(file, tuple(contexts)))
    return SquadSet(name, tuple(articles), tuple(questions))


def first_contexts(squad: SquadSet, n: int, after: int = 0) -> SquadSet:
    """The first articles holding at least `n` contexts, with their questions; with `after`,
    the first such articles behind those that `first_contexts(squad, after)` takes (a slice
    disjoint from that one, to fit on one and measure on the other)."""
    skipped = len(first_contexts(squad, after).articles) if after else 0
    articles: list[Article] = []
    taken = 0
    for article in squad.articles[skipped:]:
        if taken >= n:
            break
        articles.append(article)
        taken += len(article.paragraphs)
    files = {a.file for a in articles}
    questions = tuple(q for q in squad.questions if q.file in files)
    return SquadSet(squad.name, tuple(articles), questions)


def write_corpus(sets: list[SquadSet], directory: Path) -> None:
    """Write every article as a UTF-8 text file under `directory` (one context a line)."""
    for s in sets:
        for article in s.articles:
            target = directory / article.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("\n".join(article.paragraphs) + "\n", encoding="utf-8")


def load_jsonl(path: Path) -> list[Question]:
    """JSONL question sets: `id`, `question`, optional `answers`, `file`, `paragraph`,
    `evidence`, `kind`, and for conversations `history` (`[{"question", "answer"}]`, the
    earlier turns) and `standalone` (the question as it would be asked alone)."""
    out = []
    # utf-8-sig: a byte order mark (Windows editors) made line 1 "not JSON".
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{n}: not JSON: {err}") from err
        if not isinstance(row, dict) or not isinstance(row.get("question"), str):
            raise ValueError(f'{path}:{n}: not a question: needs an object with a "question"')
        if not row["question"].strip():
            raise ValueError(f'{path}:{n}: "question" {BLANK_QUESTION}')
        try:
            history = turns_from_payload(row.get("history") or [])
            _check_fields(row)
        except ValueError as err:
            raise ValueError(f"{path}:{n}: {err}") from err
        out.append(
            Question(
                id=str(row.get("id", n)),
                question=row["question"],
                answers=tuple(row.get("answers") or ()),
                file=row.get("file"),
                paragraph=row.get("paragraph"),
                evidence=row.get("evidence"),
                kind=row.get("kind"),
                history=history,
                standalone=row.get("standalone"),
            )
        )
    return out


def _check_fields(row: dict[str, object]) -> None:
    """Refuse gold of the wrong type: it would not fail, it would score wrongly.

    `"answers": "北京"` became the answers 北 and 京 (any answer holding either was a hit), and
    `"paragraph": "2"` never equals a retrieved paragraph number (every retrieval a miss).
    """
    answers = row.get("answers")
    if answers is not None and (
        not isinstance(answers, list) or not all(isinstance(a, str) for a in answers)
    ):
        raise ValueError(f'"answers" must be a list of strings, not {answers!r}')
    if answers and any(not a.strip() for a in answers):
        raise ValueError(f'"answers": {BLANK_ANSWER}')
    if answers and not all(scorable(a) for a in answers):
        raise ValueError(f'"answers": {NO_WORD_ANSWER}')
    paragraph = row.get("paragraph")
    if paragraph is not None and (
        isinstance(paragraph, bool) or not isinstance(paragraph, int) or paragraph < 1
    ):
        raise ValueError(f'"paragraph" must be a paragraph number from 1, not {paragraph!r}')
    for key in ("file", "evidence", "kind", "standalone"):
        if row.get(key) is not None and not isinstance(row[key], str):
            raise ValueError(f'"{key}" must be a string, not {row[key]!r}')
    # Likewise blank evidence: every passage of the gold file "holds" it.
    evidence = row.get("evidence")
    if isinstance(evidence, str) and not evidence.strip():
        raise ValueError('"evidence" is empty or only white space: give the text or leave it out')
    if isinstance(evidence, str) and not scorable(evidence):
        raise ValueError(
            '"evidence" is only punctuation or symbols, which almost any passage contains: '
            "give the text or leave it out"
        )
