"""Deliveries from other clouds, one module per sender scheme:

- `signatures`: `POST /api/webhooks/calls`, telling apart `hmac_signatures` (ours and GitHub's) and
  `standard_webhooks` by their headers, with `shared_secrets` (rotation) behind them;
- `sns`: AWS SNS HTTP(S) subscriptions; `pubsub`: Google Pub/Sub authenticated push;
- `events`: Azure Event Grid and CloudEvents 1.0;
- `redelivery`: the statuses each push sender retries, and our answer put in them.

Each delivery's identity (its idempotency key) comes only from what its sender signed (`signed`), so a
redelivery replays the first answer and never dials again.
"""

from shared.webhooks.events import (
    BATCH_BUDGET_SECONDS,
    VALIDATION_EVENT,
    Event,
    abuse_protection,
    answer_events,
    is_binary_cloudevent,
    read_delivery,
)
from shared.webhooks.pubsub import GoogleKeys, PubSubVerifier
from shared.webhooks.redelivery import event_status, for_event_sender, for_sns, sns_status
from shared.webhooks.senders import Senders
from shared.webhooks.signatures import SignatureVerifier
from shared.webhooks.signed import SignedCall
from shared.webhooks.sns import SnsMessage, SnsVerifier

__all__ = [
    "BATCH_BUDGET_SECONDS",
    "VALIDATION_EVENT",
    "Event",
    "GoogleKeys",
    "PubSubVerifier",
    "Senders",
    "SignatureVerifier",
    "SignedCall",
    "SnsMessage",
    "SnsVerifier",
    "abuse_protection",
    "answer_events",
    "event_status",
    "for_event_sender",
    "for_sns",
    "is_binary_cloudevent",
    "read_delivery",
    "sns_status",
]
