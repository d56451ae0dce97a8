"""Word's automatic list and clause numbers ("第三条", "（一）", "1.2"), written as Word shows them.

A numbered paragraph stores no number: its `w:numPr` (or its style's) names a numbering
instance and a level, and Word counts. Regulations and contracts are numbered this way, so
without the numbers "第三条规定了什么？" finds nothing. python-docx does not render them, and
no maintained package that fits our dependencies does it for our body walk (docx2python
parses the whole file itself and knows no Chinese formats).

Counters are kept per abstract numbering and level, in body order: a level restarts when a
higher level advances (or the one `w:lvlRestart` names), starts at `w:start`, and a
numbering instance's `w:startOverride` restarts it where the instance is first used.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_VAL = f"{_W}val"
_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
_LEVELS = 9
# Past these a format has no sensible rendering (a hostile `w:start` of 10**9 would write a
# million Roman M's); Word's decimal is written instead.
_MAX_ROMAN = 3999
_MAX_LETTERS = 26 * 20
_MAX_CHINESE = 99_999_999


@dataclass(frozen=True)
class Level:
    """One level of an abstract numbering: how its number is counted and written."""

    start: int = 0  # the spec's value when w:start is left out
    fmt: str = "decimal"
    text: str = ""
    legal: bool = False  # w:isLgl: every level's number written in decimal
    suffix: str = "tab"
    restart: int | None = None  # w:lvlRestart: restart after a level above this (1-based)
    style: str | None = None  # w:pStyle: the paragraph style bound to this level


@dataclass(frozen=True)
class _Instance:
    num_id: str
    abstract: str
    levels: dict[int, Level]  # the abstract's levels with this instance's overrides
    restarts: frozenset[int]  # levels whose start this instance overrides


class Numbering:
    """The numbers of a document's paragraphs, counted in the order they are asked for."""

    def __init__(self, numbering: Any | None, styles: Any | None) -> None:
        """Args:
        numbering: The root of word/numbering.xml, or None.
        styles: The root of word/styles.xml, or None.
        """
        self._styles = _paragraph_styles(styles)
        self._abstracts: dict[str, dict[int, Level]] = {}
        self._style_links: dict[str, str] = {}  # abstract id -> the style it takes levels from
        self._instances: dict[str, _Instance] = {}
        self._counters: dict[str, dict[int, int]] = {}
        self._started: set[str] = set()
        self._labels: dict[Any, str] = {}  # by paragraph element
        if numbering is not None:
            self._read(numbering)

    def label(self, paragraph: Any) -> str:
        """Count `paragraph` if it is numbered; its number and the space after it, or "".

        A paragraph asked for again gets the label it got and is not counted twice: a table
        cell merged down rows comes back once per row it covers.
        """
        if paragraph not in self._labels:
            self._labels[paragraph] = self._count(paragraph)
        return self._labels[paragraph]

    def _count(self, paragraph: Any) -> str:
        found = self._numbering_of(paragraph)
        if found is None:
            return ""
        instance, ilvl = found
        level = instance.levels.get(ilvl)
        if level is None:
            return ""
        counters = self._counters.setdefault(instance.abstract, {})
        if instance.num_id not in self._started:
            self._started.add(instance.num_id)
            for restarted in instance.restarts:
                counters.pop(restarted, None)
        counters[ilvl] = counters[ilvl] + 1 if ilvl in counters else level.start
        for deeper in range(ilvl + 1, _LEVELS):
            below = instance.levels.get(deeper)
            limit = below.restart if below is not None and below.restart is not None else deeper
            if ilvl < limit:
                counters.pop(deeper, None)
        if level.fmt == "bullet" or not level.text:
            return ""
        written = level.text
        for k in range(1, _LEVELS + 1):  # %1 .. %9: the counters of levels 0 .. 8
            placeholder = f"%{k}"
            if placeholder not in written:
                continue
            other = instance.levels.get(k - 1, Level())
            value = counters.get(k - 1, other.start)
            fmt = "decimal" if level.legal and other.fmt != "none" else other.fmt
            written = written.replace(placeholder, format_number(value, fmt))
        if not written.strip():
            return ""
        return written + ("" if level.suffix == "nothing" else " ")

    def _numbering_of(self, paragraph: Any) -> tuple[_Instance, int] | None:
        props = paragraph.find(f"{_W}pPr")
        num_id: str | None = None
        ilvl: int | None = None
        style_id: str | None = None
        if props is not None:
            num_pr = props.find(f"{_W}numPr")
            if num_pr is not None:
                num_id = _val(num_pr.find(f"{_W}numId"))
                ilvl = _int(_val(num_pr.find(f"{_W}ilvl")))
            style_id = _val(props.find(f"{_W}pStyle"))
        style_id = style_id or self._styles.default
        if num_id is None and style_id is not None:
            num_id, style_ilvl = self._styles.numbering(style_id)
            ilvl = style_ilvl if ilvl is None else ilvl
        if num_id is None or num_id == "0":  # numId 0: numbering switched off here
            return None
        instance = self._instances.get(num_id)
        if instance is None:
            return None
        if ilvl is None:
            # A style bound to a list level (heading 2 -> level 1) names only the numbering.
            ilvl = next(
                (i for i, lvl in instance.levels.items() if style_id and lvl.style == style_id), 0
            )
        return instance, min(max(ilvl, 0), _LEVELS - 1)

    def _read(self, root: Any) -> None:
        for abstract in root.iterfind(f"{_W}abstractNum"):
            key = abstract.get(f"{_W}abstractNumId")
            if key is None:
                continue
            self._abstracts[key] = _levels(abstract)
            link = _val(abstract.find(f"{_W}numStyleLink"))
            if link:
                self._style_links[key] = link
        nums = {}
        for num in root.iterfind(f"{_W}num"):
            num_id = num.get(f"{_W}numId")
            abstract_id = _val(num.find(f"{_W}abstractNumId"))
            if num_id is not None and abstract_id is not None:
                nums[num_id] = (abstract_id, num)
        for num_id, (abstract_id, num) in nums.items():
            # A list that uses a numbering style (w:numStyleLink) counts with the abstract
            # numbering that the style's own numbering instance names.
            linked_num, _ = self._styles.numbering(self._style_links.get(abstract_id, ""))
            if linked_num in nums:
                abstract_id = nums[linked_num][0]
            levels = dict(self._abstracts.get(abstract_id, {}))
            restarts = set()
            for override in num.iterfind(f"{_W}lvlOverride"):
                ilvl = _int(override.get(f"{_W}ilvl"))
                if ilvl is None or not 0 <= ilvl < _LEVELS:
                    continue
                replaced = override.find(f"{_W}lvl")
                if replaced is not None:
                    levels[ilvl] = _level(replaced)
                start = _int(_val(override.find(f"{_W}startOverride")))
                if start is not None:
                    levels[ilvl] = replace(levels.get(ilvl, Level()), start=max(start, 0))
                    restarts.add(ilvl)
            self._instances[num_id] = _Instance(num_id, abstract_id, levels, frozenset(restarts))


class _Styles:
    """Paragraph styles' numbering, followed through `w:basedOn`."""

    def __init__(self) -> None:
        self.default: str | None = None
        self.based_on: dict[str, str] = {}
        self.own: dict[str, tuple[str | None, int | None]] = {}

    def numbering(self, style_id: str) -> tuple[str | None, int | None]:
        seen: set[str] = set()
        current: str | None = style_id
        while current is not None and current not in seen:
            seen.add(current)
            if current in self.own:
                return self.own[current]
            current = self.based_on.get(current)
        return None, None


def _paragraph_styles(root: Any | None) -> _Styles:
    styles = _Styles()
    if root is None:
        return styles
    for style in root.iterfind(f"{_W}style"):
        kind = style.get(f"{_W}type")
        # A numbering style names the numbering instance that lists linked to it count with.
        if kind not in ("paragraph", "numbering"):
            continue
        key = style.get(f"{_W}styleId")
        if key is None:
            continue
        if kind == "paragraph" and style.get(f"{_W}default") in ("1", "true", "on"):
            styles.default = key
        based = _val(style.find(f"{_W}basedOn"))
        if based:
            styles.based_on[key] = based
        num_pr = style.find(f"{_W}pPr/{_W}numPr")
        if num_pr is not None:
            styles.own[key] = (
                _val(num_pr.find(f"{_W}numId")),
                _int(_val(num_pr.find(f"{_W}ilvl"))),
            )
    return styles


def _levels(abstract: Any) -> dict[int, Level]:
    levels = {}
    for lvl in abstract.iterfind(f"{_W}lvl"):
        ilvl = _int(lvl.get(f"{_W}ilvl"))
        if ilvl is not None and 0 <= ilvl < _LEVELS:
            levels[ilvl] = _level(lvl)
    return levels


def _level(lvl: Any) -> Level:
    legal = lvl.find(f"{_W}isLgl")
    return Level(
        start=max(_int(_val(lvl.find(f"{_W}start"))) or 0, 0),
        fmt=_number_format(lvl),
        text=_val(lvl.find(f"{_W}lvlText")) or "",
        legal=legal is not None and (_val(legal) or "1") not in ("0", "false", "off"),
        suffix=_val(lvl.find(f"{_W}suff")) or "tab",
        restart=_int(_val(lvl.find(f"{_W}lvlRestart"))),
        style=_val(lvl.find(f"{_W}pStyle")),
    )


def _number_format(lvl: Any) -> str:
    """A level's w:numFmt; Word 2010+ wraps it in mc:AlternateContent, whose fallback names
    the standard format for a custom one ("001, 002, ...")."""
    fmt = _val(lvl.find(f"{_W}numFmt"))
    if fmt is None:
        fmt = _val(lvl.find(f"{_MC}AlternateContent/{_MC}Fallback/{_W}numFmt"))
    return fmt or "decimal"


def _val(element: Any | None) -> str | None:
    return None if element is None else element.get(_VAL)


def _int(text: str | None) -> int | None:
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


def format_number(value: int, fmt: str) -> str:
    """`value` written in the OOXML number format `fmt` (decimal for a format not known)."""
    if fmt in ("none", "bullet"):
        return ""
    if value <= 0 and fmt not in ("decimal", "decimalZero"):
        return str(value)  # zero has no letter, Roman numeral or enclosed form
    if fmt == "decimalZero":
        return f"{value:02d}"
    if fmt in ("lowerLetter", "upperLetter") and value <= _MAX_LETTERS:
        # Word repeats the letter past z: y, z, aa, bb.
        letters = chr(ord("a") + (value - 1) % 26) * ((value - 1) // 26 + 1)
        return letters if fmt == "lowerLetter" else letters.upper()
    if fmt in ("lowerRoman", "upperRoman") and value <= _MAX_ROMAN:
        roman = _roman(value)
        return roman.lower() if fmt == "lowerRoman" else roman
    if fmt in _CYCLES:
        cycle = _CYCLES[fmt]
        return cycle[(value - 1) % len(cycle)]
    if fmt in _ENCLOSED and value <= len(_ENCLOSED[fmt]):
        return _ENCLOSED[fmt][value - 1]
    if value <= _MAX_CHINESE:
        if fmt == "chineseCounting":
            # Word counts 一 .. 九十九 in words, then digit by digit: 一〇〇, 一〇一.
            return (
                _counting(value, "〇一二三四五六七八九", "十百千")
                if value < 100
                else ("".join("〇一二三四五六七八九"[int(d)] for d in str(value)))
            )
        if fmt == "ideographDigital":
            return "".join("〇一二三四五六七八九"[int(d)] for d in str(value))
        if fmt == "chineseCountingThousand":
            return _counting(value, "〇一二三四五六七八九", "十百千")  # Word's gap: 一百〇一
        if fmt == "taiwaneseCountingThousand":
            return _counting(value, "零一二三四五六七八九", "十百千", myriad="萬")
        if fmt == "chineseLegalSimplified":
            return _counting(value, "零壹贰叁肆伍陆柒捌玖", "拾佰仟", tens_one=True)
        if fmt == "ideographLegalTraditional":
            return _counting(value, "零壹貳參肆伍陸柒捌玖", "拾佰仟", tens_one=True, myriad="萬")
        if fmt in ("japaneseCounting", "koreanCounting"):
            return _counting(value, "〇一二三四五六七八九", "十百千", zero=False, bare_one=True)
    if fmt == "decimalFullWidth":
        return str(value).translate(_FULL_WIDTH)
    return str(value)


_CYCLES = {
    "ideographTraditional": "甲乙丙丁戊己庚辛壬癸",
    "ideographZodiac": "子丑寅卯辰巳午未申酉戌亥",
}
_ENCLOSED = {
    "decimalEnclosedCircle": [chr(0x2460 + i) for i in range(20)],  # ① .. ⑳
    "decimalEnclosedCircleChinese": [chr(0x2460 + i) for i in range(20)],
    "ideographEnclosedCircle": [chr(0x3220 + i) for i in range(10)],  # ㈠ .. ㈩
    "decimalEnclosedParen": [chr(0x2474 + i) for i in range(20)],  # ⑴ .. ⒇
    "decimalEnclosedFullstop": [chr(0x2488 + i) for i in range(20)],  # ⒈ .. ⒛
}
_FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def _roman(value: int) -> str:
    parts = []
    for amount, numeral in (
        (1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
        (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I"),
    ):  # fmt: skip
        count, value = divmod(value, amount)
        parts.append(numeral * count)
    return "".join(parts)


def _counting(
    value: int,
    digits: str,
    units: str,
    *,
    zero: bool = True,
    tens_one: bool = False,
    bare_one: bool = False,
    leading: bool = True,
    myriad: str = "万",
) -> str:
    """A number in Chinese-style words: 一百零五, 二千三百, 十二; 万 groups past 9999.

    Args:
        value: At least 1.
        digits: The words for 0-9.
        units: The words for ten, hundred and thousand.
        zero: Whether a gap is written with the zero word (Chinese 一百零五; Japanese 百五).
        tens_one: Whether 10-19 keep their one (壹拾贰, as legal writing does; 十二 otherwise).
        bare_one: Whether 10, 100 and 1000 drop their one in every place (Japanese 百, 千).
        leading: Whether these words start the number: 十二, but 一万零一十二.
        myriad: The word for ten thousand (萬 in traditional characters).
    """
    if value >= 10_000:
        high, low = divmod(value, 10_000)
        part = functools.partial(
            _counting, digits=digits, units=units, zero=zero, tens_one=tens_one, bare_one=bare_one
        )
        rest = part(low, leading=False) if low else ""
        gap = digits[0] if zero and low and low < 1000 else ""
        return part(high) + myriad + gap + rest
    words: list[str] = []
    pending_zero = False
    for place, unit in ((1000, units[2]), (100, units[1]), (10, units[0]), (1, "")):
        digit = value // place % 10
        if digit == 0:
            pending_zero = bool(words)
            continue
        if pending_zero and zero:
            words.append(digits[0])
        pending_zero = False
        drop_one = (
            digit == 1 and unit and (bare_one or (unit == units[0] and value < 20 and leading))
        )
        words.append(("" if drop_one and not tens_one else digits[digit]) + unit)
    return "".join(words)
