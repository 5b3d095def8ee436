"""HMAC-SHA256 signatures in hex with the shared secret's UTF-8 bytes: ours and GitHub's.

- `X-Signature-256: sha256=<hex>` and GitHub's `X-Hub-Signature-256: sha256=<hex>`: over the raw body;
- `X-Signature: t=<unix seconds>,v1=<hex>`: over `"<t>.<raw body>"`, with `t` within 300 s of our clock.

What was signed is the delivery's identity (`sig:<SHA-256 of it>`): the same bytes are the same delivery under
either raw-body header, and whichever secret signed them (a retry signed again after a rotation replays). GitHub's
`X-GitHub-Delivery` is not signed, so it is not trusted.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable

from shared.webhooks.shared_secrets import SharedSecrets
from shared.webhooks.signed import SignedCall, refused

SIGNATURE_TOLERANCE_SECONDS = 300
RAW_SIGNATURE = re.compile(r"^sha256=(?P<hex>[0-9a-fA-F]{64})$")
TIMESTAMPED_SIGNATURE = re.compile(r"^t=(?P<t>\d{1,12}),v1=(?P<v1>[0-9a-fA-F]{64})$")
RAW_HEADERS = ("X-Signature-256", "X-Hub-Signature-256")  # no timestamp: replayable once the record is purged
TIMESTAMPED_HEADER = "X-Signature"
HEADERS = (*RAW_HEADERS, TIMESTAMPED_HEADER)


def hex_hmac(secret: str, message: bytes) -> str:
    """HMAC-SHA256 of `message` keyed with the secret's UTF-8 bytes, as lowercase hex."""
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class HmacSignatures:
    """Checks one of `HEADERS`; `require_timestamp` (WEBHOOK_REQUIRE_TIMESTAMP) refuses the untimed ones."""

    def __init__(
        self, secrets: SharedSecrets, *, require_timestamp: bool = False, clock: Callable[[], float] = time.time
    ) -> None:
        self._secrets = secrets
        self._require_timestamp = require_timestamp
        self._clock = clock

    def verify(self, header: str, value: str, body: bytes) -> SignedCall:
        """The delivery with its key `sig:<hex>` (what was signed, digested), or `invalid_signature` naming
        `header`."""
        if header in RAW_HEADERS:
            if self._require_timestamp:
                raise refused(
                    header,
                    f"{header} has no timestamp and WEBHOOK_REQUIRE_TIMESTAMP is on: sign with "
                    "X-Signature: t=<unix seconds>,v1=<hex> or Standard Webhooks.",
                )
            match = RAW_SIGNATURE.match(value.strip())
            if not match:
                raise refused(header, f"{header} must be 'sha256=<64 hex digits>'.")
            signature, message = match["hex"].lower(), body
        else:
            match = TIMESTAMPED_SIGNATURE.match(value.strip())
            if not match:
                raise refused(header, "X-Signature must be 't=<unix seconds>,v1=<64 hex digits>'.")
            if abs(self._clock() - int(match["t"])) > SIGNATURE_TOLERANCE_SECONDS:
                raise refused(header, f"The signature timestamp is more than {SIGNATURE_TOLERANCE_SECONDS} s off.")
            signature, message = match["v1"].lower(), match["t"].encode() + b"." + body
        if not self._secrets.any_matches(lambda secret: hmac.compare_digest(hex_hmac(secret, message), signature)):
            raise refused(header, "The signature does not match the body.")
        return SignedCall(f"sig:{hashlib.sha256(message).hexdigest()}", body)
