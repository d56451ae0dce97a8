"""Candidate answer spans in a text: names, dates, numbers with units, titles, noun phrases."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from rag.text.script import fold_chars

SpanKind = Literal["person", "org", "place", "date", "number", "title", "noun", "phrase", "list"]


@dataclass(frozen=True)
class Candidate:
    """`text[start:end]` of the text it was found in, and what kind of thing it names."""

    start: int
    end: int
    kind: SpanKind


_CN_DIGITS = "〇零一二两三四五六七八九十百千万亿"
_NUM = rf"(?:\d[\d,，.]*|[{_CN_DIGITS}]+)"
UNIT = (
    r"(?:%|％|‰|余?万?亿?(?:多|余)?"
    r"(?:个|名|位|人|次|件|项|条|种|部|本|首|场|座|所|家|架|艘|辆|台|只|头|匹|颗|枚|张|层|级|届|"
    r"期|集|章|节|篇|卷|册|字|分|秒|分钟|小时|天|日|周|星期|个月|月|年|岁|世纪|代|元|美元|港元|"
    r"英镑|欧元|日元|块|角|米|公里|千米|厘米|毫米|英里|英尺|公尺|平方公里|平方米|公顷|亩|吨|"
    r"公斤|千克|克|磅|升|毫升|度|倍|成|票|分贝|瓦|千瓦|伏|赫兹|卡|强|号|户|口|股|册|门|球|分钟|公分|"
    r"英寸|英亩|海里|光年|人次|马力|公升|吨位|码|座位|所学校|间|枚|份|幅|趟|轮|季|版|代|路|线|站|对|"
    r"双|套|批|辆次|话|回|班|组|队|支))"
)
_PATTERNS: tuple[tuple[SpanKind, re.Pattern[str]], ...] = (
    # Ranges first: "2011-2020年" is one answer, not two years.
    (
        "date",
        re.compile(
            r"(?:公元前?)?\d{1,4}\s*年?\s*[-–—~至到]\s*\d{1,4}\s*年(?:代)?"
            r"|(?:公元前?)?\d{1,4}年(?:代|初|末|底|中)?(?:\d{1,2}月(?:\d{1,2}[日号])?)?"
            r"|\d{1,2}月\d{1,2}[日号]|\d{1,2}月(?:份|初|底|中旬|下旬|上旬)?"
            rf"|[{_CN_DIGITS}]+年(?:代)?(?:[{_CN_DIGITS}]+月(?:[{_CN_DIGITS}]+[日号])?)?"
            rf"|[{_CN_DIGITS}\d]+世纪(?:[{_CN_DIGITS}\d]+年代)?(?:初|末|中叶|前期|后期)?"
            r"|\d{4}[/.]\d{1,2}(?:[/.]\d{1,2})?"
            r"|(?:周|星期)[一二三四五六日天]"
        ),
    ),
    # Ordinals keep their 第 ("第十三届"): the gold answers do.
    ("number", re.compile(rf"{_NUM}\s*[-–~至到]\s*{_NUM}\s*{UNIT}")),  # "0.5至3公尺"
    ("number", re.compile(rf"(?:约|近|逾|超过|大约|第)?{_NUM}\s*{UNIT}")),
    ("number", re.compile(rf"第?{_NUM}(?:\s*[-–~至到]\s*{_NUM})?")),
    # Transliterated foreign names: jieba cuts "格奥尔基·伊万诺夫" at the dot.
    ("person", re.compile(r"[\u4e00-\u9fff]{1,8}(?:[·•．][\u4e00-\u9fff]{1,10})+")),
    ("title", re.compile(r"《[^《》]{1,40}》|“[^“”]{1,30}”|「[^「」]{1,30}」|『[^『』]{1,30}』")),
)

# jieba part-of-speech tags that make a name of each kind.
_NAME_TAGS: dict[str, SpanKind] = {
    "nr": "person",
    "nrfg": "person",
    "nrt": "person",
    "ns": "place",
    "nt": "org",
    "nz": "noun",
}
# Tags that may be part of a noun phrase ("国家质检总局", "质量月活动").
_NOUN_TAGS = frozenset(
    {"n", "nr", "nrfg", "nrt", "ns", "nt", "nz", "vn", "an", "ng", "eng", "j", "l", "i"}
)
_PLACE_SUFFIX = re.compile(r"[省市县区镇乡村州国洲岛山河湖海江]$")
_ORG_SUFFIX = re.compile(
    r"(?:公司|集团|大学|学院|学校|医院|银行|协会|委员会|政府|部|局|署|厅|院|会|党|队|社|所|中心|组织)$"
)
MAX_NOUN_CHARS = 20
# Phrases: runs of up to this many words inside one clause, which is how most answers that are
# neither names nor numbers look (CMRC 2018: 98% of the gold answers start and end at jieba
# word boundaries).
MAX_PHRASE_WORDS = 8
MAX_PHRASE_CHARS = 30
_CLAUSE_END = frozenset("，,。；;：:！!？?、（）()\n")
# Words a phrase does not start or end with: particles and function words.
_LOOSE_START = frozenset("的了是在和与及或于对把被将也都就要会能从向以为由之其这那着过呢吗而且并但")
_LOOSE_END = frozenset("的了是在和与及或于对把被将也都就要会能从向以为由之其着过呢吗而且并但地得")


_PAIRS = (
    ("《", "》"),
    ("“", "”"),
    ("「", "」"),
    ("『", "』"),
    ("（", "）"),
    ("(", ")"),
    ("【", "】"),
)
_MARKS = frozenset(mark for pair in _PAIRS for mark in pair)


def balanced(text: str) -> bool:
    """Whether every bracket or quote mark opened in `text` is closed there, and the reverse.

    A span that cuts a title in two ("1946年在《自然") is no answer.
    """
    if _MARKS.isdisjoint(text):  # most spans hold none: one pass instead of 14 counts
        return True
    return all(text.count(a) == text.count(b) for a, b in _PAIRS)


def foldable(text: str) -> str:
    """`text` folded to simplified script character by character (`fold_chars`).

    Offsets found in the folded text index the original one.
    """
    return fold_chars(text)


# Common surnames: a word jieba's dictionary does not know (it found it with its HMM) that
# starts with one and is 2-3 characters long is taken for a person's name.
_SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
    "龚邵万钱严覃武戴莫孔向汤梅支葛温殷章柯阎庞岳倪齐童伍翟申康聂关鲁常尚左俞蒲莊庄骆"
)
_UNKNOWN_RUN = re.compile(r"[\u4e00-\u9fff]+")


@lru_cache(maxsize=1)
def _tagger() -> tuple[object, dict[str, str]]:
    import logging

    import jieba
    import jieba.posseg

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba, jieba.posseg.dt.word_tag_tab


@lru_cache(maxsize=512)
def tagged_words(folded: str) -> tuple[tuple[int, int, str], ...]:
    """(start, end, part-of-speech tag) of each jieba word of `folded`, in order.

    jieba's segmenter with its dictionary's tags, not `jieba.posseg` (ten times slower: it
    runs a tagging HMM); words the dictionary lacks are guessed: a name after a surname,
    else a noun. Cached: the composer tags a sentence when choosing it, then as a quote.
    """
    jieba, tags = _tagger()
    out = []
    at = 0
    for word in jieba.lcut(folded):  # type: ignore[attr-defined]
        out.append((at, at + len(word), tags.get(word) or _guess_tag(word)))
        at += len(word)
    return tuple(out)


def _guess_tag(word: str) -> str:
    if not _UNKNOWN_RUN.fullmatch(word):
        return "m" if word[:1].isdigit() else ("eng" if word.isascii() and word.isalpha() else "x")
    if 2 <= len(word) <= 3 and word[0] in _SURNAMES:
        return "nr"
    return "n" if len(word) > 1 else "x"


@lru_cache(maxsize=512)
def find_candidates(
    text: str,
    phrases_in: tuple[tuple[int, int], ...] | None = None,
    words: bool = True,
    folded: str | None = None,
) -> tuple[Candidate, ...]:
    """Every candidate answer span of `text` (any script), deduplicated, in text order.

    Pattern spans (dates, numbers, titles) come first; jieba then adds names and noun
    phrases, i.e. maximal runs of noun-like words, which also gives each of their words;
    last, any run of words inside a clause (a "phrase"), within the `phrases_in` regions
    only (all of `text` when None), since they are many. `words=False` skips jieba: only
    the patterns. `folded` is `foldable(text)` when the caller has it (sliced from its
    passage's). Cached: a sentence is looked into when chosen, then as a quote.
    """
    if folded is None or len(folded) != len(text):
        folded = foldable(text)
    found: dict[tuple[int, int], SpanKind] = {}
    for kind, pattern in _PATTERNS:
        for m in pattern.finditer(folded):
            a, b = m.span()
            if b > a and (a, b) not in found:
                found[(a, b)] = kind
                if kind == "title" and b - a > 2:
                    found.setdefault((a + 1, b - 1), "title")  # the name without its quotes
                if kind == "person":
                    # Where the name's first part starts is unknown ("作曲者为格奥尔基·..."):
                    # every start of it is a candidate.
                    dot = min(folded.find(d, a, b) for d in "·•．" if folded.find(d, a, b) >= 0)
                    for k in range(a + 1, dot):
                        found.setdefault((k, b), "person")
    if not words:
        return tuple(Candidate(a, b, kind) for (a, b), kind in sorted(found.items()))
    tagged = tagged_words(folded)
    run: list[tuple[int, int, str]] = []
    for word in [*tagged, (len(folded), len(folded), "x")]:
        if word[2] in _NOUN_TAGS and folded[word[0] : word[1]].strip():
            run.append(word)
            continue
        _add_run(run, folded, found)
        run = []
    for lo, hi in [(0, len(folded))] if phrases_in is None else phrases_in:
        inside = [w for w in tagged if lo <= w[0] and w[1] <= hi]
        _add_phrases(inside, folded, found)
        _add_lists(inside, folded, found)
    return tuple(Candidate(a, b, kind) for (a, b), kind in sorted(found.items()))


def _add_run(
    run: list[tuple[int, int, str]], folded: str, found: dict[tuple[int, int], SpanKind]
) -> None:
    """A run of noun-like words as its words, its names, and its suffixes as phrases."""
    for a, b, flag in run:
        kind = _NAME_TAGS.get(flag) or _kind_of(folded[a:b], flag)
        found.setdefault((a, b), kind)
    end = run[-1][1] if run else 0
    for i in range(len(run) - 1):
        a = run[i][0]
        if end - a <= MAX_NOUN_CHARS:
            found.setdefault((a, end), _kind_of(folded[a:end], run[-1][2]))
    # Prefixes too: "支树平局长" answers a "who" with 支树平 first.
    for j in range(1, len(run) - 1):
        a, b = run[0][0], run[j][1]
        if b - a <= MAX_NOUN_CHARS:
            found.setdefault((a, b), _kind_of(folded[a:b], run[j][2]))


def _add_phrases(
    words: list[tuple[int, int, str]], folded: str, found: dict[tuple[int, int], SpanKind]
) -> None:
    """Runs of words inside each clause, not starting or ending with a particle."""
    for i, (a, _, _) in enumerate(words):
        if folded[a] in _CLAUSE_END or folded[a] in _LOOSE_START or not folded[a].strip():
            continue
        for j in range(i, min(i + MAX_PHRASE_WORDS, len(words))):
            b = words[j][1]
            if b - a > MAX_PHRASE_CHARS or folded[words[j][0]] in _CLAUSE_END:
                break
            if folded[b - 1] not in _LOOSE_END and folded[b - 1].strip():
                found.setdefault((a, b), "phrase")


# An enumeration: items joined by 、, the last perhaps by 和/及/与/或 ("上海、北京、顺德").
_JOINERS = frozenset({"和", "及", "与", "或", "以及", "或者"})
MAX_ITEM_CHARS = 12


def _add_lists(
    words: list[tuple[int, int, str]], folded: str, found: dict[tuple[int, int], SpanKind]
) -> None:
    """Each chain of items joined by 、 inside a clause, with every plausible first-item
    start and last-item end (the items' own extent is not marked)."""
    i = 0
    while i < len(words):
        if folded[words[i][0] : words[i][1]] != "、":
            i += 1
            continue
        first = i  # the first 、 of a chain
        j = i
        while j + 1 < len(words):
            w = folded[words[j + 1][0] : words[j + 1][1]]
            if w in _CLAUSE_END and w != "、":
                break
            j += 1
        # Starts: word starts before the first 、 within one item's length, clause-bounded.
        starts = []
        k = first - 1
        while k >= 0 and words[first][0] - words[k][0] <= MAX_ITEM_CHARS:
            if folded[words[k][0]] in _CLAUSE_END:
                break
            if folded[words[k][0]] not in _LOOSE_START:
                starts.append(words[k][0])
            k -= 1
        last = max(k for k in range(first, j + 1) if folded[words[k][0] : words[k][1]] == "、")
        ends = []
        for k in range(last + 1, j + 1):
            if words[k][1] - words[last][1] > MAX_ITEM_CHARS:
                break
            w = folded[words[k][0] : words[k][1]]
            if w in _JOINERS or w in _LOOSE_END:
                continue
            ends.append(words[k][1])
        # A joiner and one more item ("...、北京和顺德").
        for k in range(last + 1, min(j + 1, last + 6)):
            if folded[words[k][0] : words[k][1]] in _JOINERS:
                ends += [
                    words[m][1]
                    for m in range(k + 1, j + 1)
                    if words[m][1] - words[k][1] <= MAX_ITEM_CHARS
                    and folded[words[m][1] - 1] not in _LOOSE_END
                ]
                break
        for a in starts[:4]:
            for b in ends[:6]:
                if b - a <= 4 * MAX_ITEM_CHARS:
                    found.setdefault((a, b), "list")
        i = j + 1


def _kind_of(phrase: str, head_tag: str = "n") -> SpanKind:
    """A phrase's kind from its head (last) word: a place or an organisation by suffix.

    A phrase of several words is never a person: "党组书记支树平" is a title and a name.
    """
    if head_tag in _NAME_TAGS and _NAME_TAGS[head_tag] != "person":
        return _NAME_TAGS[head_tag]
    if _ORG_SUFFIX.search(phrase):
        return "org"
    if _PLACE_SUFFIX.search(phrase) and len(phrase) <= 6:
        return "place"
    return "noun"
