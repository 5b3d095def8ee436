"""Telling callers what happened to their calls (issue 14; docs/callbacks.md):

- `targets`: `statusCallbackUrl` / `statusCallbackEvents` and the allow-list check (request and delivery time);
- `watcher`: delayed `call-status` queue messages that read the conversation with backoff and post events, and
  a timer that resumes a watch whose message was lost;
- `delivery`: the event document and one Standard Webhooks-signed POST;
- `subscriptions`: Power Automate's "When a call ends" webhook trigger.
"""

from shared.status_callbacks.delivery import Poster
from shared.status_callbacks.subscriptions import (
    MemorySubscriptionRows,
    Subscriptions,
    TableSubscriptionRows,
)
from shared.status_callbacks.targets import StatusCallback
from shared.status_callbacks.watcher import QUEUE_NAME, RESUME_SCHEDULE, StatusWatcher, WatchSettings

__all__ = [
    "QUEUE_NAME",
    "RESUME_SCHEDULE",
    "MemorySubscriptionRows",
    "Poster",
    "StatusCallback",
    "StatusWatcher",
    "Subscriptions",
    "TableSubscriptionRows",
    "WatchSettings",
]
