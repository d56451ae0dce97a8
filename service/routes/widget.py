"""The demo page at / and the embeddable widget script."""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse

from service.deps import SettingsDep
from service.settings import ServiceSettings

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(include_in_schema=False)

# The line of widget.js that holds the history limits, as the file ships (the defaults).
HISTORY_LIMITS = "const HISTORY_LIMITS = { turns: 20, chars: 20000 };"


@cache
def _demo_page() -> str:
    return (STATIC / "index.html").read_text(encoding="utf-8")


def widget_tag(publishable_key: str | None) -> str:
    """The one tag a page needs; only ever a publishable key, which may sit in a page."""
    key = f' data-key="{html.escape(publishable_key)}"' if publishable_key else ""
    return f'<script src="/widget.js"{key} defer></script>'


@router.get("/", response_class=HTMLResponse)
async def demo_page(settings: SettingsDep) -> HTMLResponse:
    key = settings.publishable_keys[0] if settings.publishable_keys else None
    return HTMLResponse(_demo_page().replace("<!-- WIDGET -->", widget_tag(key)))


@cache
def _widget_source() -> str:
    source = (STATIC / "widget.js").read_text(encoding="utf-8")
    if HISTORY_LIMITS not in source:
        raise RuntimeError(f"widget.js lacks the line {HISTORY_LIMITS!r}")
    return source


def widget_script(settings: ServiceSettings) -> str:
    """widget.js with this service's history limits written in: a widget sending more
    history than the service takes was refused (422) on every question after the limit."""
    limits = (
        f"const HISTORY_LIMITS = {{ turns: {settings.max_history_turns}, "
        f"chars: {settings.max_history_chars} }};"
    )
    return _widget_source().replace(HISTORY_LIMITS, limits, 1)


@router.get("/widget.js")
async def widget_script_route(settings: SettingsDep) -> Response:
    return Response(
        widget_script(settings),
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300"},
    )
