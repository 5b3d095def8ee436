"""Request-scoped log fields: every line our modules write carries the request id and idempotency key.

The Functions host ships log messages, not custom record attributes, so the fields go into the message
as `key=value` pairs that Application Insights queries can parse.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, MutableMapping
from contextvars import ContextVar
from typing import Any

_fields: ContextVar[dict[str, str]] = ContextVar("log_fields", default={})  # noqa: B039 - never mutated


@contextlib.contextmanager
def log_fields(**fields: str | None) -> Iterator[None]:
    """Attach fields to every log line written inside the block (on this thread or task)."""
    token = _fields.set({**_fields.get(), **{k: v[:80] for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _fields.reset(token)


class _WithFields(logging.LoggerAdapter):
    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        fields = _fields.get()
        if fields:
            msg = f"{msg} | " + " ".join(f"{name}={value}" for name, value in fields.items())
        return msg, kwargs


def get_logger(name: str) -> logging.LoggerAdapter:
    return _WithFields(logging.getLogger(name), {})
