"""Word footnotes and endnotes: which notes the body refers to, and the number Word shows.

A note's text lives in word/footnotes.xml or word/endnotes.xml and stores no number: Word
numbers the notes in the order the body refers to them (`w:footnoteReference`), in the
format `w:footnotePr`/`w:endnotePr` names (the referring section's, else the document
settings'; footnotes `1, 2, 3` and endnotes `i, ii, iii` unless told). A reference with
`w:customMarkFollows` takes no number: its mark ("*") is typed, in the body and the note.
A section ends at the paragraph whose `w:pPr` holds its `w:sectPr` (the body's own
`w:sectPr` is the last section's); numbering restarted in each section (`w:numRestart`
`eachSect`) starts again there, at the section's `w:numStart`. Restarted on each page
(`eachPage`), it is counted on: where the pages fall is not known without a layout.
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
_SECT_PR = f"{_W}sectPr"
_PPR = f"{_W}pPr"
_P = f"{_W}p"
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
        numbers = _Numbers(kind, settings, default_fmt)
        seen: set[str] = set()
        for reference, section in _references(body, reference_tag):
            key = reference.get(f"{_W}id")
            custom = reference.get(f"{_W}customMarkFollows") in ("1", "true", "on")
            mark = "" if custom else numbers.next(section)
            if key in notes and key not in seen:
                seen.add(key)
                yield Note(mark, notes[key])


def _references(body: Any, reference_tag: str) -> Iterator[tuple[Any, Any | None]]:
    """The shown references of one kind in body order, each with its section's `w:sectPr`."""
    sections = [
        sect_pr
        for sect_pr in body.iter(_SECT_PR)
        if sect_pr.getparent() is body or _closes_section(sect_pr)
    ]
    index = 0
    closing: Any | None = None  # the paragraph ending the current section, once reached
    for element in body.iter(reference_tag, _SECT_PR):
        if element.tag == _SECT_PR:
            if _closes_section(element):
                if closing is not None:  # two section ends with no reference between
                    index += 1
                closing = element.getparent().getparent()
            continue
        if any(ancestor.tag in _UNSHOWN for ancestor in element.iterancestors()):
            continue
        if closing is not None and not any(a is closing for a in element.iterancestors()):
            index, closing = index + 1, None
        yield element, sections[index] if index < len(sections) else None


def _closes_section(sect_pr: Any) -> bool:
    """Whether a `w:sectPr` ends a section: one in a paragraph's own properties (not in a
    tracked change's record of the old properties)."""
    props = sect_pr.getparent()
    return props is not None and props.tag == _PPR and props.getparent().tag == _P


class _Numbers:
    """The marks of one kind of note, counted through the sections they are referred in."""

    def __init__(self, kind: str, settings: Any | None, default_fmt: str) -> None:
        self._kind = kind
        self._settings = settings
        self._default_fmt = default_fmt
        self._section: Any | None = None
        self._value: int | None = None

    def next(self, section: Any | None) -> str:
        fmt, start, restart = self._properties(section)
        if self._value is None or (section is not self._section and restart == "eachSect"):
            self._value = start
        else:
            self._value += 1
        self._section = section
        return format_number(self._value, fmt)

    def _properties(self, section: Any | None) -> tuple[str, int, str | None]:
        """A section's number format, first number and restart: its own, else the settings'."""
        fmt: str | None = None
        start: int | None = None
        restart: str | None = None
        for holder in (section, self._settings):
            props = None if holder is None else holder.find(f"{_W}{self._kind}Pr")
            if props is None:
                continue
            fmt = fmt or _val(props.find(f"{_W}numFmt"))
            start = start if start is not None else _int(_val(props.find(f"{_W}numStart")))
            restart = restart or _val(props.find(f"{_W}numRestart"))
        return fmt or self._default_fmt, max(start or 1, 1), restart


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


def _val(element: Any | None) -> str | None:
    return None if element is None else element.get(f"{_W}val")


def _int(text: str | None) -> int | None:
    try:
        return None if text is None else int(text)
    except ValueError:
        return None
