"""Images (.png, .jpg, .tif...): OCR'd, paragraphs rebuilt from the line boxes."""

from __future__ import annotations

from pathlib import Path

from rag.loaders.base import Extraction, LoadError, LoadOptions, NoTextError
from rag.loaders.layout import TextBuilder, add_page_lines
from rag.loaders.ocr import OcrFailed, OcrUnavailable, frame_count, image_from_bytes, ocr_lines


class ImageLoader:
    """A photo or scan of text; each frame of a multi-page TIFF is a page."""

    format: str = "image"
    extensions: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff")

    def extract(self, path: Path, data: bytes, options: LoadOptions) -> Extraction:
        if options.ocr == "off":
            raise LoadError(path, "an image is read by OCR, which is off (RAG_OCR=off)")
        frames = frame_count(data)
        notes = []
        if frames > options.max_pages:
            notes.append(
                f"page limit: read the first {options.max_pages} of {frames} pages (RAG_MAX_PAGES)"
            )
        builder = TextBuilder()
        for frame in range(min(frames, options.max_pages)):
            try:
                image = image_from_bytes(data, frame)
                lines = ocr_lines(image)
            except ValueError as e:
                raise LoadError(path, str(e)) from None
            except (OcrUnavailable, OcrFailed) as e:
                raise LoadError(path, str(e)) from None
            builder.new_page()
            add_page_lines(builder, lines, frame + 1 if frames > 1 else None)
        if not builder.block_count:
            raise NoTextError(path, "no text found in the image (OCR read nothing)")
        return builder.build("image", self.format, notes)
