"""`POST /api/webhooks/calls`: which signature scheme a delivery uses, told by its headers, never guessed.

A delivery carrying the headers of two schemes is refused: each scheme names the delivery differently, and
choosing one would let a captured delivery be replayed under the other.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from shared.webhooks import hmac_signatures, standard_webhooks
from shared.webhooks.hmac_signatures import HmacSignatures
from shared.webhooks.shared_secrets import SharedSecrets
from shared.webhooks.signed import SignedCall, refused
from shared.webhooks.standard_webhooks import StandardWebhooks


class SignatureVerifier:
    """Our HMAC schemes, GitHub's `X-Hub-Signature-256` and Standard Webhooks, with one set of secrets.

    `secrets` are the current and, during a rotation, the previous secret.
    """

    def __init__(
        self,
        secrets: SharedSecrets,
        *,
        require_timestamp: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._hmac = HmacSignatures(secrets, require_timestamp=require_timestamp, clock=clock)
        self._standard = StandardWebhooks(secrets, clock=clock)

    def verify(self, headers: Mapping[str, str], body: bytes) -> SignedCall:
        """The verified delivery (its idempotency key comes from signed material), or `invalid_signature`."""
        present = [name for name in hmac_signatures.HEADERS if headers.get(name)]
        if standard_webhooks.present(headers):
            present.append(standard_webhooks.SIGNATURE_HEADER)
        if len(present) > 1:
            raise refused(
                present[-1], f"The request carries two signature schemes ({' and '.join(present)}): send one."
            )
        if not present:
            raise refused(
                "X-Signature-256",
                "The request is not signed: send X-Signature-256, X-Hub-Signature-256, X-Signature or Standard "
                "Webhooks' webhook-id, webhook-timestamp and webhook-signature.",
            )
        if present[0] == standard_webhooks.SIGNATURE_HEADER:
            return self._standard.verify(headers, body)
        return self._hmac.verify(present[0], headers[present[0]], body)
