"""A Word table of contents: which paragraphs are one, so that they are left out.

A table of contents repeats every heading with its page number ("第一章 总则 ...... 1"): read
as text, its lines would be cited in place of the chapters they point at.
"""

from __future__ import annotations

import re
from typing import Any

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_SDT = f"{_W}sdt"
_FLD_CHAR = f"{_W}fldChar"
_INSTR_TEXT = f"{_W}instrText"
# Word's built-in TOC styles are named `toc 1`..`toc 9` whatever the UI language; their ids
# are `TOC1`.. in English Word and numbers ("10", "21") in Chinese Word.
_TOC_STYLE_NAME = re.compile(r"toc [1-9]", re.IGNORECASE)
_TOC_STYLE_ID = re.compile(r"TOC[1-9]", re.IGNORECASE)


def toc_styles(styles: Any | None) -> frozenset[str]:
    """The ids of the styles named `toc 1`..`toc 9` (English Word's `TOC1`.. are matched too)."""
    named = set()
    if styles is not None:
        for style in styles.iterfind(f"{_W}style"):
            key = style.get(f"{_W}styleId")
            name = style.find(f"{_W}name")
            if key and name is not None and _TOC_STYLE_NAME.fullmatch(name.get(f"{_W}val") or ""):
                named.add(key)
    return frozenset(named)


class TableOfContents:
    """Which paragraphs, of the body or of a table cell, are a table of contents, counting them.

    A table of contents repeats every heading with its page number ("第一章 总则 ...... 1"):
    read as text, its lines would be cited in place of the chapters they point at. Word
    marks it by the entries' `toc N` styles, by a `Table of Contents` content control around
    it, and by the TOC field whose result the entries are (begin … `TOC \\o` … end, spanning
    paragraphs, with PAGEREF and HYPERLINK fields nested in the entries). Any one marks it.
    """

    def __init__(self, styles: frozenset[str], body: Any) -> None:
        self.styles = styles
        self.fields: list[str] = []  # the codes of the fields open here, innermost last
        # A field begun and never ended (a damaged file) would swallow the rest of the body.
        kinds = [node.get(f"{_W}fldCharType") for node in body.iter(_FLD_CHAR)]
        self.follow_fields = kinds.count("begin") == kinds.count("end")
        self.left_out = 0
        # A cell merged down rows comes back once per row: its paragraphs are answered as
        # the first time (their fields followed, their count taken, once).
        self._answers: dict[Any, bool] = {}

    def holds(self, paragraph: Any) -> bool:
        if paragraph in self._answers:
            return self._answers[paragraph]
        in_field = self._in_field(paragraph)
        held = in_field or self._styled(paragraph) or self._in_toc_control(paragraph)
        self.left_out += held
        self._answers[paragraph] = held
        return held

    def _in_field(self, item: Any) -> bool:
        """Whether a TOC field is open at the paragraph's start or opens inside it."""
        if not self.follow_fields:
            return False
        inside = "TOC" in self.fields
        for node in item.iter(_FLD_CHAR, _INSTR_TEXT):
            if node.tag == _INSTR_TEXT:
                # A field's code may be split over runs: its first word names the field.
                words = (node.text or "").split()
                if self.fields and not self.fields[-1] and words:
                    code = words[0].upper()
                    self.fields[-1] = code
                    inside = inside or code == "TOC"
            elif node.get(f"{_W}fldCharType") == "begin":
                self.fields.append("")
            elif node.get(f"{_W}fldCharType") == "end" and self.fields:
                self.fields.pop()
        return inside

    def _styled(self, item: Any) -> bool:
        style = item.find(f"{_W}pPr/{_W}pStyle")
        key = None if style is None else style.get(f"{_W}val")
        return key is not None and (key in self.styles or bool(_TOC_STYLE_ID.fullmatch(key)))

    @staticmethod
    def _in_toc_control(item: Any) -> bool:
        for control in item.iterancestors(_SDT):
            gallery = control.find(f"{_W}sdtPr/{_W}docPartObj/{_W}docPartGallery")
            if gallery is not None and gallery.get(f"{_W}val") == "Table of Contents":
                return True
        return False
