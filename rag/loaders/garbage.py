"""Tell a usable text layer from mojibake (a PDF font without a usable ToUnicode map)."""

from __future__ import annotations

import unicodedata

# The 200 most frequent hanzi of modern Chinese text (simplified, plus their traditional forms
# where they differ). They make up about half of any real Chinese text; glyph codes read as
# Unicode land anywhere in the CJK block and almost never on them.
_COMMON_HANZI = frozenset(
    "的一是不了在人有我他这個个们中来上大为和国國地到以说說时時要就出会會可也你对對生能而子那得"
    "于於着下自之年过過发發后後作里裡用道行所然家种種事成方多经經么麼去法学學如都同现現当當没沒"
    "动動面起看定天分还還进進好小部其些主样樣理心她本前开開但因只从從想实實日军軍者意无無力它与與"
    "长長把机機十民第公此已工使情明性知全三又关關点點正业業外将將两兩高间間由问問很最重并並物手应應"
    "战戰向头頭文体體政美相见見被利什二等产產或新己制製身果加西斯月话話合回特代内內信表化老给給世"
    "位次度门門任常先海通教儿兒原东東声聲提立及比员員解水名真论論处處走义義各入几幾口认認条條平系"
)
_BAD_CATEGORIES = ("Co", "Cn", "Cs", "Cc")


def is_garbage(text: str) -> bool:
    """Whether a page's text layer is unreadable: mojibake, unmapped glyphs or random hanzi.

    Three signs, any one enough: over 10% of the characters are control, private-use,
    unassigned or replacement characters; over 30 hanzi of which under 8% are common ones
    (real Chinese: 40-55%); Latin-1 accented letters making up over 30% of the letters (GBK
    bytes read as Latin-1).
    """
    chars = [ch for ch in text if not ch.isspace()]
    if not chars:
        return False
    bad = sum(
        1
        for ch in chars
        if ch in "\ufffd\ufffe\uffff" or unicodedata.category(ch) in _BAD_CATEGORIES
    )
    if bad > 0.1 * len(chars):
        return True
    hanzi = [ch for ch in chars if "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"]
    if len(hanzi) > 30 and sum(ch in _COMMON_HANZI for ch in hanzi) < 0.08 * len(hanzi):
        return True
    letters = [ch for ch in chars if ch.isalpha() and ch < "\u0250"]
    accented = sum(1 for ch in letters if "\u00c0" <= ch <= "\u00ff")
    return len(letters) > 30 and accented > 0.3 * len(letters)
