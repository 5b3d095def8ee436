"""`"mode": "callback"`: a Genesys callback for the normalized number, through the same checks and idempotency."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from emulators.genesys import DEMO_QUEUE_ID, NO_CLI_QUEUE_ID
from shared.calls import CLOCK_SKEW_SECONDS
from shared.idempotency import JobAttempt
from shared.services import services
from tests.conftest import Stack


def test_callback_sends_the_documented_body(stack: Stack) -> None:
    when = (datetime.now(timezone.utc) + timedelta(hours=2)).replace(microsecond=0)

    response = stack.post(
        "/api/calls",
        {
            "mode": "callback",
            "to": "(212) 555-0199",
            "queueId": DEMO_QUEUE_ID,
            "scheduledTime": when.isoformat().replace("+00:00", "Z"),
            "callerIdName": "Acme Collections",
            "attributes": {"invoice": "A-1017"},
        },
    )

    assert response.status_code == 201, response.text
    [sent] = stack.genesys.requests("callback")
    assert sent.path == "/api/v2/conversations/callbacks"
    assert sent.json == {
        "routingData": {"queueId": DEMO_QUEUE_ID},
        "callbackNumbers": ["+12125550199"],
        "callerId": "+13175550101",
        "callbackScheduledTime": when.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "callerIdName": "Acme Collections",
        "data": {"invoice": "A-1017"},
    }
    body = response.json()
    assert body["mode"] == "callback"
    assert body["status"] == "scheduled"
    assert body["conversationId"] == stack.genesys.org.callbacks[0]["conversationId"]
    assert response.headers["Location"] == f"/api/calls/{body['conversationId']}"
    assert stack.creates() == []


def test_scheduled_time_in_another_zone_is_sent_in_utc(stack: Stack) -> None:
    local = (datetime.now(timezone.utc) + timedelta(days=1)).astimezone(timezone(timedelta(hours=-5)))

    stack.post(
        "/api/calls",
        {"mode": "callback", "to": "+12125550199", "queueId": NO_CLI_QUEUE_ID, "scheduledTime": local.isoformat()},
    )

    sent = stack.genesys.requests("callback")[0].json
    assert sent["callbackScheduledTime"] == local.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert sent["callerId"] == "+13175550100"  # the queue has no caller ID: the default


@pytest.mark.parametrize("fraction", [".1234567", ".5", ".123456789", ",25"], ids=["7", "1", "9", "comma"])
def test_scheduled_time_is_read_with_a_fraction_of_any_length(stack: Stack, fraction: str) -> None:
    """Power Automate's utcNow() writes 7 digits: Python 3.10's fromisoformat read only 3 or 6, so the same request
    was refused on 3.10 and taken on 3.11 (this fails on 3.10 only: `PYTHON=python3.10 scripts/test.sh`)."""
    when = (datetime.now(timezone.utc) + timedelta(hours=2)).replace(microsecond=0)
    text = when.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"

    response = stack.post(
        "/api/calls", {"mode": "callback", "to": "+12125550199", "queueId": DEMO_QUEUE_ID, "scheduledTime": text}
    )

    assert response.status_code == 201, response.text
    assert stack.genesys.requests("callback")[0].json["callbackScheduledTime"] == when.strftime(
        "%Y-%m-%dT%H:%M:%S.000Z"
    )


def test_callback_is_idempotent(stack: Stack) -> None:
    body = {"mode": "callback", "to": "+12125550199", "queueId": DEMO_QUEUE_ID}

    first = stack.post("/api/calls", body, headers={"Idempotency-Key": "cb-1"})
    again = stack.post("/api/calls", body, headers={"Idempotency-Key": "cb-1"})

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(stack.genesys.requests("callback")) == 1


def test_a_callback_whose_time_passed_since_it_was_placed_is_replayed_not_refused(stack: Stack) -> None:
    """`scheduledTime` in the past was refused before the key was looked up: a retry of a callback created just
    before its time (Power Automate retries a timeout) was told 400, a final "invalid", of a callback that exists."""
    when = datetime.now(timezone.utc) - timedelta(seconds=CLOCK_SKEW_SECONDS - 3)  # just inside the allowance
    body = {"mode": "callback", "to": "+12125550199", "queueId": DEMO_QUEUE_ID, "scheduledTime": when.isoformat()}
    placed = stack.post("/api/calls", body, headers={"Idempotency-Key": "callback-at-its-time"})
    past_the_allowance = when + timedelta(seconds=CLOCK_SKEW_SECONDS + 1)
    time.sleep(max(0.0, (past_the_allowance - datetime.now(timezone.utc)).total_seconds()))

    again = stack.post("/api/calls", body, headers={"Idempotency-Key": "callback-at-its-time"})
    fresh = stack.post("/api/calls", body, headers={"Idempotency-Key": "a-new-request"})

    assert placed.status_code == 201, placed.text
    assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (201, "true"), again.text
    assert again.json()["conversationId"] == placed.json()["conversationId"]
    assert (fresh.status_code, fresh.json()["field"]) == (400, "scheduledTime")  # new: still in the past
    assert len(stack.genesys.requests("callback")) == 1


def test_a_queued_callback_whose_time_passed_while_it_waited_is_placed(stack: Stack) -> None:
    """A job accepted before its `scheduledTime` and run after it (a backlog, a cold start, a redelivery) was
    refused 400 at run time: accepted with a 202, it ended "invalid" and no callback was made."""
    when = datetime.now(timezone.utc) - timedelta(seconds=CLOCK_SKEW_SECONDS + 35)
    body = {"mode": "callback", "to": "+12125550199", "queueId": DEMO_QUEUE_ID, "scheduledTime": when.isoformat()}
    accepted_at = (when - timedelta(seconds=5)).timestamp()  # the time was still ahead when the job was accepted

    reply, _ = services().calls.answer(body, None, "job-1", job=JobAttempt(accepted_at, lambda call_key: None, 1))

    assert reply.status == 201, reply.body
    assert len(stack.genesys.requests("callback")) == 1


def test_callback_caller_id_is_checked_before_anything_is_sent(stack: Stack) -> None:
    response = stack.post(
        "/api/calls", {"mode": "callback", "to": "+12125550199", "queueId": DEMO_QUEUE_ID, "from": "+12125550142"}
    )

    assert response.json()["code"] == "caller_id_not_allowed"
    assert stack.genesys.requests("callback") == []


def test_genesys_callback_errors_map_to_the_catalog(stack: Stack) -> None:
    too_far = (datetime.now(timezone.utc) + timedelta(days=90)).isoformat()

    response = stack.post(
        "/api/calls", {"mode": "callback", "to": "+12125550199", "queueId": DEMO_QUEUE_ID, "scheduledTime": too_far}
    )

    assert response.status_code == 422
    assert response.json()["code"] == "genesys_rejected_request"
    assert response.json()["upstream"]["code"] == "callback.error.scheduled.time.too.far.in.future"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mode": "callback", "to": "+12125550199"}, "queueId"),
        ({"mode": "callback", "to": "+12125550199", "queueId": " "}, "queueId"),  # blank is absent, not a 500
        ({"mode": "redial", "to": "+12125550199"}, "mode"),
        (
            {"mode": "callback", "to": "+12125550199", "queueId": DEMO_QUEUE_ID, "scheduledTime": "tomorrow"},
            "scheduledTime",
        ),
        (
            {
                "mode": "callback",
                "to": "+12125550199",
                "queueId": DEMO_QUEUE_ID,
                "scheduledTime": "2030-01-01T10:00:00",
            },
            "scheduledTime",
        ),
        (
            {
                "mode": "callback",
                "to": "+12125550199",
                "queueId": DEMO_QUEUE_ID,
                "scheduledTime": "2001-01-01T10:00:00Z",
            },
            "scheduledTime",
        ),
        *(  # at the end of the calendar: refused as too far ahead, not a date overflow (500)
            (
                {"mode": "callback", "to": "+12125550199", "queueId": DEMO_QUEUE_ID, "scheduledTime": when},
                "scheduledTime",
            )
            for when in ("9999-12-31T23:59:59-01:00", "9999-12-31T03:00:00Z")
        ),
        *(  # at the start of the calendar: refused as in the past, not a date overflow or a 3-digit year (500)
            (
                {"mode": "callback", "to": "+12125550199", "queueId": DEMO_QUEUE_ID, "scheduledTime": when},
                "scheduledTime",
            )
            for when in ("0001-01-01T00:00:00+01:00", "0999-03-04T10:00:00Z")
        ),
        ({"mode": "callback", "to": "+12125550199", "queueId": DEMO_QUEUE_ID, "uuiData": "x"}, "uuiData"),
        ({"to": "+12125550199", "scheduledTime": "2030-01-01T10:00:00Z"}, "scheduledTime"),
    ],
)
def test_invalid_callback_requests(stack: Stack, body: dict, field: str) -> None:
    response = stack.post("/api/calls", body)
    validated = stack.post("/api/calls/validate", body)

    for answer in (response, validated):
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == field
    assert stack.genesys.requests("callback") == []


@pytest.mark.parametrize(
    "body",
    [
        {"to": "+12125550199", "scheduledTime": ""},
        {"to": "+12125550199", "scheduledTime": "  "},
        {"mode": "callback", "to": "+12125550199", "queueId": DEMO_QUEUE_ID, "userId": "", "uuiData": " "},
        {"to": "+12125550199", "statusCallbackUrl": ""},
        {"mode": "callback", "to": "+12125550199", "queueId": DEMO_QUEUE_ID, "statusCallbackUrl": " "},
        {"to": "+12125550199", "attributes": "", "statusCallbackEvents": ""},
    ],
    ids=[
        "call-blank-time",
        "call-spaces-time",
        "callback-blank-call-fields",
        "call-blank-url",
        "callback-blank-url",
        "call-blank-attributes-and-events",
    ],
)
def test_a_blank_field_that_does_not_apply_is_absent_as_every_blank_field_is(stack: Stack, body: dict) -> None:
    """A flow whose column is empty sends "": blank is absent everywhere else, but a call refused a blank
    `scheduledTime` ("applies only to callbacks") or `statusCallbackUrl`, and a callback a blank `userId`."""
    response = stack.post("/api/calls/validate", body)

    assert response.status_code == 200, response.text
