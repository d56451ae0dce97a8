"""Remove conversion damage and page chrome from raw paragraphs, keeping every body sentence."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from rag.ingest.paragraphs import RawParagraph
from rag.text.offsets import MappedText, Replacement
from rag.types import Paragraph

_HANZI = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TONED = "āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜńňǹḿ"
_PINYIN_LETTER = f"a-zü{_TONED}"


def _apply(mapped: MappedText, pattern: re.Pattern[str], repl: Replacement) -> MappedText:
    # Most rules match nothing in most paragraphs; skip rebuilding the per-character map then.
    return mapped.sub(pattern, repl) if pattern.search(mapped.text) else mapped


_INVISIBLE = re.compile("[\u00ad\u200b\u200c\u200d\u2060\ufeff]")


def remove_invisible(mapped: MappedText) -> MappedText:
    """Drop zero-width characters and soft hyphens."""
    # They render as nothing but split words for search and break exact-match evidence.
    return _apply(mapped, _INVISIBLE, "")


_MOJIBAKE = re.compile(rf"(?<=[{_HANZI}])\?{{2,}}(?=[{_HANZI}])")


def remove_mojibake_marks(mapped: MappedText) -> MappedText:
    """Drop runs of `??` standing between two hanzi."""
    # A failed GBK/Big5 conversion writes `?` for each byte it cannot map (seed 001:
    # `形象??梢哉f`); half-width question marks never sit inside running Chinese text.
    return _apply(mapped, _MOJIBAKE, "")


_PINYIN_READING = re.compile(
    rf"(?<=[{_HANZI}])[(（](?=[{_PINYIN_LETTER}]*[{_TONED}])[{_PINYIN_LETTER}]{{1,7}}[)）]"
)


def remove_pinyin_readings(mapped: MappedText) -> MappedText:
    """Drop a toned pinyin syllable in brackets right after a hanzi: `發(fā)展` -> `發展`."""
    # A script converter annotated characters with their reading (seed 001). A tone mark and
    # lowercase letters only: `(WTO)`, `(2011-2020年)` or `(记者何可)` are real text.
    return _apply(mapped, _PINYIN_READING, "")


# A match may start only where a run of white space or of `>` starts (the lookbehinds): tried
# from every position inside a long run, `\s*` and `>{2,}` rescanned the rest of it each
# time, and a paragraph holding 40,000 spaces took over a minute to clean.
_MORE_LINK = re.compile(
    r"(?<!\s)\s*(?:(?<!>)>{2,}|»)\s*(?:詳細閱讀|详细阅读|閱讀全文|阅读全文|查看全文|查看詳情|"
    r"查看详情|詳細|详细|詳情|详情|更多|全文|原文)|(?<!\s)\s*(?:更多|詳細|详细)\s*(?:>{2,}|»)"
)


def remove_more_links(mapped: MappedText) -> MappedText:
    """Drop `>>>詳細閱讀` / `更多>>` link text, keeping the sentence it follows."""
    # These were anchors to the full article on the page they were scraped from; as text they
    # would end up inside quotes and answers.
    return _apply(mapped, _MORE_LINK, "")


_NAV_ITEM = r"[^\s|｜。，；！？,;!?]{1,10}"
_NAV_BAR = re.compile(rf"(?<!\S){_NAV_ITEM}(?:\s*[|｜]\s*{_NAV_ITEM}){{2,}}(?!\S)")


def remove_nav_bars(mapped: MappedText) -> MappedText:
    """Drop runs of three or more short items separated by `|`: `最新|活動|出訪|會議`."""
    # Site menus scraped with the article (seed 001); they are not sentences and would match
    # every query that mentions one of their words.
    return _apply(mapped, _NAV_BAR, "")


_REFERENCE_MARK = re.compile(
    r"(?<=\S)\[(?:\d{1,3}(?:\s?[-–,，]\s?\d{1,3})*|[注註]\s?\d{1,3}|"
    r"编辑|編輯|来源请求|來源請求|需要引用|需要來源|需要来源)\](?!\()"
)


def remove_reference_marks(mapped: MappedText) -> MappedText:
    """Drop footnote and editing marks scraped from encyclopedia pages: `成立[1]。` -> `成立。`."""
    # `[1]`, `[2-3]`, `[注 1]` and `[编辑]` were links on the page they came from. As text
    # they read like the answer's own citation markers ([1] is "the first citation") and
    # split a sentence's words for search. Only a mark right after text is dropped: `[1]`
    # opening a line is an entry of a reference list, which is content.
    return _apply(mapped, _REFERENCE_MARK, "")


_SOFT_BREAK = re.compile(rf"(?<=[{_HANZI}\u3001-\u303f\uff01-\uff60])[^\S\n]*\n\s*(?=[{_HANZI}])")


def join_soft_breaks(mapped: MappedText) -> MappedText:
    """Join lines of one paragraph without a space when the break falls between hanzi."""
    # Chinese puts no space between words: a wrapped Markdown or HTML line must not add one
    # inside a word or a quoted phrase.
    return _apply(mapped, _SOFT_BREAK, "")


_SPACES = re.compile(r"\s{2,}|[^\S ]")


def normalise_spaces(mapped: MappedText) -> MappedText:
    """Turn every white-space run (nbsp, ideographic space, tabs, newlines) into one space."""
    # Scraped pages indent with nbsp and U+3000 (seed 000); search and quoting need plain text.
    return _apply(mapped, _SPACES, " ").strip()


_PARAGRAPH_RULES: tuple[Callable[[MappedText], MappedText], ...] = (
    remove_invisible,
    remove_mojibake_marks,
    remove_pinyin_readings,
    remove_more_links,
    remove_nav_bars,
    remove_reference_marks,
    join_soft_breaks,
    normalise_spaces,
)


def clean_text(mapped: MappedText) -> MappedText:
    """Apply every paragraph-level rule, in order, to one paragraph."""
    for rule in _PARAGRAPH_RULES:
        mapped = rule(mapped)
    return mapped


_FOOTER_MARK = re.compile(
    "|".join(
        (
            r"copyright|©|all rights reserved|版权所有|版權所有|版权声明|版權聲明",
            r"ICP[备備证證]|备案号|備案號|公网安备|公網安備",
            r"联系电话|聯繫電話|电话[:：]|電話[:：]|传真[:：]|傳真[:：]|地址[:：]",
            r"e-?mail|邮箱[:：]|郵箱[:：]|总访问|總訪問|访问量|訪問量",
            r"主办[:：]|主辦[:：]|技术支持[:：]|技術支持[:：]",
        )
    ),
    re.IGNORECASE,
)
_RELATED_LINK = re.compile(
    r"(?P<marker>[-*•·]\s*)?.{1,100}?\s*[(（]\d{4}[-/.年]\d{1,2}[-/.月]\d{1,2}日?[)）]"
)


def is_site_footer(text: str) -> bool:
    """A short line with copyright, ICP number, address, phone, e-mail or visit counter."""
    # A footer is a list of fields, not a sentence: a body line that mentions a phone number
    # ends with `。` and stays.
    return len(text) <= 150 and "。" not in text and _FOOTER_MARK.search(text) is not None


def is_related_link(text: str) -> bool:
    """A list line `- 标题(2011-02-18)`: another article's title with its date."""
    # Sites append links to other articles (seeds 003, 004); their titles are unrelated to the
    # document and would be cited as if they were its content.
    match = _RELATED_LINK.fullmatch(text)
    if match is None:
        return False
    return match.group("marker") is not None or ("。" not in text and len(text) <= 60)


def trailing_boilerplate(texts: Sequence[str]) -> int:
    """How many paragraphs at the end of a document are footer or related-article lines.

    Args:
        texts: Cleaned paragraph texts in document order (an empty one is skipped over).

    Returns:
        The index of the first paragraph of the trailing boilerplate (`len(texts)` if none).
    """
    # Only the end of a document: the same kind of line near the top (`发布:2012/07/02`,
    # seed 002) is a header with facts a reader may ask about.
    start = len(texts)
    while start > 0:
        text = texts[start - 1]
        if text and not is_site_footer(text) and not is_related_link(text):
            break
        start -= 1
    return start


def clean_paragraphs(raw: Sequence[RawParagraph], file: str) -> list[Paragraph]:
    """Clean raw paragraphs, dropping those that end up empty and the trailing boilerplate.

    Args:
        raw: The paragraphs of one document, in order.
        file: The file name recorded in each paragraph.

    Returns:
        The kept paragraphs; numbers are those of `raw`, so dropped ones leave a gap.
    """
    cleaned = [clean_text(paragraph.text) for paragraph in raw]
    end = trailing_boilerplate([mapped.text for mapped in cleaned])
    return [
        Paragraph(
            file=file,
            number=paragraph.number,
            text=mapped.text,
            origin=mapped.offset_map(),
            line_start=paragraph.line_start,
            line_end=paragraph.line_end,
            page=paragraph.page,
            sheet=paragraph.sheet,
            ocr_confidence=paragraph.ocr_confidence,
            page_breaks=paragraph.page_breaks,
        )
        for paragraph, mapped in zip(raw[:end], cleaned[:end], strict=True)
        if mapped.text
    ]
