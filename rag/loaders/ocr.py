"""OCR of page images with RapidOCR (PP-OCR Chinese models on onnxruntime, bundled, offline).

The engine is built once per process, on first use, with one onnxruntime thread per session
(`OCR_THREADS`): the machine's cores belong to the embedder too, and two engines each taking
every core only slow both down. OpenCV's own thread pool is limited the same way.
"""

from __future__ import annotations

import functools
import io
import warnings
from typing import Any

from rag.loaders.geometry import Line, merge_rows

OCR_THREADS = 1
# Pillow refuses images over twice this many pixels (DecompressionBombError) and warns over
# it; we refuse anything over it, before decoding a single pixel. 50 MP is an A4 page at 600
# dpi and twice a 20-megapixel photo; the 30,000 x 30,000 bomb of issue 14 is 900 MP.
MAX_IMAGE_PIXELS = 50_000_000
# Pages and images are OCR'd at most this large on their long side: PP-OCR's detector scales
# to 2000 pixels anyway, so more only costs memory.
MAX_OCR_SIDE = 2400


class OcrUnavailable(RuntimeError):
    """rapidocr-onnxruntime is missing (it needs Python < 3.13)."""


class OcrFailed(RuntimeError):
    """The OCR engine failed on one image (a message for the notes, not a crash)."""


def configure_pillow() -> None:
    """Set Pillow's decompression-bomb limit explicitly rather than trusting its default."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


@functools.lru_cache(maxsize=1)
def _engine() -> Any:
    try:
        import cv2
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as e:
        raise OcrUnavailable(
            "OCR needs rapidocr-onnxruntime (pip install rapidocr-onnxruntime)"
        ) from e
    cv2.setNumThreads(OCR_THREADS)
    return RapidOCR(intra_op_num_threads=OCR_THREADS, inter_op_num_threads=OCR_THREADS)


def image_from_bytes(data: bytes, frame: int = 0) -> Any:
    """Decode an image file's bytes to an RGB Pillow image, refusing decompression bombs.

    Args:
        data: The image file.
        frame: Which frame of a multi-page TIFF.

    Raises:
        ValueError: Not an image Pillow reads, or larger than `MAX_IMAGE_PIXELS` (the reason).
    """
    configure_pillow()
    from PIL import Image, UnidentifiedImageError

    size: tuple[int, int] | None = None
    try:
        with warnings.catch_warnings():
            # Between the limit and twice it Pillow only warns: we refuse those ourselves.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            # `open` and `seek` read headers only: refuse a bomb before any pixel is decoded
            # (each frame of a TIFF has its own size).
            image.seek(frame)
        if image.width * image.height > MAX_IMAGE_PIXELS:
            size = image.size
        else:
            rgb = upright(image).convert("RGB")
    except Image.DecompressionBombError as e:
        raise ValueError(f"image too large: decompression bomb ({e})") from None
    except UnidentifiedImageError:
        raise ValueError("not an image format Pillow reads") from None
    except EOFError:
        raise ValueError(f"image has no frame {frame + 1}") from None
    except Exception as e:  # Pillow's decoders raise OSError, SyntaxError, ValueError...
        raise ValueError(f"damaged image ({type(e).__name__}: {e})") from None
    if size is not None:
        raise ValueError(
            f"image too large ({size[0]} x {size[1]} pixels, limit "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels): decompression bomb?"
        )
    return shrink(rgb)


def upright(image: Any) -> Any:
    """The image turned as its EXIF orientation says it is shown.

    A phone photo held upright stores its pixels sideways with an orientation tag that every
    viewer applies; OCR (without the angle classifier) reads only upright lines.
    """
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # a damaged EXIF block: the pixels as stored are still an image
        return image


def shrink(image: Any) -> Any:
    """Scale a Pillow image down so that its long side is at most `MAX_OCR_SIDE`."""
    long_side = max(image.size)
    if long_side <= MAX_OCR_SIDE:
        return image
    scale = MAX_OCR_SIDE / long_side
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))


def ocr_lines(image: Any, scale: float = 1.0, dx: float = 0.0, dy: float = 0.0) -> list[Line]:
    """OCR a Pillow image into lines, rows merged, in the page's coordinates.

    Args:
        image: An RGB Pillow image.
        scale: Page units per image pixel (e.g. 72 / dpi for a rendered PDF page).
        dx: Page x of the image's left edge.
        dy: Page y (top-down) of the image's top edge.

    Raises:
        OcrUnavailable: The OCR engine is not installed.
        OcrFailed: The engine failed on this image.
    """
    import numpy as np

    # RapidOCR reads OpenCV's BGR channel order.
    pixels = np.asarray(image.convert("RGB"))[:, :, ::-1]
    # No angle classifier: it took a line full of "、" for upside down, turned it over and
    # the recogniser then read nothing (the whole line was lost); pages come upright, and
    # PDFium renders a rotated page upright. A box threshold under RapidOCR's 0.5 keeps
    # such sparse lines too; the recogniser's score (text_score) still drops empty boxes.
    engine = _engine()
    try:
        result, _ = engine(
            np.ascontiguousarray(pixels),
            use_cls=False,
            box_thresh=0.3,
            unclip_ratio=1.6,
            text_score=0.5,
        )
    except Exception as e:  # onnxruntime and OpenCV raise their own error types
        raise OcrFailed(f"OCR failed ({type(e).__name__}: {e})") from e
    lines = []
    for box, text, confidence in result or ():
        text = str(text).strip()
        if not text:
            continue
        xs = [float(point[0]) for point in box]
        ys = [float(point[1]) for point in box]
        width, height = max(xs) - min(xs), max(ys) - min(ys)
        # A vertical line of text (a box far taller than wide) reads top to bottom; its
        # characters are as wide as the box.
        size = width if height > 2 * width and len(text) > 1 else height
        lines.append(
            Line(
                text,
                dx + min(xs) * scale,
                dy + min(ys) * scale,
                dx + max(xs) * scale,
                dy + max(ys) * scale,
                size * scale * 0.8,  # a box is taller than the characters it holds
                float(confidence),
            )
        )
    return merge_rows(lines)


def frame_count(data: bytes) -> int:
    """How many frames (pages) an image file holds: several for a multi-page TIFF."""
    configure_pillow()
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        with image:
            return int(getattr(image, "n_frames", 1))
    except Exception:
        return 1  # image_from_bytes reports what is wrong with it
