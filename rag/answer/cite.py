"""A citation of a span of a retrieved passage, with exact offsets in its first source."""

from __future__ import annotations

from rag.types import Citation, ScoredPassage


def cite(n: int, passage: ScoredPassage, start: int, end: int) -> Citation:
    """A citation of `passage.text[start:end]`, quoted from the passage's first source.

    The quote is cut from the source's own text (the file's script, cleaned), and its
    offsets come from the source's offset map, so `source[char_start:char_end]` cleans to
    exactly the quote; its lines are those of those offsets (a passage of a wrapped
    paragraph spans more).
    """
    source = passage.passage.sources[0]
    raw = source.text[start:end]
    lead = len(raw) - len(raw.lstrip())
    a, b = start + lead, start + len(raw.rstrip())
    char_start, char_end = source.quote_span(a, b)
    line_start, line_end = source.lines_of(char_start, char_end)
    return Citation(
        n=n,
        file=source.file,
        paragraph=source.paragraph,
        line_start=line_start,
        line_end=line_end,
        char_start=char_start,
        char_end=char_end,
        page=source.page,
        sheet=source.sheet,
        ocr_confidence=source.ocr_confidence,
        quote=source.text[a:b],
        passage_id=passage.passage.id,
        also_in=tuple((s.file, s.paragraph) for s in passage.passage.sources[1:]),
    )
