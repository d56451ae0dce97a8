"""How a source's placement in its file is stored: its offset map and its line breaks, as
one JSON text (the `origin` column of either backend).

An index written before line breaks were kept holds the offset map alone (a list, or
null); it still reads, its sources without line breaks.
"""

from __future__ import annotations

import json
from typing import Any

from rag.text.offsets import OffsetMap
from rag.types import Source


def placement_json(source: Source) -> str:
    origin = source.origin.to_json() if source.origin else None
    if not source.line_breaks:
        return json.dumps(origin)
    return json.dumps({"map": origin, "line_breaks": list(source.line_breaks)})


def read_placement(text: str) -> tuple[OffsetMap | None, tuple[int, ...]]:
    """(offset map, line breaks) from `placement_json`'s text, or an older index's."""
    data: Any = json.loads(text)
    breaks: tuple[int, ...] = ()
    if isinstance(data, dict):
        breaks = tuple(int(b) for b in data.get("line_breaks", ()))
        data = data.get("map")
    return (OffsetMap.from_json(data) if data else None), breaks
