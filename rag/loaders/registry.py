"""Which loader reads which file: one line per format, found by extension.

The folder walk (`rag.loaders.walk`), the service's upload allow-list and the CLI's
messages all take the extension list from here.
"""

from __future__ import annotations

from pathlib import Path

from rag.loaders.base import Loader, LoadError
from rag.loaders.docx import DocxLoader
from rag.loaders.epub import EpubLoader
from rag.loaders.html import HtmlLoader
from rag.loaders.image import ImageLoader
from rag.loaders.markdown import MarkdownLoader
from rag.loaders.pdf import PdfLoader
from rag.loaders.pptx import PptxLoader
from rag.loaders.text import TextLoader
from rag.loaders.xls import XlsLoader
from rag.loaders.xlsx import CsvLoader, XlsxLoader

LOADERS: tuple[Loader, ...] = (
    TextLoader(),
    MarkdownLoader(),
    HtmlLoader(),
    PdfLoader(),
    DocxLoader(),
    XlsxLoader(),
    CsvLoader(),
    PptxLoader(),
    ImageLoader(),
    EpubLoader(),
    XlsLoader(),
)

# Extension (lower case, with the dot) -> its loader.
BY_EXTENSION: dict[str, Loader] = {ext: loader for loader in LOADERS for ext in loader.extensions}
EXTENSIONS: tuple[str, ...] = tuple(BY_EXTENSION)
# Extension -> format name (what `rag docs list` and the API call it).
FORMATS: dict[str, str] = {ext: loader.format for ext, loader in BY_EXTENSION.items()}


def loader_for(path: Path) -> Loader:
    """The loader of `path`'s extension.

    Raises:
        LoadError: No loader reads this extension.
    """
    extension = path.suffix.lower()
    loader = BY_EXTENSION.get(extension)
    if loader is None:
        raise LoadError(path, f"unsupported extension {extension or '(none)'}")
    return loader
