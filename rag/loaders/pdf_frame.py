"""Where a PDF page's objects stand as the page is shown: rotation applied, top-down.

PDFium gives character boxes and object bounds in the page's user space, before the page's
`/Rotate`. A landscape page stored as a portrait one turned by 90 degrees (or a scan the
reader rotated to read it) draws its text along the user-space y axis; read in user space,
each of its lines became a column of one-letter lines. Every position the PDF reader uses
(lines, rules of tables, images to OCR, the margins of running headers) goes through this
frame, so that "a line" and "the top of the page" are what a person sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# (left, top, right, bottom), top-down, in points from the top-left corner of the shown page.
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class PageFrame:
    """The shown page: its rotation (clockwise degrees) and visible box in user space."""

    rotation: int  # 0, 90, 180 or 270
    left: float
    bottom: float
    right: float
    top: float

    @classmethod
    def of(cls, page: Any) -> PageFrame:
        """The frame of a pypdfium2 page: its rotation and its crop box within the media box."""
        left, bottom, right, top = page.get_bbox()
        return cls(page.get_rotation() % 360, left, bottom, right, top)

    @property
    def width(self) -> float:
        across = self.right - self.left
        return self.top - self.bottom if self.rotation in (90, 270) else across

    @property
    def height(self) -> float:
        up = self.top - self.bottom
        return self.right - self.left if self.rotation in (90, 270) else up

    def box(self, x0: float, y0: float, x1: float, y1: float) -> Box:
        """A user-space box (left, bottom, right, top; y up) as shown: (left, top, right,
        bottom), y down. The same mapping as PDFium's `FPDF_PageToDevice` at rotation 0."""
        if self.rotation == 90:
            return (y0 - self.bottom, x0 - self.left, y1 - self.bottom, x1 - self.left)
        if self.rotation == 180:
            return (self.right - x1, y0 - self.bottom, self.right - x0, y1 - self.bottom)
        if self.rotation == 270:
            return (self.top - y1, self.right - x1, self.top - y0, self.right - x0)
        return (x0 - self.left, self.top - y1, x1 - self.left, self.top - y0)
