"""The verifiers of every signed sender, built once per worker by `shared/services.py`."""

from __future__ import annotations

from dataclasses import dataclass

from shared.webhooks.pubsub import PubSubVerifier
from shared.webhooks.signatures import SignatureVerifier
from shared.webhooks.sns import SnsVerifier


@dataclass(frozen=True)
class Senders:
    signatures: SignatureVerifier  # /api/webhooks/calls: our HMAC schemes, GitHub's, Standard Webhooks
    sns: SnsVerifier  # /api/webhooks/sns
    pubsub: PubSubVerifier  # /api/webhooks/pubsub
