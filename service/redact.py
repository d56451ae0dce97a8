"""Keys never reach the logs: log lines and their tracebacks are redacted before any handler.

The service reads keys from headers only, which the access log does not print; but a client
may still put one in the URL (`?api_key=...`, or a key pasted into a path), and the access
log prints the path and query string verbatim.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import quote

REDACTED = "[redacted]"

# Values of query parameters whose names say they carry a credential.
_CREDENTIAL_PARAM = re.compile(
    r"(?i)([?&;][^=&;#]*(?:key|token|secret|passw|auth|signature)[^=&;#]*=)[^&;#\s\"]*"
)


class RedactKeys(logging.Filter):
    """A filter for a logger: credentials in its records' messages and arguments are redacted.

    Redacts every known key, as sent and percent-encoded, and the value of any query
    parameter named like a credential (which covers keys the service does not know).
    """

    def __init__(self, keys: Iterable[str]) -> None:
        super().__init__()
        known = {k for k in keys if k} | {quote(k, safe="") for k in keys if k}
        self._keys = sorted(known, key=len, reverse=True)  # a key inside another goes last

    def redact(self, text: str) -> str:
        text = _CREDENTIAL_PARAM.sub(rf"\1{REDACTED}", text)
        for key in self._keys:
            text = text.replace(key, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self.redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self._redacted_arg(a) for a in record.args)
        if record.exc_info:
            # A traceback ends with the exception's message, which may quote a header or a
            # URL. Handlers print `exc_text` when it is set; the exception itself is dropped
            # so that no handler or formatter can format it again, unredacted.
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True

    def _redacted_arg(self, arg: object) -> object:
        # Numbers stay numbers for `%d`; anything else is printed as its text, which an
        # exception's (`log.error("...: %s", err)`) may quote a key in.
        if arg is None or isinstance(arg, int | float):
            return arg
        return self.redact(arg if isinstance(arg, str) else str(arg))


# Formats tracebacks the way every `logging.Formatter` does by default.
_TRACEBACKS = logging.Formatter()


# uvicorn's access log prints request lines, its error log may quote them; and our own.
SERVER_LOGGERS = ("uvicorn.access", "uvicorn.error", "rag.service", "rag.llm")
