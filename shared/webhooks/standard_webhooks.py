"""Standard Webhooks (standardwebhooks.com; Svix and many SaaS senders), symmetric `v1` signatures.

Headers `webhook-id`, `webhook-timestamp` (unix seconds, within 5 minutes either way) and `webhook-signature`
(space-separated `v1,<base64 HMAC-SHA256>`, several during the sender's key rotation), over
`"<webhook-id>.<webhook-timestamp>.<raw body>"`. The key is the base64 after `whsec_` in the secret, as the
spec serializes it; a secret without that prefix is no Standard Webhooks key (decoding an arbitrary password
as base64 would quietly keep only some of its characters). `webhook-id` is the delivery's identity: the
sender keeps it across retries while the timestamp and signature change. Svix, the spec's reference sender,
names the same three headers `svix-id`, `svix-timestamp` and `svix-signature` unless an account has them renamed,
and its libraries read both: so do we.
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
SVIX_HEADERS = ("svix-id", "svix-timestamp", "svix-signature")  # the same, as Svix names them by default
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


def present(headers: Mapping[str, str]) -> bool:
    """Whether a delivery carries any Standard Webhooks header, under either name."""
    return any(headers.get(name) for name in HEADERS + SVIX_HEADERS)


def _values(headers: Mapping[str, str]) -> tuple[str, str, str]:
    """The id, timestamp and signatures, from the `webhook-` headers or else the `svix-` ones; both sets only
    when they agree (a relay may copy one set to the other), or the delivery would have two identities."""
    standard = tuple(headers.get(name) or "" for name in HEADERS)
    svix = tuple(headers.get(name) or "" for name in SVIX_HEADERS)
    if any(standard) and any(svix) and standard != svix:
        raise refused(ID_HEADER, "The request carries webhook-* and svix-* headers that differ: send one set.")
    found = standard if any(standard) else svix
    names = HEADERS if any(standard) else SVIX_HEADERS
    for name, value in zip(names, found, strict=True):
        if not value:
            raise refused(
                name, "A Standard Webhooks delivery needs webhook-id, webhook-timestamp and webhook-signature."
            )
    return found[0], found[1], found[2]


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
        message_id, stamp, signatures = _values(headers)
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
