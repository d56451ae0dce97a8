"""Sample documents for the format loader tests: the shared real files and small generated ones."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rag.loaders.base import Extraction, LoadOptions
from rag.loaders.registry import loader_for

ROOT = Path(__file__).resolve().parent.parent
REALDOCS = ROOT.parent / "shared" / "realdocs"
CHROMIUM = Path("/usr/bin/chromium")

needs_realdocs = pytest.mark.skipif(
    not REALDOCS.exists(), reason="../shared/realdocs not found (the shared sample files)"
)
needs_chromium = pytest.mark.skipif(
    shutil.which(str(CHROMIUM)) is None, reason=f"{CHROMIUM} not found (make chromium)"
)

# Paragraphs long enough to wrap over several lines of a printed page.
PARAGRAPHS = [
    "长江是亚洲第一长河和世界第三长河，全长六千三百多千米，流域面积一百八十万平方千米，"
    "干流流经青海、西藏、四川、云南、重庆、湖北、湖南、江西、安徽、江苏、上海十一个省级行政区，"
    "于崇明岛以东注入东海。",
    "北京大学创办于一八九八年，初名京师大学堂，是中国近现代第一所国立综合性大学，"
    "创办之初也是国家最高教育行政机关。辛亥革命后，于一九一二年改为现名。",
    "黄河是中国第二长河，发源于青藏高原巴颜喀拉山脉北麓的约古宗列盆地，呈几字形，"
    "自西向东分别流经九个省级行政区，最后流入渤海，全长约五千四百六十四千米。",
    "故宫又称紫禁城，是明清两代的皇家宫殿，位于北京中轴线的中心，占地面积约七十二万平方米，"
    "建筑面积约十五万平方米，是世界上现存规模最大、保存最为完整的木质结构古建筑之一。",
]

OPTIONS = LoadOptions(max_bytes=1 << 30)
NO_OCR = LoadOptions(max_bytes=1 << 30, ocr="off")


def extract(path: Path, options: LoadOptions = OPTIONS) -> Extraction:
    """Run the loader for `path` and check the extraction's invariants on the way."""
    extraction = loader_for(path).extract(path, path.read_bytes(), options)
    check_extraction(extraction)
    return extraction


def check_extraction(extraction: Extraction, sample: int = 5_000) -> None:
    """Every block maps into the text, copied characters exactly, lines where they stand.

    Checks the first `sample` blocks and the last one (a million-row file has 100,000).
    """
    text = extraction.text
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    line_starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    blocks = extraction.blocks
    for block in (*blocks[:sample], *blocks[-1:]):
        mapped = block.text
        assert len(mapped.starts) == len(mapped.text) == len(mapped.ends)
        if not mapped.text:
            continue
        assert int(mapped.starts.min()) >= 0 and int(mapped.ends.max()) <= len(text)
        assert np.all(mapped.starts <= mapped.ends)
        chars = np.frombuffer(mapped.text.encode("utf-32-le"), dtype=np.uint32)
        copied = (mapped.ends - mapped.starts) == 1
        sources = codes[mapped.starts[copied]]
        # A one-character replacement looks like a copy: a line break written as a space.
        same = (sources == chars[copied]) | (sources == ord("\n")) | (sources == 0xAD)
        assert bool(same.all())
        first, last = mapped.source_span()
        # Only a paragraph continued on the next page crosses a page break, once per break.
        assert text[first:last].count("\f") == len(block.page_breaks)
        assert all(first < offset < last for offset, _ in block.page_breaks)
        # The block's lines are those it was written on (an edit may drop a first or last
        # line break, never reach outside them).
        assert block.line_start <= _line_of(line_starts, first)
        assert _line_of(line_starts, last - 1) <= block.line_end
        if last - first == len(mapped.text) and np.all(np.diff(mapped.starts) == 1):
            # No deletion happened: the block is the text at its span, but for line breaks
            # written as spaces (a wrapped English line).
            for ch, source_ch in zip(mapped.text, text[first:last], strict=True):
                assert ch == source_ch or (source_ch == "\n" and ch == " ")


def _line_of(line_starts: list[int], offset: int) -> int:
    from bisect import bisect_right

    return bisect_right(line_starts, offset)


def texts(extraction: Extraction) -> list[str]:
    return [block.text.text for block in extraction.blocks]


def chromium_pdf(tmp_path: Path, body_html: str, name: str = "doc", css: str = "") -> Path:
    """A PDF printed by headless Chromium from an HTML body (CJK font, A4 unless `css` says)."""
    from bench.formats import PAGE_CSS
    from bench.formats import chromium_pdf as print_pdf

    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<style>{PAGE_CSS}{css}</style></head><body>{body_html}</body></html>"
    )
    return print_pdf(page, tmp_path / f"{name}.pdf")


def paragraphs_html(paragraphs: list[str]) -> str:
    return "".join(f"<p>{p}</p>" for p in paragraphs)


def zip_bytes(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        for name, body in members.items():
            package.writestr(name, body)
    return out.getvalue()


def with_zip_bomb(data: bytes, megabytes: int = 64) -> bytes:
    """An Office file with one more part that inflates from a few KB to `megabytes` MB."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb,
    ):
        for member in source.infolist():
            bomb.writestr(member, source.read(member))
        with bomb.open("customXml/item9.xml", "w") as part:
            chunk = b"\0" * (1 << 20)
            for _ in range(megabytes):
                part.write(chunk)
    return out.getvalue()


def encrypted_office_file() -> bytes:
    """What an encrypted .docx/.xlsx/.pptx looks like: an OLE compound file holding an
    `EncryptedPackage` stream (the header and the stream name are enough for the check)."""
    return (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
        + b"\0" * 504
        + "EncryptedPackage".encode("utf-16-le")
        + b"\0" * 1024
    )
