"""The statuses each push sender acts on, and `/api/calls`'s answer put in them.

A sender reads only the status: Event Grid dead-letters 400, 401, 403 and 413 at once (drops them without a
dead-letter destination) and retries 408, 429, 5xx and other 4xx for up to a day; AWS SNS retries only
server-side failures (5xx, timeouts) and drops the message on any 4xx.
The body keeps what `/api/calls` would say, its status as `eventStatus`.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.idempotency import Reply


def event_status(status: int, retryable: bool) -> int:
    """Event Grid's and CloudEvents senders' status for what `/api/calls` would answer `status`: a failure that
    can never succeed becomes 400; one the catalog calls retryable (a busy line, a request still in progress)
    becomes 503. A 409 is not always retryable: a user without a station stays without one."""
    if status < 400 or status >= 500 or status in (400, 413, 429):
        return status
    return 503 if retryable else 400


def sns_status(status: int, retryable: bool) -> int:
    """SNS's status for what `/api/calls` would answer `status`: a 4xx that can succeed later (a request still in
    progress, Genesys's rate limit) becomes 503, or SNS drops the message and its call is never placed."""
    return 503 if 400 <= status < 500 and retryable else status


def for_event_sender(reply: Reply) -> Reply:
    return _answered_in(reply, event_status)


def for_sns(reply: Reply) -> Reply:
    return _answered_in(reply, sns_status)


def _answered_in(reply: Reply, status_of: Callable[[int, bool], int]) -> Reply:
    status = status_of(reply.status, reply.body.get("retryable") is True)
    if status == reply.status:
        return reply
    headers = {"Retry-After": "5"} if status == 503 else reply.headers
    return Reply(status, {**reply.body, "status": status, "eventStatus": reply.status}, headers)
