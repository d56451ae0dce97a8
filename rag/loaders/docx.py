"""Word .docx (and macro-enabled .docm): paragraphs, headings, lists and tables in body order.

Automatic list and clause numbers are written before their paragraphs (docx_numbering.py).
A table row is one block written with its column headers (table.py), like a spreadsheet
row. Text boxes follow the paragraph that anchors them. Images are OCR'd when OCR is on,
their text placed where the image stands.

Footnotes and endnotes (sources, definitions, explanations) follow the body, each written
after the number Word shows for it, `注1：…` (docx_notes.py). After the body, not after the
paragraph citing them: the body reads on as it did (a clause is not cut off from the next by
its source) and every body offset stays what it was. The mark in the body stays unwritten: a
superscript "1" written inline would run into the text's own numbers ("6300千米1").
Headers and footers (page furniture), comments (about the text, not in it) and the table of
contents are left out.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.loaders.archive import open_package, repackaged
from rag.loaders.base import Extraction, LoadError, LoadOptions, NoTextError
from rag.loaders.docx_notes import Note, referenced_notes
from rag.loaders.docx_numbering import Numbering
from rag.loaders.docx_toc import TableOfContents, toc_styles
from rag.loaders.layout import TextBuilder, add_page_lines
from rag.loaders.ocr import OcrFailed, OcrUnavailable, image_from_bytes, ocr_lines
from rag.loaders.table import table_rows

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_BLIP = "{http://schemas.openxmlformats.org/drawingml/2006/main}blip"
_EMBED = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}embed"
_MACRO_MAIN = b"application/vnd.ms-word.document.macroEnabled.main+xml"
_PLAIN_MAIN = b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
_MAX_IMAGES = 200
_P = f"{_W}p"
_R = f"{_W}r"
_TBL = f"{_W}tbl"
_SDT = f"{_W}sdt"
_SDT_CONTENT = f"{_W}sdtContent"
_CUSTOM_XML = f"{_W}customXml"
_TXBX = f"{_W}txbxContent"
# A run under one of these (between it and its paragraph) is not shown as the paragraph's
# text; `w:p` is a paragraph of a text box inside it.
_HIDDEN_RUN_WRAPPERS = frozenset({f"{_W}del", f"{_W}moveFrom", f"{_W}rt", _TXBX, _P, _FALLBACK})


class _Images:
    """OCR of a document's images, while it is allowed and available."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.done = 0
        self.notes: list[str] = []

    def lines(self, blob: bytes) -> list[Any]:
        if not self.enabled:
            return []
        if self.done >= _MAX_IMAGES:
            self.notes.append(f"image limit: only the first {_MAX_IMAGES} images OCR'd")
            self.enabled = False
            return []
        self.done += 1
        try:
            return ocr_lines(image_from_bytes(blob))
        except (ValueError, OcrFailed):
            return []  # EMF/WMF drawings, a damaged image: nothing to read from it
        except OcrUnavailable as e:
            self.notes.append(str(e))
            self.enabled = False
            return []


class DocxLoader:
    """Word documents, read with python-docx; nothing in them is executed."""

    format: str = "docx"
    extensions: tuple[str, ...] = (".docx", ".docm")

    def extract(self, path: Path, data: bytes, options: LoadOptions) -> Extraction:
        package = open_package(path, data, "Word")
        try:
            import docx
        except ImportError as e:  # pragma: no cover - a core dependency
            raise LoadError(path, "python-docx is not installed") from e
        stream: io.BytesIO = io.BytesIO(data)
        if _MACRO_MAIN in package.read("[Content_Types].xml"):
            # python-docx accepts only the plain content type; the macros stay unread.
            stream = repackaged(package, {_MACRO_MAIN: _PLAIN_MAIN})
        try:
            document = docx.Document(stream)
        except Exception as e:  # python-docx raises KeyError, ValueError, XML errors...
            raise LoadError(path, f"not a readable Word file ({type(e).__name__}: {e})") from None
        images = _Images(options.ocr == "auto")
        builder = TextBuilder()
        try:
            from docx.table import Table

            render = _render(document.part)
            toc = TableOfContents(render.toc_styles, document.element.body)
            for item in _body_items(document.element.body):
                if item.tag == _TBL:
                    # A contents page framed in a table: its cells' paragraphs are judged
                    # one by one, as the body's are.
                    table = Table(item, document._body)
                    for row in table_rows(list(_table_cells(table, render, toc))):
                        builder.add(row)
                    continue
                if toc.holds(item):
                    continue
                builder.add(_numbered_text(item, render))
                for text in _text_boxes(item, render):
                    builder.add(text)
                for blob in _image_blobs(item, document.part):
                    add_page_lines(builder, images.lines(blob), None)
            for note in referenced_notes(document.part, document.element.body):
                for text in _note_texts(note, render, document._body):
                    builder.add(text)
        except Exception as e:
            raise LoadError(path, f"damaged Word file ({type(e).__name__}: {e})") from None
        if not builder.block_count:
            raise NoTextError(path, "no text in the Word document")
        notes = sorted(set(images.notes))
        if toc.left_out:
            notes.append(f"table of contents left out ({toc.left_out} paragraphs)")
        return builder.build("docx", self.format, notes)


@dataclass(frozen=True)
class _Render:
    """What turns a paragraph's XML into the text Word shows: its numbers, hidden styles."""

    numbering: Numbering
    hidden_styles: frozenset[str]  # styles whose runs are hidden text (w:vanish)
    toc_styles: frozenset[str]  # paragraph styles of table of contents entries


def _render(part: Any) -> _Render:
    """From the document's numbering and styles parts, where it has them."""
    from docx.opc.constants import RELATIONSHIP_TYPE as RT

    roots = []
    for relationship in (RT.NUMBERING, RT.STYLES):
        try:
            roots.append(getattr(part.part_related_by(relationship), "element", None))
        except KeyError:
            roots.append(None)
    return _Render(Numbering(*roots), _hidden_styles(roots[1]), toc_styles(roots[1]))


def _hidden_styles(styles: Any | None) -> frozenset[str]:
    """Styles whose run properties hide text (w:vanish), directly or through w:basedOn."""
    if styles is None:
        return frozenset()
    own: dict[str, bool | None] = {}
    based_on: dict[str, str] = {}
    for style in styles.iterfind(f"{_W}style"):
        key = style.get(f"{_W}styleId")
        if key is None:
            continue
        vanish = style.find(f"{_W}rPr/{_W}vanish")
        own[key] = None if vanish is None else _on(vanish)
        parent = style.find(f"{_W}basedOn")
        if parent is not None and parent.get(f"{_W}val"):
            based_on[key] = parent.get(f"{_W}val")
    hidden = set()
    for key in own:
        seen: set[str] = set()
        current: str | None = key
        while current is not None and current not in seen and own.get(current) is None:
            seen.add(current)
            current = based_on.get(current)
        if current is not None and own.get(current):
            hidden.add(key)
    return frozenset(hidden)


def _on(toggle: Any) -> bool:
    """A toggle property (`<w:vanish/>`, `<w:vanish w:val="false"/>`) is on unless told off."""
    return toggle.get(f"{_W}val") not in ("0", "false", "off")


def _table_cells(
    table: Any, render: _Render, toc: TableOfContents | None = None
) -> Iterator[list[str | None]]:
    for row in table.rows:
        cells: list[str | None] = []
        seen: set[int] = set()
        for cell in row.cells:
            # A cell merged across columns comes back once per column it covers: keep its
            # text in the first, so values stay under their own headers.
            key = id(cell._tc)
            cells.append(None if key in seen else _cell_text(cell._tc, table, render, toc))
            seen.add(key)
        yield cells


def _cell_text(cell: Any, table: Any, render: _Render, toc: TableOfContents | None) -> str:
    """A cell's paragraphs, and the rows of a table nested in it (cells joined by `；`): a
    form laid out as tables inside a table keeps the text of the inner ones. Text boxes
    follow the paragraph anchoring them, and a table of contents is left out, as in the body."""
    from docx.table import Table

    lines = []
    for item in _body_items(cell):
        if item.tag == _P:
            if toc is None or not toc.holds(item):
                lines.append(_numbered_text(item, render))
            lines.extend(_text_boxes(item, render))
        else:
            for row in _table_cells(Table(item, table), render, toc):
                lines.append("；".join(text for text in row if text))
    return "\n".join(lines).strip()


def _body_items(container: Any) -> Iterator[Any]:
    """The paragraphs and tables of a body or cell in order, content controls opened.

    python-docx sees only direct children: a paragraph inside a block-level content control
    (a cover page, a template's field) or custom XML would be lost.
    """
    for child in container:
        if child.tag in (_P, _TBL):
            yield child
        elif child.tag == _SDT:
            content = child.find(_SDT_CONTENT)
            if content is not None and not _shows_placeholder(child):
                yield from _body_items(content)
        elif child.tag == _CUSTOM_XML:
            yield from _body_items(child)


def _numbered_text(paragraph: Any, render: _Render) -> str:
    """A paragraph's text after the list or clause number Word writes before it ("第三条 ")."""
    label = render.numbering.label(paragraph)  # counted even when empty: Word counts it too
    text = _paragraph_text(paragraph, render.hidden_styles)
    return label + text if text.strip() else text  # a number alone says nothing


def _paragraph_text(paragraph: Any, hidden_styles: frozenset[str]) -> str:
    """The text Word shows for a paragraph: every run in it, however wrapped.

    python-docx's `Paragraph.text` reads only runs that are direct children (and those of
    hyperlinks); runs inside inline content controls, tracked insertions, simple fields or
    smart tags are shown by Word too. Left out: tracked deletions, ruby annotations (a
    reading over the base text), the VML fallback copy, text boxes (their own blocks), the
    prompt of an unfilled content control and hidden text (`w:vanish`, on the run, its
    character style or the paragraph's style), which Word neither shows nor prints.
    """
    style = paragraph.find(f"{_W}pPr/{_W}pStyle")
    paragraph_hidden = style is not None and style.get(f"{_W}val") in hidden_styles
    parts = []
    for run in paragraph.iter(_R):
        for ancestor in run.iterancestors():
            if ancestor is paragraph:
                if not _hidden(run, hidden_styles, paragraph_hidden):
                    parts.append(run.text)
                break
            if ancestor.tag in _HIDDEN_RUN_WRAPPERS or (
                ancestor.tag == _SDT and _shows_placeholder(ancestor)
            ):
                break
    return "".join(parts)


def _hidden(run: Any, hidden_styles: frozenset[str], paragraph_hidden: bool) -> bool:
    """Whether a run is hidden text: its own w:vanish decides, else its character style's,
    else its paragraph style's."""
    vanish = run.find(f"{_W}rPr/{_W}vanish")
    if vanish is not None:
        return _on(vanish)
    style = run.find(f"{_W}rPr/{_W}rStyle")
    if style is not None and style.get(f"{_W}val") in hidden_styles:
        return True
    return paragraph_hidden


def _shows_placeholder(sdt: Any) -> bool:
    """Whether a content control is unfilled: it shows its prompt ("单击或点击此处输入文字。"),
    which is the template's, not the document's text."""
    return sdt.find(f"{_W}sdtPr/{_W}showingPlcHdr") is not None


def _text_boxes(paragraph: Any, render: _Render) -> Iterator[str]:
    """The paragraphs of the text boxes anchored in a paragraph, read as body paragraphs are
    (automatic numbers written; hidden text, tracked deletions and the like left out).

    Their numbers are counted with the body's, in the order the blocks are written: a list
    in a box is mostly its own (its own numbering instance), counted from its start.
    """
    for box in paragraph.iter(_TXBX):
        # Word writes each text box twice: as DrawingML and as a VML fallback. A box inside
        # another is read with the paragraphs of the outer one (box.iter), in their order.
        if any(ancestor.tag in (_FALLBACK, _TXBX) for ancestor in box.iterancestors()):
            continue
        for p in box.iter(_P):
            yield _numbered_text(p, render)


def _note_texts(note: Note, render: _Render, parent: Any) -> Iterator[str]:
    """A note's paragraphs and table rows, the first written after its number: `注1：…`.

    Word shows the number where the note's `w:footnoteRef` stands, in the note's text;
    "注" says what the paragraph is, read away from the foot of its page. Paragraphs are
    read as the body's: list numbers written, text boxes after their paragraph. Numbering
    instances belong to the document, not to a story, so a list continued in a note counts
    on with the body's, here in the order written (notes after the body).
    """
    from docx.table import Table

    label = f"注{note.mark}：" if note.mark else ""  # a custom mark is typed in the note
    for item in _body_items(note.element):
        if item.tag == _TBL:
            texts = table_rows(list(_table_cells(Table(item, parent), render)))
        else:
            texts = [_numbered_text(item, render), *_text_boxes(item, render)]
        for text in texts:
            if label and text.strip():
                text, label = label + text.lstrip(), ""
            yield text


def _image_blobs(paragraph: Any, part: Any) -> Iterator[bytes]:
    for blip in paragraph.iter(_BLIP):
        if any(ancestor.tag == _FALLBACK for ancestor in blip.iterancestors()):
            continue
        target = part.related_parts.get(blip.get(_EMBED))
        blob = getattr(target, "blob", None)
        if blob:
            yield blob
