"""Number a loader's blocks into raw paragraphs: format-independent, before cleaning."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from rag.loaders.base import Block
from rag.text.offsets import MappedText


@dataclass(frozen=True)
class RawParagraph:
    """One block of the source before cleaning; `line_start`/`line_end` are 1-based, inclusive."""

    number: int
    text: MappedText
    line_start: int
    line_end: int
    page: int | None = None
    sheet: str | None = None
    ocr_confidence: float | None = None
    page_breaks: tuple[tuple[int, int], ...] = ()  # see `Block.page_breaks`


# `str.isspace` already covers nbsp and the ideographic space; zero-width characters are not
# white space to Python but are just as invisible on a page.
_BLANK = re.compile(r"[\s\u200b\u200c\u200d\u2060\ufeff]*")


def number_blocks(blocks: Iterable[Block]) -> list[RawParagraph]:
    """The non-blank blocks, numbered 1-based in reading order.

    The number is what citations call the paragraph, and counts blocks that cleaning drops
    later, so that "paragraph 7" means the same thing to a reader of the file.
    """
    paragraphs: list[RawParagraph] = []
    for block in blocks:
        if not _BLANK.fullmatch(block.text.text):
            paragraphs.append(
                RawParagraph(
                    len(paragraphs) + 1,
                    block.text,
                    block.line_start,
                    block.line_end,
                    block.page,
                    block.sheet,
                    block.ocr_confidence,
                    block.page_breaks,
                )
            )
    return paragraphs
