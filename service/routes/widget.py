"""The demo page at / and the embeddable widget script."""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from service.deps import SettingsDep

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(include_in_schema=False)


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


@router.get("/widget.js")
async def widget_script() -> FileResponse:
    return FileResponse(
        STATIC / "widget.js",
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300"},
    )
