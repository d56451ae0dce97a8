"""Telling a readable PDF text layer from mojibake."""

from __future__ import annotations

import random

from rag.loaders.garbage import is_garbage
from tests.formats_samples import PARAGRAPHS


def test_real_chinese_and_english_are_not_garbage() -> None:
    assert not any(is_garbage(p) for p in PARAGRAPHS)
    assert not is_garbage("The past decade has witnessed an unparalleled evolution in AI.")
    assert not is_garbage("")
    assert not is_garbage("Café crème brûlée à la française, señor")


def test_unmapped_glyphs_private_use_and_controls_are_garbage() -> None:
    assert is_garbage("\ufffd" * 20 + "长江")
    assert is_garbage("".join(chr(0xE000 + i) for i in range(50)))
    assert is_garbage("\x03\x05\x07\x11" * 10)


def test_random_hanzi_from_glyph_ids_are_garbage() -> None:
    rng = random.Random(7)
    # Glyph ids read as code points land anywhere in the CJK block, rarely on common hanzi.
    assert is_garbage("".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(200)))


def test_gbk_read_as_latin1_is_garbage() -> None:
    mojibake = PARAGRAPHS[0].encode("gbk").decode("latin-1")
    assert is_garbage(mojibake)
