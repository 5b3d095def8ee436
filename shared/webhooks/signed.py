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


def refused(header: str, detail: str) -> Problem:
    """Every failed check is `401 invalid_signature` naming the header (or signed field) that failed."""
    return Problem("invalid_signature", detail, field=header)


def delivery_key(scheme: str, *identity: str) -> str:
    """A fixed-size, printable idempotency key for any sender id (ids may be long, non-ASCII or contain ':')."""
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
