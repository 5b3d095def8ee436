"""One signed POST of a status event: Standard Webhooks headers, short timeouts, and what to do next.

The event's `webhook-id` is its `id`, a digest of (conversation, status): every delivery attempt of one event,
from any instance, carries the same id, so a receiver drops duplicates. The signature uses the webhook secret:
a `whsec_<base64>` secret's key, as the spec serializes keys; any other secret's UTF-8 bytes, which a receiver
configures as `whsec_` + base64 of those bytes (docs/callbacks.md).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from shared.logs import get_logger
from shared.outbound import NoRedirectSession
from shared.webhooks.standard_webhooks import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature, signing_key

log = get_logger(__name__)

CONNECT_TIMEOUT_SECONDS = 3.05
READ_TIMEOUT_SECONDS = 5.0  # of silence; a receiver that trickles its answer meets ATTEMPT_SECONDS instead
ATTEMPT_SECONDS = 10.0  # a whole attempt: held longer, a step would be taken for lost and run again (re-posting)
MAX_ATTEMPTS = 5
DELIVERED, PENDING, UNDELIVERABLE = "delivered", "pending", "undeliverable"
_RETRYABLE_STATUSES = frozenset({408, 425, 429})  # and every 5xx; other 4xx mean the receiver refused it


def event_id(conversation_id: str, status: str) -> str:
    """Stable per (conversation, status): the same event always has the same id."""
    digest = hashlib.sha256(f"{conversation_id}\n{status}".encode()).hexdigest()[:32]
    return f"evt_{digest}"


def signing_key_of(secret: str) -> bytes:
    """The Standard Webhooks key of the webhook secret (see the module's docstring)."""
    return signing_key(secret) or secret.encode()


def event_document(
    conversation_id: str, request_id: str, status: str, occurred_at: str, failure: dict[str, Any] | None
) -> dict[str, Any]:
    """The event as stored and sent (`sentAt` is added per attempt)."""
    return {
        "id": event_id(conversation_id, status),
        "type": f"call.{status}",
        "conversationId": conversation_id,
        "requestId": request_id,
        "status": status,
        "failure": failure,
        "occurredAt": occurred_at,
    }


def iso_now(clock: Callable[[], float] = time.time) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock()))


@dataclass(frozen=True)
class Outcome:
    """What one attempt achieved: delivered, try again later, or never (a 4xx the receiver chose)."""

    state: str  # DELIVERED, PENDING (retry) or UNDELIVERABLE
    detail: str


class _Attempt:
    """One POST's connection, cut when the attempt outlives ATTEMPT_SECONDS (timeouts bound each read, not the
    sum: a byte every few seconds would hold the worker's thread for good)."""

    current = threading.local()  # the attempt the thread is making, for the connection it uses to name itself

    def __init__(self) -> None:
        self.connection: HTTPConnection | None = None
        self.was_cut = False  # then no status counts: http.client takes the cut for the end of the headers

    def cut(self) -> None:
        self.was_cut = True
        sock = self.connection.sock if self.connection is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):  # closed meanwhile
                sock.shutdown(socket.SHUT_RDWR)  # the blocked read returns at once: the attempt fails, retried


class _NamedHTTPConnection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        attempt = getattr(_Attempt.current, "attempt", None)
        if attempt is not None:
            attempt.connection = self
        super().request(*args, **kwargs)


class _NamedHTTPSConnection(_NamedHTTPConnection, HTTPSConnection):
    pass


class _NamedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _NamedHTTPConnection


class _NamedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _NamedHTTPSConnection


class Poster:
    """Sends signed events; one pooled session per instance, no proxies from the environment."""

    def __init__(self, secret: Callable[[], str], *, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self._clock = clock
        self._session = NoRedirectSession()
        adapter = HTTPAdapter()
        adapter.poolmanager.pool_classes_by_scheme = {"http": _NamedHTTPPool, "https": _NamedHTTPSPool}
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def check_signing(self) -> None:
        """Raise the problem signing would meet (no secret to sign with, a vault that cannot be read)."""
        signing_key_of(self._secret())

    def headers(self, event: dict[str, Any], body: bytes) -> dict[str, str]:
        """The Standard Webhooks headers for `body` (the event serialized) signed now."""
        stamp = str(int(self._clock()))
        mac = signature(signing_key_of(self._secret()), event["id"], stamp, body)
        return {
            "Content-Type": "application/json",
            ID_HEADER: event["id"],
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: "v1," + base64.b64encode(mac).decode(),
        }

    def post(self, url: str, event: dict[str, Any], *, signed: bool = True) -> Outcome:
        """POST the event once; `signed=False` for receivers that authenticate by their URL (Power Automate)."""
        body = json.dumps({**event, "sentAt": iso_now(self._clock)}, separators=(",", ":")).encode()
        headers = self.headers(event, body) if signed else {"Content-Type": "application/json"}
        attempt = _Attempt.current.attempt = _Attempt()
        limit = threading.Timer(ATTEMPT_SECONDS, attempt.cut)
        limit.daemon = True
        limit.start()
        try:
            response = self._session.post(
                url,
                data=body,
                headers=headers,
                timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
                allow_redirects=False,  # a redirect could lead anywhere: only the validated URL is called
                stream=True,  # the status line is the answer: the body is never downloaded
            )
            status = response.status_code
            response.close()
        except Exception as error:  # noqa: BLE001 - whatever broke the attempt, the event is tried again later
            return Outcome(PENDING, type(error).__name__)
        finally:
            limit.cancel()
            _Attempt.current.attempt = None
        if attempt.was_cut:
            return Outcome(PENDING, f"no whole answer in {ATTEMPT_SECONDS:.0f} s")
        if 200 <= status < 300:
            return Outcome(DELIVERED, str(status))
        if status < 200 or status >= 500 or status in _RETRYABLE_STATUSES:  # < 200: http.client reads a 102 or
            return Outcome(PENDING, str(status))  # 103 before the answer as the answer (it skips only 100)
        return Outcome(UNDELIVERABLE, str(status))
