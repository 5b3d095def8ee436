"""Standard Webhooks (standardwebhooks.com; Svix and many SaaS senders), symmetric `v1` signatures.

Headers `webhook-id`, `webhook-timestamp` (unix seconds, within 5 minutes either way) and `webhook-signature`
(space-separated `v1,<base64 HMAC-SHA256>`, several during the sender's key rotation), over
`"<webhook-id>.<webhook-timestamp>.<raw body>"`. The key is the base64 after `whsec_` in the secret, as the
spec serializes it; a secret without that prefix is no Standard Webhooks key (decoding an arbitrary password
as base64 would quietly keep only some of its characters). `webhook-id` is the delivery's identity: the
sender keeps it across retries while the timestamp and signature change.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping

from shared.webhooks.shared_secrets import SharedSecrets
from shared.webhooks.signed import SignedCall, delivery_key, refused

ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER = "webhook-id", "webhook-timestamp", "webhook-signature"
HEADERS = (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)
TOLERANCE_SECONDS = 300
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
MAX_ID_LENGTH = 256
TIMESTAMP = re.compile(r"^\d{1,12}$")
V1_SIGNATURE = re.compile(r"^v1,(?P<b64>[A-Za-z0-9+/]{43}=)$")  # 32 bytes


def signing_key(secret: str) -> bytes | None:
    """The HMAC key of a `whsec_<base64>` secret (padding optional); None for any other secret."""
    if not secret.startswith(SECRET_PREFIX):
        return None
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        return None
    return key or None


def signature(key: bytes, message_id: str, timestamp: str, body: bytes) -> bytes:
    """The raw `v1` HMAC-SHA256 over `"<webhook-id>.<webhook-timestamp>.<raw body>"`, for senders and receivers."""
    return hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


class StandardWebhooks:
    """Verifies a Standard Webhooks delivery against the shared secrets."""

    def __init__(self, secrets: SharedSecrets, *, clock: Callable[[], float] = time.time) -> None:
        self._secrets = secrets
        self._clock = clock

    def verify(self, headers: Mapping[str, str], body: bytes) -> SignedCall:
        """The delivery with its key (a digest of `webhook-id`), or `invalid_signature` naming the header."""
        for name in HEADERS:
            if not headers.get(name):
                raise refused(
                    name, "A Standard Webhooks delivery needs webhook-id, webhook-timestamp and webhook-signature."
                )
        message_id, stamp, signatures = (headers[name] for name in HEADERS)
        if len(message_id) > MAX_ID_LENGTH or not message_id.isprintable():
            raise refused(ID_HEADER, f"webhook-id must be 1-{MAX_ID_LENGTH} printable characters.")
        if not TIMESTAMP.match(stamp.strip()):
            raise refused(TIMESTAMP_HEADER, "webhook-timestamp must be unix seconds.")
        if abs(self._clock() - int(stamp)) > TOLERANCE_SECONDS:
            raise refused(TIMESTAMP_HEADER, f"webhook-timestamp is more than {TOLERANCE_SECONDS} s off.")
        candidates = [base64.b64decode(match["b64"]) for match in map(V1_SIGNATURE.match, signatures.split()) if match]
        if not candidates:
            raise refused(SIGNATURE_HEADER, "webhook-signature holds no 'v1,<base64 HMAC-SHA256>' signature.")

        def matches(secret: str) -> bool:
            key = signing_key(secret)
            if key is None:
                return False
            expected = signature(key, message_id, stamp.strip(), body)
            return any(hmac.compare_digest(expected, candidate) for candidate in candidates)

        if not self._secrets.any_matches(matches):
            raise refused(
                SIGNATURE_HEADER,
                "No v1 signature matches: the key is the base64 after 'whsec_' in the webhook secret (a secret "
                "without that prefix is not a Standard Webhooks key).",
            )
        return SignedCall(delivery_key("swh", message_id), body)
