"""Tokenisers for the lexical index, all applied to script-folded text.

An index records the NAME of the tokeniser it was built with (`rag.index.config.IndexConfig`)
and every passage's tokens follow from it (BM25 caches, Milvus's `lexical` field), so a
tokeniser's output never changes once released: a better one is a new name (`bigram2` after
`bigram`), and `DEFAULT_TOKENIZER` names the one a new index gets.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from typing import Literal

# CJK ideographs (with extension A) are matched as overlapping bigrams; Latin words and numbers
# are kept whole (`2012`, `wto`). Everything else (punctuation, spaces) separates tokens.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUN = re.compile(rf"[{_CJK}]+|[a-z0-9]+(?:[.\-/][a-z0-9]+)*")
_IS_CJK = re.compile(rf"[{_CJK}]")

Tokenizer = Callable[[str], list[str]]
# The names `Settings.tokenizer` and `POST /v1/collections` accept: `TOKENIZERS`' keys.
TokenizerName = Literal["bigram2", "bigram", "jieba", "bigram+jieba"]

# What a new index is built with when no tokenizer is asked for (`RAG_TOKENIZER` unset).
DEFAULT_TOKENIZER: TokenizerName = "bigram2"
# What an index whose metadata names none was built with: the default before `bigram2`.
LEGACY_TOKENIZER: TokenizerName = "bigram"


def bigram_tokens(folded: str) -> list[str]:
    """Overlapping character bigrams of CJK runs (a lone character stays a unigram).

    Version 1, frozen: the tokens of every index built with `bigram`. It keeps only BMP
    ideographs and `[a-z0-9]` words; `bigram2` is the same on such text and keeps the rest.
    """
    tokens: list[str] = []
    for run in _RUN.findall(folded):
        if _IS_CJK.match(run):
            if len(run) == 1:
                tokens.append(run)
            else:
                tokens.extend(run[i : i + 2] for i in range(len(run) - 1))
        else:
            tokens.append(run)
    return tokens


# -- bigram2 -------------------------------------------------------------------------------

# Written as bigrams, in one run whatever the mix (as Lucene's CJK bigram analyser does:
# 食べる -> 食べ べる, ソニーの本社 -> ソニ ニー ーの の本 本社):
_HAN = (
    _CJK
    + "\u3005-\u3007"  # 々 〆 〇 (iteration mark, closing mark, ideographic zero: 二〇一二年)
    + "\u303b"  # 〻 (vertical iteration mark)
    # Planes 2 and 3, every assigned character of which is a CJK ideograph: extensions B to
    # H, and the compatibility supplement (which NFKC folds to unified ones anyway).
    + "\U00020000-\U0003ffff"
)
_KANA = (
    "\u3031-\u3035"  # 〱〲〳〴〵 kana repeat marks
    "\u3041-\u3096\u3099-\u309f"  # hiragana (with ゝゞゟ and the combining sound marks)
    "\u30a1-\u30fa\u30fc-\u30ff"  # katakana with ー and ヽヾヿ, not ゠ or the middle dot ・
    "\u31f0-\u31ff"  # small katakana for Ainu
    "\U0001aff0-\U0001b16f"  # kana supplements (hentaigana, small kana)
)
_HANGUL = (
    "\u1100-\u11ff"  # conjoining jamo (NFKC turns compatibility jamo into these)
    "\u3131-\u318e"
    "\ua960-\ua97f"
    "\uac00-\ud7a3"  # syllables
    "\ud7b0-\ud7ff"
)
_EAST_ASIAN = _HAN + _KANA + _HANGUL
_IS_EAST_ASIAN = re.compile(f"[{_EAST_ASIAN}]")
# Variation selectors choose a glyph, not a character: 葛\U000e0100 is 葛 to a reader.
_VARIATION = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")
# Planes above the first hold no letters or digits outside `_EAST_ASIAN`'s, and no marks but
# the variation selectors (dropped first): the table below stops at U+1FFFF.
_LAST_LETTER_PLANE = 0x1FFFF


def _ranges(points: list[int]) -> str:
    """A regex character class body for sorted code points, as ranges."""
    out: list[str] = []
    start = prev = points[0]
    for point in [*points[1:], -1]:
        if point == prev + 1:
            prev = point
            continue
        out.append(re.escape(chr(start)) + ("" if prev == start else "-" + re.escape(chr(prev))))
        start = prev = point
    return "".join(out)


@lru_cache(maxsize=1)
def _bigram2_pattern() -> re.Pattern[str]:
    """East Asian runs, or words of letters and digits (any alphabet) with their marks.

    Built on first use from Python's Unicode database (0.03 s): a word starts with a letter
    or digit (general category L or N) and goes on with letters, digits and combining marks
    (M), so that a combining diaeresis, Devanagari vowel signs or Arabic vowel marks stay
    inside their word. The characters beyond the BMP are a class of their own behind a
    one-range look-ahead: in one class, `re` tries their hundreds of ranges one by one at
    every separator, which made tokenising four times slower.
    """
    classes: dict[tuple[bool, bool], list[int]] = {
        (bmp, start): [] for bmp in (True, False) for start in (True, False)
    }
    for point in range(min(sys.maxunicode, _LAST_LETTER_PLANE) + 1):
        char = chr(point)
        kind = unicodedata.category(char)[0]
        if kind in "LNM" and not _IS_EAST_ASIAN.match(char):
            classes[point < 0x10000, False].append(point)
            if kind != "M":
                classes[point < 0x10000, True].append(point)

    def one_of(start: bool) -> str:
        bmp, beyond = _ranges(classes[True, start]), _ranges(classes[False, start])
        return f"(?:[{bmp}]|(?=[\U00010000-\U0001ffff])[{beyond}])"

    word = f"{one_of(True)}{one_of(False)}*"
    return re.compile(f"[{_EAST_ASIAN}]+|{word}(?:[.\\-/]{word})*")


def bigram2_tokens(folded: str) -> list[str]:
    """`bigram` (version 2) for every script: what version 1 dropped gets tokens too.

    - Ideographs beyond the BMP (extensions B to H: Cantonese 𠵱 𡃁, the simplified forms
      OpenCC folds some traditional characters to, 勣 -> 𪟝, and the compatibility
      supplement), 〇 (二〇一二年) and the iteration marks 々 〆 〻 are CJK.
    - Japanese kana (with ー) and Korean hangul are CJK too: overlapping bigrams of each run,
      which may mix them with ideographs (ソニーの本社: ソニ ニー ーの の本 本社); a lone
      character stays a unigram. Variation selectors (葛\U000e0100) are ignored.
    - Words are letters and digits of any alphabet with their combining marks (`müller`,
      `москва`, `ἀθῆναι`), joined by `.`, `-` or `/` as before (`2.5`, `covid-19`, `a/b`).

    On text made only of BMP ideographs (U+3400-4DBF, 4E00-9FFF, F900-FAFF), ASCII letters
    and digits and characters that are neither letters, digits nor marks (punctuation,
    symbols, spaces), the tokens are exactly `bigram`'s: Chinese retrieval does not move.

    Letters, digits and marks are those of the running Python's Unicode database (14.0 for
    Python 3.11): a character first assigned by a later version is a separator before it.
    Scripts written without spaces other than CJK (Thai, Lao, Khmer, Burmese) give one
    token per space-separated run.
    """
    if _VARIATION.search(folded) is not None:
        folded = _VARIATION.sub("", folded)
    tokens: list[str] = []
    for run in _bigram2_pattern().findall(folded):
        if len(run) == 1 or not _IS_EAST_ASIAN.match(run):  # a word, or a lone character
            tokens.append(run)
        else:
            tokens.extend(run[i : i + 2] for i in range(len(run) - 1))
    return tokens


# -- jieba ---------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _jieba() -> object:
    import logging

    import jieba

    # jieba logs its dictionary loading at INFO; that is noise in a CLI.
    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def jieba_tokens(folded: str) -> list[str]:
    """Words from jieba's search-engine mode (overlapping words for long compounds).

    Version 1: like `bigram`, it keeps only BMP ideographs and `[a-z0-9]` words.
    """
    jieba = _jieba()
    return [t for t in jieba.lcut_for_search(folded) if _RUN.fullmatch(t)]  # type: ignore[attr-defined]


def mixed_tokens(folded: str) -> list[str]:
    """`bigram` plus jieba's words of other lengths than two (version 1, as `bigram`)."""
    return bigram_tokens(folded) + [t for t in jieba_tokens(folded) if len(t) != 2]


TOKENIZERS: dict[str, Tokenizer] = {
    "bigram2": bigram2_tokens,
    "bigram": bigram_tokens,
    "jieba": jieba_tokens,
    "bigram+jieba": mixed_tokens,
}


def get_tokenizer(name: str) -> Tokenizer:
    try:
        return TOKENIZERS[name]
    except KeyError:
        raise ValueError(f"unknown tokenizer {name!r}; valid: {', '.join(TOKENIZERS)}") from None
