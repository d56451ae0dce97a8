"""The deterministic rewrite of a follow-up: pronouns and ellipsis resolved from earlier turns.

"他在会上说了什么？" after "王岐山在哪里主持召开质量工作座谈会？" becomes "王岐山在会上说了什么？":
retrieval and the composer then see who is meant. Only a question with a reference in it
(他/她/它/其, 这/该/此/那 + noun, "那…呢", or, with `ellipsis`, no entity of its own) is
rewritten; any other question is returned exactly as it came.

The antecedent comes from jieba's part-of-speech tags on the script-folded previous turns: a
person pronoun takes the first person name (nr) of the previous question, else of its answer;
any other reference takes the previous question's topic, its first noun phrase (questions in
Chinese name their subject first: "大莱龙铁路一共投资多少亿元？"). Earlier turns are resolved
in order, so the third turn of a conversation sees the second one already rewritten.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from rag.text.script import Script, detect_script, fold_script, to_script
from rag.types import Turn

_PERSON_PRONOUNS = frozenset({"他", "她", "他们", "她们"})
_THING_PRONOUNS = frozenset({"它", "它们"})
# 其 as a word is "its"/"his"; inside 其他, 其中, 其实, 其余 jieba keeps it in one word.
_POSSESSIVE = "其"
# 该/这/此/那, alone or with a classifier (这部, 该位), before a noun: "该铁路", "这部电影".
_DEMONSTRATIVE = re.compile(
    r"(?:该|这|此|那)(?:个|位|部|本|座|家|条|所|种|项|些|名|首|只|场|款|支|片)?"
)
# Elliptical "what about X?": 那X呢 / 那么X呢 / X呢.
_WHAT_ABOUT = re.compile(r"^(?:那么?|那)?(?P<x>[^，,。？?！!呢]{1,20})呢[？?。！!]*$")
# Noun-like tags of jieba's posseg: nouns and names (n, nr, ns, nt, nz, nrt, nrfg, ...),
# Latin words. `vn` (a verb used as a noun) continues a phrase but does not start one.
_NOUN = re.compile(r"n[a-z]*|eng")
# Names: of people, places, organisations, other proper nouns, Latin words, and jieba's
# abbreviations (`j`: 质检 of 质检总局) when a noun follows them.
_PROPER = re.compile(r"nr[a-z]*|ns|nt|nz|eng|j")
_PERSON = re.compile(r"nr[a-z]*")
_TITLE = re.compile(r"《[^》]{1,40}》")
# A date in digits: a year, a month, a day, or a run of them (2020年, 2019年3月, 5日).
_DATE = re.compile(r"(?:[0-9]{2,4}年)?(?:[0-9]{1,2}月)?(?:[0-9]{1,2}[日号])?")
# The units of a calendar time word (去年, 上个月, 今天, 下周, 第一季度).
_CALENDAR = frozenset("年月日天周季")
# A product's or version's number after a Latin name, and what may stand between them.
_MODEL_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_MODEL_JOINERS = frozenset({" ", "-"})
# Words that ask on rather than name what to ask about instead: question words and
# demonstratives (为什么, 那天; not 其他人, `rr`), conjunctions (然后), adverbs, time and
# locality words (后来, 之后), verbs (还有, 是什么) and set phrases (接下来, 怎么办).
# Anything else may be a name jieba mistags (微软 is an adjective to it).
_ASKING_ON = frozenset({"r", "c", "d", "t", "f", "v", "l"})
# What is read of an earlier turn: the opening of its answer (as much as the LLM rewrite
# is sent), and as much of its question as can be asked (the default
# RAG_MAX_QUESTION_CHARS). jieba's tagger spends milliseconds a character on text outside
# its dictionary: a whole 20,000-character answer of random hanzi took over a minute.
ANSWER_CHARS = 300
QUESTION_CHARS = 500
# Characters outside the tagger's model (most of the 20,000 hanzi: its HMM knows 6,648) are
# what costs: it weighs every tag against every other for each. 500 random hanzi took 2.7 s
# to tag, 500 random known ones 26 ms. Names rarely hold more than one or two of them, so a
# text is read up to the last of these it may hold: a question with more stands alone.
UNSEEN_CHARS = 4
# A follow-up that leans on earlier turns is short (61 characters at most over the CMRC and
# DRCD conversation sets): a longer question is taken to stand alone, untagged.
FOLLOW_UP_CHARS = 200
# Question words a noun tagger may call nouns (什么 is `r`, but 时候, 地方 are `n`).
_NOT_TOPIC = frozenset({"时候", "地方", "时间", "原因", "名字", "问题", "东西", "人"})


# When a follow-up without a pronoun is taken to have dropped its subject ("一共投资多少亿
# 元？"): "no-name", it names nothing of its own (no person, place, organisation, title or
# Latin word); "no-noun", it has no noun phrase at all; "off", never.
Ellipsis = Literal["no-name", "no-noun", "off"]


@dataclass(frozen=True)
class RuleConfig:
    # A follow-up that dropped its subject gets the previous topic as subject; see `Ellipsis`.
    ellipsis: Ellipsis = "no-name"
    # Earlier turns read, the latest last: older ones rarely hold what a pronoun means.
    turns: int = 3


@dataclass(frozen=True)
class _Word:
    text: str
    flag: str
    start: int


@dataclass(frozen=True)
class _Phrase:
    text: str
    person: bool
    proper: bool


@lru_cache(maxsize=1)
def _posseg() -> object:
    from rag.text.tokenize import jieba_tokens

    jieba_tokens("")  # loads jieba's dictionary quietly, once
    import jieba.posseg

    return jieba.posseg


@lru_cache(maxsize=1)
def _seen() -> frozenset[str]:
    """The hanzi jieba's tagger has a model of (the others it can only guess at, slowly)."""
    _posseg()
    from jieba.posseg.char_state_tab import P

    return frozenset(P)


def _readable(folded: str) -> str:
    """The opening of `folded` that holds at most UNSEEN_CHARS hanzi the tagger has not seen."""
    seen = _seen()
    unseen = 0
    for at, char in enumerate(folded):
        # jieba's HMM reads only the basic block (re_han_detail); the rest is cut cheaply.
        if "\u4e00" <= char <= "\u9fd5" and char not in seen:
            unseen += 1
            if unseen > UNSEEN_CHARS:
                return folded[:at]
    return folded


@lru_cache(maxsize=4096)
def _tag(folded: str) -> tuple[_Word, ...]:
    words = []
    at = 0
    for pair in _posseg().cut(folded):  # type: ignore[attr-defined]
        word, flag = pair.word, pair.flag
        if len(word) > 1 and word.endswith("是") and _NOUN.fullmatch(flag):
            # jieba glues the copula to a rare noun ("锣鼓经是什么" -> 锣鼓 / 经是): no noun
            # ends in 是 (但是, 于是 are conjunctions), so it is split off.
            words.append(_Word(word[:-1], flag, at))
            word, flag, at = "是", "v", at + len(word) - 1
        words.append(_Word(word, flag, at))
        at += len(word)
        _join_model_number(words)
    return tuple(words)


def _join_model_number(words: list[_Word]) -> None:
    """Make the last words one Latin name if they are a name and its number.

    jieba splits "iphone 15", "gpt-4" and "windows 11" into the name, a space or hyphen,
    and a numeral: the phrase was "iphone", and a follow-up about it asked about every
    iPhone.
    """
    if len(words) < 2 or words[-1].flag != "m" or not _MODEL_NUMBER.fullmatch(words[-1].text):
        return
    name = len(words) - 2
    if words[name].text in _MODEL_JOINERS and name > 0:
        name -= 1
    if words[name].flag == "eng":
        joined = "".join(w.text for w in words[name:])
        words[name:] = [_Word(joined, "eng", words[name].start)]


def noun_phrases(folded: str) -> list[_Phrase]:
    """Titles in 《》 and runs of noun-like words, in order, in folded text."""
    phrases: list[tuple[int, _Phrase]] = []
    taken: list[tuple[int, int]] = []
    for m in _TITLE.finditer(folded):
        phrases.append((m.start(), _Phrase(m.group(0), False, True)))
        taken.append(m.span())
    run: list[_Word] = []

    def close() -> None:
        while run and not _NOUN.fullmatch(run[-1].flag):
            run.pop()  # a phrase ends on a noun
        text = "".join(w.text for w in run)
        if len(text) >= 2 and text not in _NOT_TOPIC:
            person = all(_PERSON.fullmatch(w.flag) for w in run)  # a name alone
            proper = any(_PROPER.fullmatch(w.flag) for w in run)
            phrases.append((run[0].start, _Phrase(text, person, proper)))
        run.clear()

    for word in _tag(folded):
        inside = any(a <= word.start < b for a, b in taken)
        noun_like = _NOUN.fullmatch(word.flag) or word.flag == "j"
        if not inside and (noun_like or (run and word.flag == "vn")):
            if _headed(run):
                close()  # "广茂铁路" ends there: "全长" is what is asked about it
            run.append(word)
        else:
            close()
    close()
    return [p for _, p in sorted(phrases, key=lambda item: item[0])]


def _headed(run: Sequence[_Word]) -> bool:
    """Whether a phrase is complete: a name followed by its common noun ("广茂" "铁路").

    A name takes at most one noun after it; the next one is an attribute of it ("全长",
    "面积"), not part of its name.
    """
    return (
        len(run) >= 2
        and any(_PROPER.fullmatch(w.flag) for w in run[:-1])
        and not _PROPER.fullmatch(run[-1].flag)
    )


@dataclass(frozen=True)
class _Context:
    """What the previous turn offers a reference: its topic and the person it names."""

    question: str  # folded, already resolved
    phrases: tuple[_Phrase, ...]  # of the question, in order
    topic: _Phrase | None
    person: _Phrase | None
    thing: _Phrase | None

    @classmethod
    def of(cls, question: str, answer: str) -> _Context:
        asked = noun_phrases(question)
        said = noun_phrases(answer)
        topic = asked[0] if asked else None
        person = next((p for p in asked + said if p.person), None)
        thing = next((p for p in asked if not p.person), topic)
        return cls(question, tuple(asked), topic, person, thing)


class RuleRewriter:
    """Rewrites a follow-up into a standalone question without a model (see the module)."""

    def __init__(self, config: RuleConfig | None = None) -> None:
        self.config = config or RuleConfig()

    def condense(
        self, question: str, history: Sequence[Turn], deadline: float | None = None
    ) -> str:
        """`question` made to stand alone; itself, unchanged, when it already does.

        `deadline` is ignored: the rules wait on nothing.
        """
        turns = list(history)[-self.config.turns :]
        if not turns:
            return question
        context: _Context | None = None
        folded = fold_script(question)
        if len(folded) > FOLLOW_UP_CHARS or _readable(folded) != folded:
            return question  # no follow-up: too long, or too much the tagger only guesses at
        for turn in turns:
            asked = _readable(fold_script(turn.question.strip()[:QUESTION_CHARS]))
            resolved = self._resolve(asked, context) if context else None
            answer = _readable(fold_script(turn.answer.strip()[:ANSWER_CHARS]))
            context = _Context.of(resolved or asked, answer)
        assert context is not None
        resolved = self._resolve(folded, context)
        if resolved is None:
            return question
        return _in_script(question, folded, resolved, [t.question for t in turns])

    def _resolve(self, folded: str, context: _Context) -> str | None:
        """The folded question with its references replaced; None if it has none."""
        about = _WHAT_ABOUT.match(folded.strip())
        if about and context.topic and context.topic.text in context.question:
            subject = about.group("x").strip()
            if _is_time(subject):
                # "2021年呢？" after "2020年GDP增长率是多少？" asks for another time, not about
                # 2021年 instead of the GDP: "2020年2021年是多少？".
                when = _time_in(context.question)
                return (
                    context.question.replace(when, subject, 1)
                    if when
                    else subject + context.question
                )
            # "他的邮箱呢？" asks on about the same person: put in the topic's place, it asked
            # "他的邮箱的电话是多少？". Its pronoun is resolved below instead.
            if not _refers(subject) and _names_something(about):
                return context.question.replace(context.topic.text, subject, 1)
        words = _tag(folded)
        out: list[str] = []
        changed = False
        i = 0
        while i < len(words):
            word = words[i]
            replacement = None
            skip = 1
            if word.text in _PERSON_PRONOUNS:
                replacement = _text(context.person or context.topic)
            elif word.text in _THING_PRONOUNS:
                replacement = _text(context.thing)
            elif word.text == _POSSESSIVE:
                thing = _text(context.thing)
                replacement = None if thing is None else thing + "的"
            elif _DEMONSTRATIVE.fullmatch(word.text) and (at := _noun_after(words, i)):
                # 该铁路 -> 大莱龙铁路; 这部电影 (about 阿凡达) -> 阿凡达电影.
                noun = words[at].text
                named = (p for p in context.phrases if _shared(p.text, noun))
                thing = _text(next(named, context.thing))
                if thing is not None:
                    replacement = thing + noun[_shared(thing, noun) :]
                    skip = at + 1 - i
            if replacement is None:
                out.append(word.text)
            else:
                out.append(replacement)
                changed = True
            i += skip
        if changed:
            return "".join(out)
        if context.topic and self._elliptical(folded):
            return context.topic.text + folded.lstrip()
        return None

    def _elliptical(self, folded: str) -> bool:
        mode = self.config.ellipsis
        if mode == "off":
            return False
        phrases = noun_phrases(folded)
        if mode == "no-noun":
            return not phrases
        return not any(p.proper for p in phrases)


def _is_time(text: str) -> bool:
    """Whether folded `text` is a time alone: a date (2021年, 3月5日) or a calendar word
    (去年, 上个月, 今天). Not 后来, 当时, 现在: "后来呢？" asks what happened next."""
    words = _tag(text)
    if not words:
        return False
    if _DATE.fullmatch(text):
        return True
    return all(w.flag == "t" for w in words) and any(unit in text for unit in _CALENDAR)


def _time_in(folded: str) -> str | None:
    """The first time folded `folded` names (see `_is_time`), if any."""
    date = next((m for m in _DATE.finditer(folded) if m.group(0)), None)
    words = [w for w in _tag(folded) if w.flag == "t" and _is_time(w.text)]
    if date and (not words or date.start() <= words[0].start):
        return date.group(0)
    return words[0].text if words else None


def _refers(text: str) -> bool:
    """Whether folded `text` holds a pronoun (他, 它们, 其) as a word of its own."""
    references = _PERSON_PRONOUNS | _THING_PRONOUNS | {_POSSESSIVE}
    return any(w.text in references for w in _tag(text))


def _names_something(about: re.Match[str]) -> bool:
    """Whether the X of a "what about X?" names something to ask about instead of the topic.

    为什么呢, 然后呢, 还有呢, 那天呢 ask on about the same thing: put in the topic's place,
    their X made a question of nothing ("为什么在哪里主持召开质量工作座谈会？").
    """
    start, end = about.span("x")
    if _TITLE.search(about.group("x")):
        return True
    # Tagged whole: the 那 of 那天 is no "what about" but part of the word.
    return any(
        w.flag not in _ASKING_ON
        for w in _tag(about.string)
        if w.start < end and w.start + len(w.text) > start
    )


def _shared(thing: str, noun: str) -> int:
    """How much of `noun`'s start `thing` already ends with, for writing `thing` + `noun`.

    All of it (大莱龙铁路, 铁路), or a word's worth: jieba tags 公司总部 one noun, and 该公司总部
    about 苹果公司 was "苹果公司公司总部". A single shared character is none: 上海市 + 市场 is
    not 上海市场.
    """
    for k in range(min(len(thing), len(noun)), 0, -1):
        if thing.endswith(noun[:k]):
            return k if k == len(noun) or k >= 2 else 0
    return 0


def _noun_after(words: Sequence[_Word], i: int) -> int | None:
    """The index of the noun the demonstrative at `i` points at, or None.

    jieba keeps some demonstrative-classifier pairs in one word (这部, 这位) and splits
    others (这 / 条 / 铁路, tagging 条 a noun): a classifier of the demonstrative's is
    passed over to the noun after it.
    """
    at = i + 1
    classifier = at + 1 < len(words) and _DEMONSTRATIVE.fullmatch(words[i].text + words[at].text)
    if classifier and _NOUN.fullmatch(words[at + 1].flag):
        at += 1
    if at < len(words) and _NOUN.fullmatch(words[at].flag):
        return at
    return None


def _text(phrase: _Phrase | None) -> str | None:
    return None if phrase is None else phrase.text


def _in_script(question: str, folded: str, resolved: str, earlier: Sequence[str]) -> str:
    """`resolved` (folded) in the script the user wrote `question` in.

    Folding maps characters one to one for nearly every question; then the words the user
    typed are kept as typed and only the inserted antecedent is written in their script.
    """
    script: Script | None = detect_script(question) or detect_script(earlier[-1])
    if len(folded) == len(question):
        # Equal stretches come from the question as typed; the rest was inserted.
        out = []
        matcher = difflib.SequenceMatcher(None, folded, resolved, autojunk=False)
        for op, a1, a2, b1, b2 in matcher.get_opcodes():
            if op == "equal":
                out.append(question[a1:a2])
            elif op in ("replace", "insert"):
                out.append(_written(resolved[b1:b2], script, earlier))
        return "".join(out)
    return to_script(resolved, script) if script == "hant" else resolved


def _written(inserted: str, script: Script | None, earlier: Sequence[str]) -> str:
    """`inserted` (folded) in `script`: as the user typed it in an earlier question of that
    script (or of none), else converted.

    Folding lower-cases Latin letters, and OpenCC's traditional is one standard among
    several: the user's own RAG, iPhone, 麵包, 台灣 and 哪裡 came back as rag, iphone, 麪包,
    臺灣 and 哪裏.
    """
    other = "hans" if script == "hant" else "hant"
    for typed in reversed(earlier):
        folded = fold_script(typed)
        at = folded.find(inserted)
        if at >= 0 and len(folded) == len(typed) and detect_script(typed) != other:
            return typed[at : at + len(inserted)]
    return to_script(inserted, script) if script == "hant" else inserted
