"""Where status events may go: `statusCallbackUrl` and `statusCallbackEvents`, checked before dialing.

The function makes server-side requests to these URLs, so only HTTPS on a host the operator listed in
`STATUS_CALLBACK_ALLOWED_HOSTS` (exact, case-insensitive) is accepted; plain HTTP only to a loopback address
under `GENESYS_ALLOW_INSECURE_HTTP=true` (local emulators). The same check runs again at delivery time
against the current allow-list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from shared.errors import Problem
from shared.http import is_given
from shared.outbound import is_loopback

EVENTS = ("ringing", "connected", "ended", "failed")
DEFAULT_EVENTS = ("ended", "failed")
TERMINAL = frozenset({"ended", "failed"})
MAX_URL_LENGTH = 2048
URL_FIELD, EVENTS_FIELD = "statusCallbackUrl", "statusCallbackEvents"


def _invalid(field: str, detail: str, hint: str | None = None) -> Problem:
    return Problem("validation_failed", detail, field=field, hint=hint)


def _refused(field: str, detail: str, hint: str | None = None) -> Problem:
    """A well-formed URL this deployment will not send requests to."""
    return Problem("callback_url_not_allowed", detail, field=field, hint=hint)


@dataclass(frozen=True)
class StatusCallback:
    """A validated callback request: the URL (checked against the allow-list separately) and its events."""

    url: str
    events: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "events": list(self.events)}

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> StatusCallback | None:
        """The callback fields of a call request, shape only (the host check needs the settings)."""
        url, events = body.get(URL_FIELD), body.get(EVENTS_FIELD)
        url, events = (url if is_given(url) else None), (events if is_given(events) else None)
        if url is None:
            if events is not None:
                raise _invalid(EVENTS_FIELD, f"'{EVENTS_FIELD}' needs a '{URL_FIELD}' to send them to.")
            return None
        if not isinstance(url, str):
            raise _invalid(URL_FIELD, f"'{URL_FIELD}' must be an https:// URL.")
        if len(url) > MAX_URL_LENGTH or any(ord(c) <= 32 or ord(c) == 127 for c in url.strip()):
            raise _invalid(URL_FIELD, f"'{URL_FIELD}' must be a URL of at most {MAX_URL_LENGTH} characters.")
        return cls(url.strip(), read_events(events))


def read_events(value: Any) -> tuple[str, ...]:
    """A subset of `EVENTS` in their natural order; unset means `DEFAULT_EVENTS`."""
    if value is None:
        return DEFAULT_EVENTS
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise _invalid(EVENTS_FIELD, f"'{EVENTS_FIELD}' must be a non-empty list of: {', '.join(EVENTS)}.")
    unknown = sorted(set(value) - set(EVENTS))
    if unknown:
        raise _invalid(
            EVENTS_FIELD, f"'{EVENTS_FIELD}' holds {', '.join(unknown)[:80]}; events are {', '.join(EVENTS)}."
        )
    return tuple(event for event in EVENTS if event in value)


# What a URL may hold: printable ASCII without spaces or backslashes, and no percent-escapes in the authority. A parser
# that reads `https://10.0.0.5\\.logic.azure.com/` one way while the HTTP client reads it another is how a host
# check is bypassed; so the host is taken as the HTTP client (urllib3) takes it, and anything odd is refused.
# (Allowed: letters, digits and !#$%&'()*+,-./:;=?@[]_~; no space, quote, <, >, backslash, ^, `, {, | or }.)
_URL_CHARACTERS = re.compile(r"^[!#-;=?-\[\]_a-z~]+$", re.IGNORECASE | re.ASCII)


def _parts(url: object, field: str) -> tuple[str, SplitResult]:
    """The host (lower case, no trailing dot) urllib3 will connect to, and the URL's parts; or
    `validation_failed` when it is no URL or the two parsers disagree."""
    from urllib3.util import parse_url

    if not isinstance(url, str) or len(url) > 4096 or not _URL_CHARACTERS.fullmatch(url):
        raise _invalid(field, f"'{field}' is not a valid URL (printable ASCII, no spaces or backslashes).")
    try:
        parsed = parse_url(url)
        split = urlsplit(url)
        split.port  # noqa: B018 - raises ValueError unless a number from 0 to 65535
    except ValueError:
        raise _invalid(field, f"'{field}' is not a valid URL.") from None
    host = (parsed.host or "").lower().rstrip(".")
    if not host or parsed.scheme not in ("http", "https") or "%" in (split.netloc or ""):
        raise _invalid(field, f"'{field}' must be an absolute https:// URL.")
    if host != (split.hostname or "").lower().rstrip("."):  # two parsers disagree: refuse rather than guess
        raise _invalid(field, f"'{field}' is not a valid URL.")
    return host, split


def check_url(
    url: str,
    hosts: Iterable[str],
    *,
    allow_insecure_loopback: bool,
    host_suffixes: Iterable[str] = (),
    field: str = URL_FIELD,
    setting: str = "STATUS_CALLBACK_ALLOWED_HOSTS",
) -> str:
    """The URL, or 422 `callback_url_not_allowed` naming `field` (400 `validation_failed` when it is no URL):
    https on port 443 of an allowed host (exactly one of `hosts`, or ending in one of `host_suffixes`), no
    credentials; http only to loopback when allowed. Checked again before every delivery."""
    host, parts = _parts(url, field)
    if "@" in parts.netloc:
        raise _refused(field, f"'{field}' must not hold user-info (credentials before '@').")
    if parts.scheme == "http" and allow_insecure_loopback and is_loopback(host):
        return url
    if parts.scheme != "https":
        raise _refused(field, f"'{field}' must use https://.")
    if parts.port not in (None, 443):
        raise _refused(field, f"'{field}' must use the https port (443).")
    if host in set(hosts) or any(host.endswith(suffix) for suffix in host_suffixes):
        return url
    raise _refused(
        field,
        f"'{field}' names host {host[:100]!r}, which is not in {setting}.",
        hint=f"Use a host the operator listed in {setting} (comma-separated host names), or ask them to add it.",
    )
