"""Which loader reads which file: one line per format, looked up by extension."""

from __future__ import annotations

from pathlib import Path

from rag.formats.base import Loader, LoadError
from rag.formats.docx import DocxLoader
from rag.formats.image import ImageLoader
from rag.formats.pdf import PdfLoader
from rag.formats.pptx import PptxLoader
from rag.formats.xlsx import CsvLoader, XlsxLoader

LOADERS: tuple[Loader, ...] = (
    PdfLoader(),
    DocxLoader(),
    XlsxLoader(),
    CsvLoader(),
    PptxLoader(),
    ImageLoader(),
)

_BY_EXTENSION: dict[str, Loader] = {
    extension: loader for loader in LOADERS for extension in loader.extensions
}
EXTENSIONS: tuple[str, ...] = tuple(sorted(_BY_EXTENSION))


def loader_for(path: Path) -> Loader:
    """The loader for `path`'s extension.

    Raises:
        LoadError: No loader reads this extension.
    """
    extension = path.suffix.lower()
    loader = _BY_EXTENSION.get(extension)
    if loader is None:
        raise LoadError(path, f"unsupported extension {extension or '(none)'}")
    return loader
