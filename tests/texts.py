"""Test helper: numbered raw paragraphs of in-memory text, as the text-format loaders cut it."""

from __future__ import annotations

from rag.ingest.paragraphs import RawParagraph, number_blocks
from rag.loaders.html import html_blocks
from rag.loaders.markdown import markdown_blocks
from rag.loaders.text import text_blocks
from rag.types import SourceText

BLOCKS = {"text": text_blocks, "markdown": markdown_blocks, "html": html_blocks}


def paragraph_spans(source: SourceText) -> list[RawParagraph]:
    """The numbered non-blank blocks of decoded `source.text` in its format."""
    return number_blocks(BLOCKS[source.format](source.text))
