"""An index directory: config (`config`), read front (`reader`), write and dedupe
coordination (`writer`), both joined by `Index` (`index`), and `rag check` (`check`)."""

from rag.index.config import IndexConfig, IndexMismatchError, NoIndexError
from rag.index.index import Index, open_index

__all__ = ["Index", "IndexConfig", "IndexMismatchError", "NoIndexError", "open_index"]
