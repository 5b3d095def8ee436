"""Ids: Genesys's (users, queues, conversations) and ours (requests, subscriptions) are all UUIDs."""

from __future__ import annotations

import re

UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_uuid(value: object) -> bool:
    """A UUID in its usual 36-character form, any case (Genesys ids and the ids this app issues)."""
    return isinstance(value, str) and UUID.fullmatch(value) is not None
