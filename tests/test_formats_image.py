"""Image loader: OCR of the real sample, and refusals (OCR off, bombs, damaged files)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from rag.loaders.base import LoadError
from rag.loaders.ocr import MAX_IMAGE_PIXELS
from tests.formats_samples import NO_OCR, REALDOCS, extract, needs_realdocs, texts


@needs_realdocs
def test_realdocs_image_is_ocrd_with_confidence() -> None:
    extraction = extract(REALDOCS / "ocr_test.jpg")
    assert extraction.format == "image"
    found = texts(extraction)
    assert "横向文本框" in found
    assert "竖向文本框" in found  # a vertical line of text, read top to bottom
    assert any(t.replace(" ", "") == "Englishtext" for t in found)
    assert all(b.ocr_confidence is not None and b.ocr_confidence > 0.9 for b in extraction.blocks)


@needs_realdocs
def test_image_with_ocr_off_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="OCR, which is off"):
        extract(REALDOCS / "ocr_test.jpg", NO_OCR)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` pixels, with almost no data behind it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("size", [(30_000, 30_000), (8_000, 7_000)])
def test_decompression_bomb_is_refused_before_decoding(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    assert size[0] * size[1] > MAX_IMAGE_PIXELS
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(*size))
    with pytest.raises(LoadError, match="too large"):
        extract(path)


@pytest.mark.parametrize("data", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_damaged_images_are_refused(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(data)
    with pytest.raises(LoadError) as error:
        extract(path)
    assert error.value.reason


@needs_realdocs
def test_multi_page_tiff_frames_are_pages_up_to_the_limit(tmp_path: Path) -> None:
    from PIL import Image

    from rag.loaders.base import LoadOptions

    text = Image.open(REALDOCS / "ocr_test.jpg").convert("RGB")
    blank = Image.new("RGB", text.size, "white")
    path = tmp_path / "scan.tif"
    text.save(path, save_all=True, append_images=[blank, text])
    extraction = extract(path, LoadOptions(max_bytes=1 << 30, max_pages=2))
    assert {b.page for b in extraction.blocks} == {1}  # frame 2 is blank, frame 3 not read
    assert "横向文本框" in texts(extraction)
    assert any("read the first 2 of 3 pages" in note for note in extraction.notes)


@needs_realdocs
def test_a_photo_turned_by_its_exif_orientation_is_read_upright(tmp_path: Path) -> None:
    # A phone photo held upright stores its pixels sideways and an EXIF orientation that
    # every viewer applies; OCR ran on the stored pixels (the angle classifier is off), so
    # the lines stood on end and were lost or misread.
    from PIL import Image

    upright = Image.open(REALDOCS / "ocr_test.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to show"
    path = tmp_path / "photo.jpg"
    upright.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif, quality=95)
    found = texts(extract(path))
    assert "横向文本框" in found
    assert any(t.replace(" ", "") == "Englishtext" for t in found)
