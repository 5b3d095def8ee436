"""Request-scoped log fields: every line our modules write carries the request id and idempotency key.

The Functions host ships log messages, not custom record attributes, so the fields go into the message
as `key=value` pairs that Application Insights queries can parse.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

_fields: ContextVar[dict[str, str]] = ContextVar("log_fields", default={})  # noqa: B039 - never mutated


def _printable(value: str) -> str:
    """Caller-supplied values must not forge log lines."""
    return value if value.isprintable() else "".join(c if c.isprintable() else "?" for c in value)


@contextlib.contextmanager
def log_fields(**fields: str | None) -> Iterator[None]:
    """Attach fields to every log line written inside the block (on this thread or task)."""
    clean = {name: _printable(value[:80]) for name, value in fields.items() if value}
    token = _fields.set({**_fields.get(), **clean})
    try:
        yield
    finally:
        _fields.reset(token)


class _WithFields(logging.LoggerAdapter):
    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        # A text argument may come from a caller (a route value arrives percent-decoded, line breaks and all)
        args = tuple(_printable(arg) if isinstance(arg, str) else arg for arg in args)
        fields = _fields.get()
        if fields:
            suffix = " | " + " ".join(f"{name}={value}" for name, value in fields.items())
            # Field values come from callers (an Idempotency-Key may hold "%"): keep them out of %-formatting.
            msg = f"{msg}{suffix.replace('%', '%%') if args else suffix}"
        self.logger.log(level, msg, *args, **kwargs)


def get_logger(name: str) -> logging.LoggerAdapter:
    return _WithFields(logging.getLogger(name), {})


def quiet_sdk_loggers() -> None:
    """Keep only the Azure SDK's warnings, and of urllib3's only its pools' and errors.

    The Python worker sets the root logger to INFO and ships every record to Application Insights, where the
    SDK's request and response logging (Key Vault, managed identity, Table, Queue) would add several lines
    per call; `host.json` cannot filter them, since they arrive under the function's own category. urllib3's
    connection warnings quote the whole URL ("Failed to parse headers (url=...)" for an answer with a malformed
    header): a callback URL's token, a Power Automate URL's signature. Its pools' warnings name only the host
    ("Connection pool is full": the sign that POOL_CONNECTIONS is too small); the URL they can quote is that of a
    retry, and the app's sessions never retry in urllib3.
    """
    logging.getLogger("azure").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    logging.getLogger("urllib3.connectionpool").setLevel(logging.WARNING)
