"""What every verified sender has in common: the refusal, the delivery's identity, and what was delivered.

A delivery's identity (its idempotency key) comes only from material the sender signed, so a redelivery
replays the first answer and a captured delivery cannot be made into a new call by changing unsigned parts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from shared.errors import Problem
from shared.http import MAX_BODY_BYTES

# Every verified delivery's idempotency key starts "<scheme>:" with one of these (`delivery_key`, and "sig" for
# the HMAC schemes): no Idempotency-Key a caller sends may, or it could take a delivery's answer before it comes.
# A delivery's answer is kept as long as an unknown outcome's (8 days), past its sender's redeliveries.
DELIVERY_SCHEMES = ("sig", "swh", "sns", "pubsub", "eg", "ce")
DELIVERY_PREFIXES = tuple(f"{scheme}:" for scheme in DELIVERY_SCHEMES)


def caller_key(header: str | None) -> str | None:
    """An `Idempotency-Key` header as a caller's key: refused when it names a verified delivery's key.

    Keys of both kinds share one namespace, so a key holder without the sender's secret could otherwise claim a
    guessable delivery id (sequential Standard Webhooks ids, numeric Pub/Sub ids) with a call of their own, and
    the genuine delivery would be refused as `idempotency_key_reused` on every retry.
    """
    if header is not None and header.startswith(DELIVERY_PREFIXES):
        raise Problem(
            "validation_failed",
            f"Idempotency-Key must not start with {', '.join(map(repr, DELIVERY_PREFIXES))}: "
            "those name signed deliveries.",
            field="Idempotency-Key",
        )
    return header


def refused(header: str, detail: str, hint: str | None = None) -> Problem:
    """Every failed check is `401 invalid_signature` naming the header (or signed field) that failed; `hint` is a
    scheme's own (the catalog's speaks of the shared secret)."""
    return Problem("invalid_signature", detail, field=header, hint=hint)


def keys_unavailable(detail: str) -> Problem:
    """The sender's public keys could not be fetched for now: 503, which every sender retries (a 401 is final
    for AWS SNS, and would drop the message)."""
    return Problem("signing_keys_unavailable", detail, retry_after=5)


def delivery_key(scheme: str, *identity: str) -> str:
    """A fixed-size, printable idempotency key for any sender id (ids may be long, non-ASCII or contain ':')."""
    assert scheme in DELIVERY_SCHEMES, scheme
    return f"{scheme}:" + hashlib.sha256(json.dumps(identity).encode()).hexdigest()


@dataclass(frozen=True)
class SignedCall:
    """A verified delivery: its idempotency key and the call request it carries, as raw JSON bytes."""

    key: str
    call: bytes

    def __post_init__(self) -> None:
        if len(self.call) > MAX_BODY_BYTES:
            raise Problem(
                "payload_too_large", f"The call request has {len(self.call)} bytes; the limit is {MAX_BODY_BYTES}."
            )
