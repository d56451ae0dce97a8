"""Checking an LLM's citations: every [n] must name a passage it was given.

Pure functions on text. The model is asked to cite passage n as `[n]` after each claim; it
also writes `[1,2]`, `[1][2]`, full-width `［1］` or `[资料1]`. `check_citations` rewrites all
of them as `[n]`, removes numbers that name no passage, and lists the sentences left without
any citation: claims that nothing given to the model vouches for.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.answer.base import ABSTAIN_TEXT
from rag.text.identity import normalise
from rag.text.script import fold_script
from rag.text.sentences import SENTENCE_END, split_sentences
from rag.text.tokenize import bigram2_tokens

# Passages are numbered from 1 to top_k (at most 50): a longer number cites none of them.
MAX_DIGITS = 6
_NUMBERS = r"\d+(?:\s*[,，、]\s*\d+)*"
_MARK = rf"[\[［]\s*(?:资料\s*)?{_NUMBERS}\s*[\]］]"
# One citation: a mark, or marks side by side (`[1][3]`), read as one list of numbers.
CITATION = re.compile(rf"{_MARK}(?:[ \t]*{_MARK})*")
# A sentence ends as a passage sentence does (rag.chunk), or at a line break, and keeps the
# citations right after its end mark: models write "会议在北京召开。[1]" as often as
# "会议在北京召开[1]。".
_SENTENCE_END = re.compile(rf"(?:{SENTENCE_END}|\n)(?:[ \t\u3000]*{CITATION.pattern})*")
# A sentence says something if it has a letter (any script) besides its citations: "1." of a
# numbered list or a stray "。" is not a claim.
_LETTER = re.compile(r"[^\W\d_]")
# Reasoning models served raw (Qwen3, DeepSeek-R1 on Ollama) put their thinking in the text.
_THINKING = re.compile(r"<think>.*?(?:</think>|$)", re.S)


@dataclass(frozen=True)
class Sentence:
    text: str  # as it stands in the checked answer, citations included
    cites: tuple[int, ...]  # the passage numbers it cites, all valid

    @property
    def claim(self) -> str:
        """The sentence without its citation marks."""
        return CITATION.sub("", self.text).strip()


@dataclass(frozen=True)
class CheckedText:
    text: str  # citations rewritten as [n]; those naming no passage removed
    sentences: tuple[Sentence, ...]  # the sentences that say something
    removed: tuple[int, ...]  # numbers cited that name no passage, in order, once each

    @property
    def cited(self) -> tuple[int, ...]:
        """The passage numbers cited, ascending."""
        return tuple(sorted({n for s in self.sentences for n in s.cites}))

    @property
    def unsupported(self) -> tuple[str, ...]:
        """The sentences that cite no given passage."""
        return tuple(s.text for s in self.sentences if not s.cites)

    def claims(self, n: int) -> list[str]:
        """What the sentences citing passage `n` say (without citation marks)."""
        return [s.claim for s in self.sentences if n in s.cites]


def cited_numbers(mark: str) -> list[int]:
    """The numbers of one citation: `[1,3]` -> [1, 3]; `［２］[1]` -> [2, 1]; else [].

    A number of more than MAX_DIGITS digits names no passage and is left out: a model stuck
    repeating a digit writes thousands, past what int() reads (ValueError).
    """
    if not CITATION.fullmatch(mark):
        return []
    return [int(n) for n in re.findall(r"\d+", mark) if len(n) <= MAX_DIGITS]


def answer_sentences(text: str) -> list[tuple[int, int]]:
    """Spans of the sentences of an answer, covering it exactly; see `_SENTENCE_END`."""
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        spans.append((start, m.end()))
        start = m.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def check_citations(text: str, passages: int) -> CheckedText:
    """`text` with its citations checked against passages numbered 1 to `passages`.

    Every citation mark becomes one `[n]` per valid number (`[1,2]` -> `[1][2]`, `［3］` ->
    `[3]`); numbers outside 1..`passages` are dropped, and a mark left with none disappears.
    """
    removed: list[int] = []

    def rewrite(match: re.Match[str]) -> str:
        numbers = cited_numbers(match.group(0))
        valid = [n for n in numbers if 1 <= n <= passages]
        removed.extend(n for n in numbers if not 1 <= n <= passages and n not in removed)
        return "".join(f"[{n}]" for n in dict.fromkeys(valid))

    checked = CITATION.sub(rewrite, text.strip())
    # A piece that says nothing joins a neighbour: citations on a line of their own go with
    # the sentence before, a list number ("1.") with the sentence after.
    pieces: list[str] = []
    pending = ""
    for a, b in answer_sentences(checked):
        piece = checked[a:b]
        if _LETTER.search(CITATION.sub("", piece)):
            pieces.append(pending + piece)
            pending = ""
        elif pieces and not pending and CITATION.search(piece):
            pieces[-1] += piece
        else:
            pending += piece
    if pieces and pending:
        pieces[-1] += pending  # trailing marks
    if not pieces:
        return CheckedText("", (), tuple(removed))  # nothing but marks says nothing
    sentences = []
    for piece in pieces:
        numbers = (n for m in CITATION.finditer(piece) for n in cited_numbers(m.group(0)))
        sentences.append(Sentence(piece.strip(), tuple(dict.fromkeys(numbers))))
    return CheckedText(checked, tuple(sentences), tuple(removed))


def without_thinking(text: str) -> str:
    """The answer without a reasoning model's `<think>…</think>` block."""
    return _THINKING.sub("", text).strip()


def says_not_found(text: str) -> bool:
    """Whether the answer is the prompt's "not in the documents" reply (either script)."""
    return normalise(ABSTAIN_TEXT) in normalise(text)


def quote_span(claims: Sequence[str], text: str) -> tuple[int, int]:
    """The span of `text` (a cited passage) that a citation quotes: what backs `claims`.

    For each claim, the sentence of the passage sharing the most character bigrams with it
    (folded script); the quote runs from the first such sentence to the last, so two claims
    backed by neighbouring sentences quote both. The whole passage when no sentence shares
    anything. A quote is always a span of the stored passage, so it gets exact file offsets,
    whatever the model wrote.
    """
    sentences = [(a, b) for a, b in split_sentences(text) if text[a:b].strip()]
    grams = [set(bigram2_tokens(fold_script(text[a:b]))) for a, b in sentences]
    chosen = []
    for claim in claims:
        wanted = set(bigram2_tokens(fold_script(claim)))
        shared = [len(wanted & g) for g in grams]
        if shared and max(shared) > 0:
            chosen.append(sentences[shared.index(max(shared))])
    if not chosen:
        return (0, len(text))
    return (min(a for a, _ in chosen), max(b for _, b in chosen))
