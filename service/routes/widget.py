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

# The line of widget.js that holds what the service allows, as the file ships (the defaults).
SERVICE_LINE = "const SERVICE = { historyTurns: 20, historyChars: 20000, originals: true };"


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
    if SERVICE_LINE not in source:
        raise RuntimeError(f"widget.js lacks the line {SERVICE_LINE!r}")
    return source


def widget_script(settings: ServiceSettings) -> str:
    """widget.js with what this service allows written in.

    Its history limits: a widget sending more history than the service takes was refused
    (422) on every question past the limit. And whether the widget's key opens cited
    originals: a button that can only be refused is not shown.
    """
    originals = settings.publishable_originals or settings.open_access
    line = (
        f"const SERVICE = {{ historyTurns: {settings.max_history_turns}, "
        f"historyChars: {settings.max_history_chars}, "
        f"originals: {'true' if originals else 'false'} }};"
    )
    return _widget_source().replace(SERVICE_LINE, line, 1)


@router.get("/widget.js")
async def widget_script_route(settings: SettingsDep) -> Response:
    return Response(
        widget_script(settings),
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300"},
    )
