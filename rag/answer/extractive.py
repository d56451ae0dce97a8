"""Extractive answers: the sentences that best cover the question, each with its citation."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from math import fsum

from rag.answer.base import ABSTAIN_TEXT, Lexicon
from rag.answer.cite import cite
from rag.answer.spans.candidates import foldable
from rag.answer.spans.features import prepare
from rag.answer.spans.select import Span, anchor_term, best_span, typed_answer_near
from rag.answer.spans.short import Quoted, place_span, short_answer
from rag.text.sentences import split_sentences
from rag.text.tokenize import jieba_tokens
from rag.types import Answer, Citation, ScoredPassage

# Words that make a question a question but say nothing about what is asked (folded form);
# removed from the question text before it is cut into words.
_QUESTION_WORDS = re.compile(
    r"什么样的?|什么时候|什么|哪一?[天年个些种位里儿]|哪|谁|几[个项条月号日年次种名位]?|多少|"
    r"怎么样|怎样|怎么|如何|为什么|为何|何时|何地|何处|是否|吗|呢|请问"
)
# Words that frame a question rather than carry its content: "每年9月是什么活动月？" is
# answered by "9月是全国“质量月”", which says neither 每年 nor 活动月. The noun after
# 什么/哪些 names the answer's category (活动月, 年份), which the answer need not repeat.
_FRAMING = re.compile(r"每年|每月|每天|每周|每届|每个|一般|通常|主要")
# The category stays a question word for choosing the sentence (哪些意识 prefers the
# sentence about 意识) but does not count in `support`.
_CATEGORY = re.compile(
    r"(?:什么|哪些|哪个|哪种|哪类|哪一种|哪一个)([\u4e00-\u9fff]{1,3})(?=[？?，,。的是]|$)"
)
_DATE_WORD = re.compile(r"\d+[年月日号]")
_STOP_WORDS = frozenset("的了是在和与及或于对把被将有也都就要会能从向以为由之其这那个等呀啊")
# What kind of answer a question expects, recognisable in a sentence: "几个/多少" wants a
# number, "哪一天/何时/哪年" a date. A sentence that offers one covers that part of the question.
_WANTS_DATE = re.compile(r"哪一?天|哪年|哪一年|何时|什么时候|几月|几号|几日|日期|年份")
_WANTS_NUMBER = re.compile(r"几|多少")
_DATE = re.compile(r"\d{4}[年/.-]\d{1,2}|\d{1,2}月\d{1,2}[日号]|\d{4}年")
_NUMBER = re.compile(r"\d|[一二两三四五六七八九十百千万亿]+[个项条名位次种件年月日天元岁倍]")
# "他在会上说了什么？" wants what was said: a sentence where a speech verb opens its content
# ("王岐山指出，质量是基础"), not a headline that only announces it ("王岐山在座谈会上指出").
# Only verbs of speaking: 称/表示/提出 + 什么 mostly ask what a thing is called or denotes.
_WANTS_SPEECH = re.compile(r"(?:说|讲|谈|指出|强调)(?:了|过|到)?(?:些)?什么")
_SPEECH = re.compile(r"(?:说|讲|谈到|指出|表示|强调|提出|认为|称)[，,:：]")
DATE_SLOT = "<date>"
NUMBER_SLOT = "<number>"
SPEECH_SLOT = "<speech>"
# A sentence holding a span of the asked type next to the question word nearest the
# wh-word (`rag.answer.spans.select.typed_answer_near`) earns this slot, weighing
# `ExtractiveConfig.typed_weight` of the question: it answers more than a sentence that
# only repeats the question's words.
ANSWER_SLOT = "<answer>"
SLOTS = (DATE_SLOT, NUMBER_SLOT, SPEECH_SLOT, ANSWER_SLOT)
_CLAUSE = re.compile(r"[^，,；;：:]+[，,；;：:]?")


@dataclass(frozen=True)
class ExtractiveConfig:
    # Abstention (eval/studies/abstention.py): the answer's confidence is the best passage's
    # fused score plus `support_weight` times its support (the IDF-weighted share of the
    # question's words the answer covers); below `abstain_confidence` it abstains. One sum,
    # not a floor on each: a strong passage may answer in other words than the question's,
    # and a weaker one may answer by repeating them. Floors on each remain (0: none).
    abstain_confidence: float = 0.78
    support_weight: float = 0.5
    abstain_below: float = 0.0  # floor on the best passage's fused score
    min_support: float = 0.0  # floor on the support
    min_gain: float = 0.2  # share of the question a further sentence must add
    max_sentences: int = 2
    max_chars: int = 150
    passages_considered: int = 5
    # How much a question word counts when it is not in the sentence but elsewhere in its
    # passage: the subject of an article is often named once, then only implied.
    context_weight: float = 0.5
    # Grow the best sentence with its neighbours in its passage while the answer stays within
    # this many characters (0: never). See `ExtractiveComposer._expand`.
    context_chars: int = 100
    # Share of the question's weight a sentence with a typed answer next to the question's
    # anchor word gains (0: off), in the first `typed_passages` passages.
    typed_weight: float = 0.5
    typed_passages: int = 2
    # Look for the answer span in the cited quotes (`Answer.short_answer`).
    short_answers: bool = True
    # The span scorer's best span in the top passage, when it scores at least
    # `span_min_score`, gives its sentence the answer slot too (0: off), and is then the
    # short answer if the cited quote holds it. Off: 0.2 gained a point of answer hit in
    # the open domain (docs/benchmarks.md), but a short passage (a title line) has few
    # candidates, so its best takes a high share without being an answer, and it broke
    # the demo examples (tests/test_spans_demo.py).
    span_min_score: float = 0.0
    # A sentence's gain is discounted by this factor for each place its passage stands below
    # the first when sentences are compared (1: no discount). Retrieval puts the passage
    # holding the answer first for 91-98% of the questions, yet another passage's sentence
    # that repeats more of the question's words took the first place in 6% of them
    # (docs/benchmarks.md, issue 17).
    rank_discount: float = 0.9


@dataclass(frozen=True)
class _Sentence:
    rank: int  # index of its passage in the retrieval
    start: int
    end: int
    terms: frozenset[str]  # question words in the sentence
    context: frozenset[str]  # question words elsewhere in its passage only


@dataclass(frozen=True)
class Selection:
    """What the composer chose from, and what it chose, before abstaining or quoting."""

    weights: dict[str, float]  # the question's words and slots, with their weights
    total: float  # the question's weight (before the answer slot's bonus)
    sentences: list[_Sentence]  # every sentence looked at, with what it covers
    chosen: list[_Sentence]  # picked by cover, best first
    span: Span | None  # the top passage's best span, when it guided the choice


def grow(sentences: Sequence[tuple[int, int]], i: int, budget: int) -> tuple[int, int]:
    """Sentence `i` of `sentences` (offsets, in order) grown with its neighbours on both
    sides, one at a time, while the whole stays within `budget` characters: its offsets."""
    lo = hi = i
    grown = True
    while grown:
        grown = False
        if lo > 0 and sentences[hi][1] - sentences[lo - 1][0] <= budget:
            lo, grown = lo - 1, True
        if hi + 1 < len(sentences) and sentences[hi + 1][1] - sentences[lo][0] <= budget:
            hi, grown = hi + 1, True
    return sentences[lo][0], sentences[hi][1]


def confident(config: ExtractiveConfig, best: float, support: float) -> bool:
    """Whether an answer with `support`, from passages led by a `best` fused score, is given."""
    return (
        best >= config.abstain_below
        and support >= config.min_support
        and best + config.support_weight * support >= config.abstain_confidence
    )


class ExtractiveComposer:
    """Picks sentences greedily by how much of the question they cover, weighted by IDF.

    IDF weighting makes the rare words of a question (`六个严格`) count more than the names
    that appear everywhere in the corpus (`支树平`), and the greedy set cover lets a second
    sentence complete the first (a byline naming the author, then the line with the date).
    A question whose rare words are nowhere in the passages covers too little and abstains.
    """

    def __init__(self, config: ExtractiveConfig, lexicon: Lexicon) -> None:
        self.config = config
        self.lexicon = lexicon

    # Every sum of weights below is `fsum`, exactly rounded: the question's words come from
    # a set, whose order changes from one process to the next, and a plain float sum in
    # another order can break a tie between two sentences the other way (the same question
    # answered with another sentence after a restart).
    def question_terms(self, question: str) -> dict[str, float]:
        """The question's content words with their weights, plus the answer slot it expects.

        Words come from jieba on the folded question, without question and function words.
        A word weighs the IDF of its rarest index term (a word is no more frequent than its
        rarest part); a word the corpus never saw gets the highest IDF. The expected answer
        slot (a number, a date) weighs the mean of the words.
        """
        folded = foldable(question)
        content = _QUESTION_WORDS.sub(" ", _FRAMING.sub(" ", folded))
        words = {w for w in jieba_tokens(content) if w not in _STOP_WORDS}
        # jieba cuts "9月" into 9 and 月, which the single-character rule below would drop.
        words |= set(_DATE_WORD.findall(content))
        # Single characters are mostly function words or light verbs (抓, 说, 上), and a
        # bigram index has no statistics for them; keep them only if nothing else is left.
        longer = {w for w in words if len(w) > 1}
        words = longer or words
        weights = {}
        for word in words:
            idf = self.lexicon.idf(self.lexicon.tokenize(word))
            weights[word] = max(idf.values(), default=0.0)
        if weights:
            slot_weight = fsum(weights.values()) / len(weights)
            if _WANTS_DATE.search(folded):
                weights[DATE_SLOT] = slot_weight
            elif _WANTS_NUMBER.search(folded):
                weights[NUMBER_SLOT] = slot_weight
            elif _WANTS_SPEECH.search(folded):
                weights[SPEECH_SLOT] = slot_weight
        return weights

    def compose(
        self,
        question: str,
        passages: Sequence[ScoredPassage],
        deadline: float | None = None,  # ignored: nothing to wait on
    ) -> Answer:
        abstain = Answer(question, ABSTAIN_TEXT, True, (), tuple(passages))
        best = passages[0].score if passages else 0.0
        if not passages or not confident(self.config, best, 1.0):  # not even with full support
            return abstain
        selection = self.select(question, passages)
        weights, chosen, span = selection.weights, selection.chosen, selection.span
        support = self.support(chosen, weights, self.framing_words(question))
        if not chosen or not confident(self.config, best, support):
            return abstain
        if self.config.context_chars:
            chosen = self._expand(chosen, passages)
        citations: list[Citation] = []
        for s in chosen:
            passage = passages[s.rank]
            a, b = self._trim(passage.passage.text[s.start : s.end], weights)
            citations.append(cite(len(citations) + 1, passage, s.start + a, s.start + b))
        text = "".join(f"{c.quote}[{c.n}]" for c in citations)
        quoted = [
            Quoted(c, passages[s.rank].passage.sources[0], s.start, passages[s.rank].passage.id)
            for c, s in zip(citations, chosen, strict=True)
        ]
        short = None
        if self.config.short_answers:
            # The span that chose the sentence, if a quote holds it; else the best in the quotes.
            if span is not None:
                short = place_span(quoted, passages[0].passage.id, span.start, span.end)
            short = short or short_answer(question, quoted)
        return Answer(question, text, False, tuple(citations), tuple(passages), short_answer=short)

    def answer_support(self, question: str, passages: Sequence[ScoredPassage]) -> float:
        """The support the answer to `question` would have, before any abstention rule."""
        selection = self.select(question, passages)
        weights, chosen = selection.weights, selection.chosen
        return self.support(chosen, weights, self.framing_words(question)) if chosen else 0.0

    def framing_words(self, question: str) -> frozenset[str]:
        """The words of the category a question asks within (年份 in "哪些年份")."""
        found = _CATEGORY.search(foldable(question))
        return frozenset(jieba_tokens(found.group(1))) if found else frozenset()

    def select(self, question: str, passages: Sequence[ScoredPassage]) -> Selection:
        """The question's weighted words, the sentences looked at and those chosen to answer
        it, and the best span of the top passage when it guided the choice."""
        weights = self.question_terms(question)
        total = fsum(weights.values())
        if total <= 0:
            return Selection(weights, total, [], [], None)
        sentences = self._sentences(passages, weights)
        if SPEECH_SLOT in weights:
            # What someone said is only in a sentence that reports it: when there is one,
            # the others (the headline announcing the speech) cannot answer.
            reported = [s for s in sentences if SPEECH_SLOT in s.terms]
            sentences = reported or sentences
        span = None
        if self.config.typed_weight > 0:
            sentences = self._typed(question, passages, sentences, weights)
            # A typed answer next to the question's anchor word is the surer evidence; the
            # scorer's best span guides only where none was found (a short passage of few
            # candidates gives its best a high share without it being an answer).
            if self.config.span_min_score > 0 and not any(
                ANSWER_SLOT in s.terms for s in sentences
            ):
                sentences, span = self._spanned(question, passages, sentences)
            if any(ANSWER_SLOT in s.terms for s in sentences):
                # A bonus on top: shares of the question (`total`) keep their meaning.
                weights = {**weights, ANSWER_SLOT: self.config.typed_weight * total}
        return Selection(weights, total, sentences, self._choose(sentences, weights, total), span)

    def gain(
        self,
        s: _Sentence,
        weights: dict[str, float],
        total: float,
        covered: frozenset[str] | set[str] = frozenset(),
    ) -> float:
        """Share of the question `s` adds to `covered`, its passage's words at
        `context_weight`."""
        gain = fsum(weights.get(t, 0.0) for t in s.terms - covered)
        gain += self.config.context_weight * fsum(
            weights.get(t, 0.0) for t in s.context - covered - s.terms
        )
        return gain / total

    def _spanned(
        self, question: str, passages: Sequence[ScoredPassage], sentences: list[_Sentence]
    ) -> tuple[list[_Sentence], Span | None]:
        """`sentences`, the one holding the top passage's best span with ANSWER_SLOT."""
        q = prepare(question)
        if q.kind == "why_how" or not passages:
            return sentences, None
        text = passages[0].passage.text
        span = best_span(q, text, min_score=self.config.span_min_score, folded=foldable(text))
        if span is None:
            return sentences, None
        out = [
            _Sentence(s.rank, s.start, s.end, s.terms | {ANSWER_SLOT}, s.context)
            if s.rank == 0 and s.start <= span.start < s.end
            else s
            for s in sentences
        ]
        return out, span

    def _typed(
        self,
        question: str,
        passages: Sequence[ScoredPassage],
        sentences: list[_Sentence],
        weights: dict[str, float],
    ) -> list[_Sentence]:
        """`sentences`, those holding a typed answer next to the anchor word with ANSWER_SLOT."""
        q = prepare(question)
        anchor = anchor_term(q, [w for w in weights if w not in SLOTS])
        if anchor is None:
            return sentences
        # The few sentences that say most of the question and its anchor word are looked
        # into: cutting words is what costs here.
        looked = sorted(
            (s for s in sentences if s.rank < self.config.typed_passages and anchor in s.terms),
            key=lambda s: (-fsum(weights.get(t, 0.0) for t in s.terms), s.rank, s.start),
        )[:3]
        out = []
        for s in sentences:
            if s in looked:
                # Folded by characters, a sentence folds as its slice of the folded passage.
                text = passages[s.rank].passage.text[s.start : s.end]
                if typed_answer_near(q, text, anchor):
                    s = _Sentence(s.rank, s.start, s.end, s.terms | {ANSWER_SLOT}, s.context)
            out.append(s)
        return out

    def support(
        self,
        chosen: Sequence[_Sentence],
        weights: dict[str, float],
        framing: frozenset[str] = frozenset(),
    ) -> float:
        """IDF-weighted share of the question's words that the chosen sentences cover.

        Words only in the sentences' passages count `context_weight`. The answer slot does
        not count: a sentence offering a number is a candidate answer, not evidence that it
        answers *this* question. Nor do the `framing` words (the category asked within).
        """
        words = {w: v for w, v in weights.items() if w not in SLOTS and w not in framing}
        if not words:  # nothing but the category was asked: it is the content then
            words = {w: v for w, v in weights.items() if w not in SLOTS}
        direct = set().union(*(s.terms for s in chosen)) if chosen else set()
        context = set().union(*(s.context for s in chosen)) - direct if chosen else set()
        covered = fsum(words.get(t, 0.0) for t in direct)
        covered += self.config.context_weight * fsum(words.get(t, 0.0) for t in context)
        return covered / (fsum(words.values()) or 1.0)

    def _covered(self, folded: str, weights: dict[str, float]) -> frozenset[str]:
        """The question words (and answer slot) that occur in `folded` (folded text)."""
        covered = {w for w in weights if w in folded}
        if DATE_SLOT in weights and _DATE.search(folded):
            covered.add(DATE_SLOT)
        if NUMBER_SLOT in weights and _NUMBER.search(folded):
            covered.add(NUMBER_SLOT)
        if SPEECH_SLOT in weights and _SPEECH.search(folded):
            covered.add(SPEECH_SLOT)
        return frozenset(covered)

    def _sentences(
        self, passages: Sequence[ScoredPassage], weights: dict[str, float]
    ) -> list[_Sentence]:
        out = []
        for rank, sp in enumerate(passages[: self.config.passages_considered]):
            text = sp.passage.text
            # Folded once per passage by characters (`rag.text.script.fold_chars`), its
            # sentences sliced from it.
            folded = foldable(text)
            in_passage = self._covered(folded, weights)
            for a, b in split_sentences(text):
                if text[a:b].strip():
                    terms = self._covered(folded[a:b], weights)
                    out.append(_Sentence(rank, a, b, terms, in_passage - terms))
        return out

    def _choose(
        self, sentences: list[_Sentence], weights: dict[str, float], total: float
    ) -> list[_Sentence]:
        chosen: list[_Sentence] = []
        covered: set[str] = set()
        length = 0
        while len(chosen) < self.config.max_sentences:
            best, best_key = None, (0.0, 0.0)
            for s in sentences:
                if s in chosen:
                    continue
                gain = self.gain(s, weights, total, covered)
                # Earlier passages win ties: the retrieval already judged them more relevant.
                key = (gain * self.config.rank_discount**s.rank, -s.rank)
                if key > best_key:
                    best, best_key = s, key
            if best is None:
                break
            gain = best_key[0] / self.config.rank_discount**best.rank
            size = min(best.end - best.start, self.config.max_chars)
            if chosen and (gain < self.config.min_gain or length + size > self.config.max_chars):
                break
            chosen.append(best)
            covered |= best.terms
            length += size
        return chosen

    def _expand(
        self, chosen: list[_Sentence], passages: Sequence[ScoredPassage]
    ) -> list[_Sentence]:
        """The best sentence grown with its neighbours while the answer fits `context_chars`.

        The sentence that matches the question's words is often next to the one holding the
        answer: an article names its subject and what it is in its first sentence ("邹游，
        中国足球运动员"), then goes on without the name. On CMRC 2018 + DRCD, 74% of the
        extractive answers that missed had the answer in the best passage. Replaying the
        answers with windows of 80/100/120/150 characters gave answer hit 0.84/0.86/0.87/0.88
        against 0.81 without, at median lengths of 73/88/105/133 characters: 120 keeps an
        answer readable at a glance (docs/benchmarks.md).
        """
        best, others = chosen[0], chosen[1:]
        text = passages[best.rank].passage.text
        sentences = [(a, b) for a, b in split_sentences(text) if text[a:b].strip()]
        if (best.start, best.end) not in sentences:
            return chosen
        budget = self.config.context_chars - sum(s.end - s.start for s in others)
        start, end = grow(sentences, sentences.index((best.start, best.end)), budget)
        window = _Sentence(best.rank, start, end, best.terms, best.context)
        # A second sentence now inside the window is already said.
        rest = [s for s in others if not (s.rank == best.rank and start <= s.start < end)]
        return [window, *rest]

    def _trim(self, sentence: str, weights: dict[str, float]) -> tuple[int, int]:
        """The window of whole clauses of a long sentence that covers the most question weight.

        A long sentence is cut at commas rather than mid-word, keeping the clauses that
        mention what was asked, so a short answer still contains its evidence.
        """
        max_chars = self.config.max_chars
        if len(sentence) <= max_chars:
            return (0, len(sentence))
        clauses = [m.span() for m in _CLAUSE.finditer(sentence)]
        folded = foldable(sentence)
        best, best_key = (0, max_chars), (-1.0, 0)
        for i in range(len(clauses)):
            for j in range(i, len(clauses)):
                a, b = clauses[i][0], clauses[j][1]
                if b - a > max_chars and j > i:
                    break
                covered = self._covered(folded[a:b], weights)
                key = (fsum(weights.get(t, 0.0) for t in covered), -(b - a))
                if key > best_key:
                    best, best_key = (a, min(b, a + max_chars)), key
        return best
