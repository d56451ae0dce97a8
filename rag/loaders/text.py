"""Plain text files: every line is a block (blank ones are dropped after), or every
paragraph of a hard-wrapped file."""

from __future__ import annotations

from pathlib import Path

from rag.loaders.base import Block, Extraction, LoadError, LoadOptions, NoTextError
from rag.loaders.decode import decode
from rag.loaders.layout import join_wrapped_lines
from rag.loaders.lines import LineIndex
from rag.loaders.wrapped import runs_on


def decode_text(path: Path, data: bytes) -> tuple[str, str]:
    """`decode(data)` for the text formats, with their shared refusals as LoadError."""
    try:
        text, encoding = decode(data)
    except ValueError as e:
        raise LoadError(path, str(e)) from None
    if not text.strip():
        raise NoTextError(path, "empty file (only white space)")
    return text, encoding


def text_blocks(text: str) -> list[Block]:
    """A block a line, or a block a paragraph of a hard-wrapped file (`rag.loaders.wrapped`),
    its lines joined as a PDF's wrapped lines are."""
    lines = LineIndex(text)
    count = len(lines.starts)
    run_on = runs_on([text[lines.offset(n) : lines.line_end(n)] for n in range(count)])
    blocks = []
    first = 0
    for last in range(count):
        if run_on[last]:
            continue
        mapped = lines.span(first, last)
        if last > first:
            mapped = join_wrapped_lines(mapped)
        blocks.append(Block(mapped, first + 1, last + 1))
        first = last + 1
    return blocks


class TextLoader:
    format: str = "text"
    extensions: tuple[str, ...] = (".txt",)

    def extract(self, path: Path, data: bytes, options: LoadOptions) -> Extraction:
        text, encoding = decode_text(path, data)
        return Extraction(text, encoding, self.format, tuple(text_blocks(text)))
