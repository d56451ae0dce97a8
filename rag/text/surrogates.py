"""Lone surrogates: code points a `str` may hold that no UTF-8 encoder accepts."""

from __future__ import annotations


def lone_surrogate(text: str) -> int | None:
    """Where `text` holds a lone surrogate (U+D800-U+DFFF), or None if it holds none.

    Python makes them from half of a JSON "\\ud800" pair and from the bytes of a file name
    that are not UTF-8 (`os.fsdecode`); SQLite, the embedder and every response then fail.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return err.start
    return None
