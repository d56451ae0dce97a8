"""`rag serve`: the HTTP service, built with the service's own settings."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import (
    IndexOption,
    errors,
    print_error,
)


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address [default: $RAG_HOST or 127.0.0.1]")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: $RAG_PORT or 8000]")] = None,
    index: IndexOption = None,
) -> None:
    """Serve the HTTP API, the demo page and the chat widget (see docs/api.md)."""
    import uvicorn

    from service.app import create_app
    from service.settings import get_service_settings
    from service.shared import describe_state

    settings = get_service_settings()
    if index is not None:
        settings = settings.model_copy(update={"index_dir": index})
    host = host or settings.host
    if settings.open_access and host not in {"127.0.0.1", "localhost", "::1"}:
        errors.print(
            f"[yellow]warning:[/yellow] no API keys configured (RAG_ADMIN_KEYS, RAG_QUERY_KEYS, "
            f"RAG_PUBLISHABLE_KEYS): serving on 127.0.0.1, not {host}"
        )
        host = "127.0.0.1"
    port = settings.port if port is None else port
    # Plain text, not rich markup: an index folder holding `[/x]` was a MarkupError.
    errors.print(
        f"serving {settings.index_dir} at http://{host}:{port}/ (API docs at /docs)",
        markup=False,
    )
    errors.print(f"state: {describe_state(settings)}", markup=False)
    try:
        app = create_app(settings)
    except ValueError as err:  # the keys file or a rate limit, read when the app is built
        print_error(err)
        raise SystemExit(2) from None
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        # A connection backstop behind admission control (RAG_MAX_CONNECTIONS; 0: none).
        limit_concurrency=settings.max_connections or None,
    )
