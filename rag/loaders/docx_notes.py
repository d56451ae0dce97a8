"""Word footnotes and endnotes: which notes the body refers to, and the number Word shows.

A note's text lives in word/footnotes.xml or word/endnotes.xml and stores no number: Word
numbers the notes in the order the body refers to them (`w:footnoteReference`), in the
format `w:footnotePr`/`w:endnotePr` names (the last section's, else the document
settings'; footnotes `1, 2, 3` and endnotes `i, ii, iii` unless told). A reference with
`w:customMarkFollows` takes no number: its mark ("*") is typed, in the body and the note.
Numbering restarted on each page or section (`w:numRestart`) is counted on through the
document: where the pages fall is not known here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rag.loaders.docx_numbering import format_number

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
# A reference under these is not shown: tracked deletions, the VML copy of a text box.
_UNSHOWN = frozenset({f"{_W}del", f"{_W}moveFrom", _FALLBACK})
_KINDS = (
    # (kind, reference tag, note tag, Word's default number format)
    ("footnote", f"{_W}footnoteReference", f"{_W}footnote", "decimal"),
    ("endnote", f"{_W}endnoteReference", f"{_W}endnote", "lowerRoman"),
)


@dataclass(frozen=True)
class Note:
    """One footnote or endnote the body refers to."""

    mark: str  # the number as Word shows it ("1", "①", "ii"); "" for a custom mark
    element: Any  # the w:footnote / w:endnote: its paragraphs and tables


def referenced_notes(part: Any, body: Any) -> Iterator[Note]:
    """The footnotes, then the endnotes, the body refers to, in the order it refers to them.

    Separators (`w:type="separator"` and the like) are never referred to; a note whose
    reference was deleted is not shown by Word either.

    Args:
        part: The python-docx document part (its related footnotes, endnotes, settings).
        body: The document's `w:body`.
    """
    from docx.opc.constants import RELATIONSHIP_TYPE as RT

    settings = _related_root(part, RT.SETTINGS)
    for (kind, reference_tag, note_tag, default_fmt), relationship in zip(
        _KINDS, (RT.FOOTNOTES, RT.ENDNOTES), strict=True
    ):
        root = _related_root(part, relationship)
        if root is None:
            continue
        notes = {
            note.get(f"{_W}id"): note
            for note in root.iterfind(note_tag)
            if note.get(f"{_W}type") in (None, "normal")
        }
        fmt, start = _number_format(kind, body, settings, default_fmt)
        count = 0
        seen: set[str] = set()
        for reference in body.iter(reference_tag):
            if any(ancestor.tag in _UNSHOWN for ancestor in reference.iterancestors()):
                continue
            key = reference.get(f"{_W}id")
            custom = reference.get(f"{_W}customMarkFollows") in ("1", "true", "on")
            mark = "" if custom else format_number(start + count, fmt)
            count += not custom
            if key in notes and key not in seen:
                seen.add(key)
                yield Note(mark, notes[key])


def _related_root(part: Any, relationship: str) -> Any | None:
    """The XML root of the part related to the document by `relationship`, if it has one."""
    from docx.oxml.parser import parse_xml

    try:
        related = part.part_related_by(relationship)
    except KeyError:
        return None
    element = getattr(related, "element", None)
    if element is not None:
        return element
    # python-docx has no class for the notes parts: they come as bytes.
    return parse_xml(related.blob)


def _number_format(kind: str, body: Any, settings: Any | None, default: str) -> tuple[str, int]:
    """The notes' number format and first number: the last section's, else the settings'."""
    fmt: str | None = None
    start: int | None = None
    for holder in (body.find(f"{_W}sectPr"), settings):
        props = None if holder is None else holder.find(f"{_W}{kind}Pr")
        if props is None:
            continue
        fmt = fmt or _val(props.find(f"{_W}numFmt"))
        start = start if start is not None else _int(_val(props.find(f"{_W}numStart")))
    return fmt or default, max(start or 1, 1)


def _val(element: Any | None) -> str | None:
    return None if element is None else element.get(f"{_W}val")


def _int(text: str | None) -> int | None:
    try:
        return None if text is None else int(text)
    except ValueError:
        return None
