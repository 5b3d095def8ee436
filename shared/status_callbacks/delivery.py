"""One signed POST of a status event: Standard Webhooks headers, short timeouts, and what to do next.

The event's `webhook-id` is its `id`, a digest of (conversation, status): every delivery attempt of one event,
from any instance, carries the same id, so a receiver drops duplicates. The signature uses the webhook secret:
a `whsec_<base64>` secret's key, as the spec serializes keys; any other secret's UTF-8 bytes, which a receiver
configures as `whsec_` + base64 of those bytes (docs/callbacks.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.logs import get_logger
from shared.status_callbacks.bounded_post import AttemptCut, BoundedPoster
from shared.webhooks.standard_webhooks import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature, signing_key

log = get_logger(__name__)

CONNECT_TIMEOUT_SECONDS = 3.05
READ_TIMEOUT_SECONDS = 5.0  # of silence; a receiver that trickles its answer meets ATTEMPT_SECONDS instead
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


class Poster:
    """Sends signed events; one pooled session per instance, no proxies from the environment."""

    def __init__(
        self, secret: Callable[[], str], *, loopback_allowed: bool, clock: Callable[[], float] = time.time
    ) -> None:
        self._secret = secret
        self._clock = clock
        self._receivers = BoundedPoster(loopback_allowed=loopback_allowed)

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
        try:
            status = self._receivers.post(url, body, headers, (CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS))
        except AttemptCut as cut:
            return Outcome(PENDING, str(cut))
        except Exception as error:  # noqa: BLE001 - whatever broke the attempt, the event is tried again later
            return Outcome(PENDING, type(error).__name__)
        if 200 <= status < 300:
            return Outcome(DELIVERED, str(status))
        if status >= 500 or status in _RETRYABLE_STATUSES:
            return Outcome(PENDING, str(status))
        return Outcome(UNDELIVERABLE, str(status))
