"""Plain text files: every line is a block (blank ones are dropped after)."""

from __future__ import annotations

from pathlib import Path

from rag.loaders.base import Block, Extraction, LoadError, LoadOptions, NoTextError
from rag.loaders.decode import decode
from rag.loaders.lines import LineIndex
from rag.text.offsets import MappedText


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
    lines = LineIndex(text)
    blocks = []
    for number, start in enumerate(lines.starts):
        end = lines.line_end(number)
        blocks.append(Block(MappedText.from_source(text[start:end], start), number + 1, number + 1))
    return blocks


class TextLoader:
    format: str = "text"
    extensions: tuple[str, ...] = (".txt",)

    def extract(self, path: Path, data: bytes, options: LoadOptions) -> Extraction:
        text, encoding = decode_text(path, data)
        return Extraction(text, encoding, self.format, tuple(text_blocks(text)))
