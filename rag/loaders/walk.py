"""Walk files and folders for the documents a loader can read."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from rag.loaders.registry import EXTENSIONS

Ignored = Callable[[Path, str], None]

# Word, Excel and PowerPoint write `~$name.docx` (a few bytes naming who has it open) beside
# a document while it is open, and leave it behind after a crash: read as a document, every
# folder someone was working in reported a damaged Word file.
_OFFICE_OWNER_FILE = "~$"
_OWNER_FILE_NOTE = (
    "Office lock file (~$): written by Word, Excel or PowerPoint while a document is open, "
    "not a document"
)


def iter_files(
    paths: Iterable[Path], ignored: Ignored | None = None, unreadable: Ignored | None = None
) -> Iterator[Path]:
    """Yield the document files named by `paths`, walking folders.

    Folders are walked recursively in sorted order, skipping hidden files and folders, Office
    lock files (`~$name.docx`) and files with unsupported extensions, following symlinks but
    never entering the same real folder twice (so a symlink loop ends). A path that is not a
    folder is yielded as is, whatever its name, so that loading it reports why it cannot be
    read.

    Args:
        paths: Files and folders.
        ignored: Told of each visible entry passed over, with why: an unsupported
            extension, an Office lock file, a folder already walked (a symlink loop) or an
            unreadable folder.
        unreadable: Told of each folder that could not be read, with why (default:
            `ignored`): what it holds is unknown, not gone.

    Yields:
        File paths, each folder's files sorted by name, depth first.
    """
    seen: set[tuple[int, int]] = set()
    tell = ignored or (lambda path, reason: None)
    for path in paths:
        if path.is_dir():
            yield from _walk(path, seen, tell, unreadable or tell)
        else:
            yield path


def _walk(
    root: Path, seen: set[tuple[int, int]], ignored: Ignored, unreadable: Ignored
) -> Iterator[Path]:
    # A stack of open folder listings instead of recursion: deep trees cannot overflow it.
    stack = [iter(_listing(root, seen, ignored, unreadable))]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
        elif entry.is_dir():
            stack.append(iter(_listing(entry, seen, ignored, unreadable)))
        elif entry.name.startswith(_OFFICE_OWNER_FILE):
            ignored(entry, _OWNER_FILE_NOTE)
        elif entry.suffix.lower() in EXTENSIONS:
            yield entry
        else:
            ignored(entry, f"unsupported type {entry.suffix.lower() or '(no extension)'}")


def _listing(
    folder: Path, seen: set[tuple[int, int]], ignored: Ignored, unreadable: Ignored
) -> list[Path]:
    """Visible entries of `folder` sorted by name, or none if this real folder was seen."""
    try:
        info = folder.stat()
        # (device, inode) names the real folder whatever symlink led here.
        key = (info.st_dev, info.st_ino)
        if key in seen:
            ignored(folder, "folder already walked (a symlink loop or a second link to it)")
            return []
        seen.add(key)
        with os.scandir(folder) as it:
            names = sorted(e.name for e in it if not e.name.startswith("."))
    except OSError as e:
        unreadable(folder, f"cannot read folder ({e.strerror or e})")
        return []
    return [folder / name for name in names]
