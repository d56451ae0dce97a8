"""Web origins as browsers send them (`Origin: https://example.com`), from what people write."""

from __future__ import annotations

from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
_WANTED = "an origin is scheme://host[:port], as https://www.example.com"


def origin_of(entry: str) -> str:
    """An allowed origin as written in settings or the keys file, in a browser's form.

    Origins are compared as strings: `HTTPS://Example.com:443/` must become
    `https://example.com`, or it never matches and the widget gets 403 with no hint why.

    Raises:
        ValueError: `entry` is no origin (a bare host, a path, `*`), saying why.
    """
    if entry == "*":
        raise ValueError(
            f"'*' is not allowed: it would let any site ask with a publishable key; list the "
            f"sites' origins ({_WANTED})"
        )
    try:
        parts = urlsplit(entry)
        port = parts.port
    except ValueError as err:
        raise ValueError(f"{entry!r} is not a URL ({err})") from None
    if (
        parts.scheme.lower() not in _DEFAULT_PORTS
        or not parts.hostname
        or parts.username is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise ValueError(f"{entry!r} is not an origin ({_WANTED})")
    scheme, host = parts.scheme.lower(), parts.hostname  # `hostname` is lower-cased
    host = f"[{host}]" if ":" in host else host  # an IPv6 address keeps its brackets
    shown_port = "" if port is None or port == _DEFAULT_PORTS[scheme] else f":{port}"
    return f"{scheme}://{host}{shown_port}"
