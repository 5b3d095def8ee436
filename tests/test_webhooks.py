"""Signed webhooks, Event Grid and CloudEvents deliveries: the right ones dial once, the rest dial nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import pytest

from emulators.genesys import NO_STATION_USER_ID, Fault
from shared.http import MAX_EVENTS_BYTES
from tests.conftest import Stack, backdate

SECRET = "whsec-test-current"
PREVIOUS = "whsec-test-previous"
CALL = {"to": "(212) 555-0199"}


def raw_signature(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def stamped_signature(body: bytes, secret: str = SECRET, at: int | None = None) -> dict[str, str]:
    t = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Signature": f"t={t},v1={digest}"}


def post_webhook(stack: Stack, body: bytes, headers: dict[str, str]):
    return stack.session.post(
        stack.host.base_url + "/api/webhooks/calls",
        data=body,
        headers={"Content-Type": "application/json", **headers},
        timeout=30,
    )


@pytest.fixture
def signed(stack: Stack, configure) -> Stack:
    configure(WEBHOOK_SECRET=SECRET, WEBHOOK_SECRET_PREVIOUS=PREVIOUS)
    return stack


@pytest.mark.parametrize("sign", [raw_signature, stamped_signature], ids=["sha256", "timestamped"])
def test_signed_webhook_places_the_call(signed: Stack, sign) -> None:
    body = json.dumps(CALL).encode()

    response = post_webhook(signed, body, sign(body))

    assert response.status_code == 201, response.text
    assert signed.creates()[0].json["phoneNumber"] == "+12125550199"


def test_previous_secret_is_accepted_during_rotation(signed: Stack) -> None:
    body = json.dumps(CALL).encode()

    assert post_webhook(signed, body, raw_signature(body, PREVIOUS)).status_code == 201


@pytest.mark.parametrize("sign", [raw_signature, stamped_signature], ids=["sha256", "timestamped"])
def test_a_delivery_signed_again_after_a_rotation_is_the_same_delivery(signed: Stack, sign) -> None:
    """The identity was the signature, so the same bytes signed with the new secret (a sender that re-signs its
    retry, or GitHub's Redeliver, after a rotation) were a new delivery, and the call was placed again."""
    body, at = json.dumps(CALL).encode(), int(time.time())
    stamp = {"at": at} if sign is stamped_signature else {}

    first = post_webhook(signed, body, sign(body, PREVIOUS, **stamp))
    again = post_webhook(signed, body, sign(body, SECRET, **stamp))

    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(signed.creates()) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Signature-256": "sha256=" + "0" * 64},
        {"X-Signature-256": "md5=abc"},
        {"X-Signature": "t=1,v1=" + "0" * 64},
        {"X-Signature": "garbage"},
    ],
    ids=["unsigned", "wrong-digest", "wrong-scheme", "wrong-digest-stamped", "garbage"],
)
def test_bad_or_missing_signature_is_401_and_dials_nothing(signed: Stack, headers: dict[str, str]) -> None:
    response = post_webhook(signed, json.dumps(CALL).encode(), headers)

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_signature"
    assert signed.genesys.requests() == []


def test_wrong_secret_and_tampered_body_are_refused(signed: Stack) -> None:
    body = json.dumps(CALL).encode()

    assert post_webhook(signed, body, raw_signature(body, "not-the-secret")).status_code == 401
    assert post_webhook(signed, body.replace(b"0199", b"0198"), raw_signature(body)).status_code == 401
    assert signed.creates() == []


def test_stale_timestamp_is_refused(signed: Stack) -> None:
    body = json.dumps(CALL).encode()

    response = post_webhook(signed, body, stamped_signature(body, at=int(time.time()) - 301))

    assert response.status_code == 401
    assert "300 s" in response.json()["detail"]


@pytest.mark.parametrize("sign", [raw_signature, stamped_signature], ids=["sha256", "timestamped"])
def test_replayed_signed_request_dials_nothing(signed: Stack, sign) -> None:
    body = json.dumps(CALL).encode()
    headers = sign(body)

    first = post_webhook(signed, body, headers)
    replay = post_webhook(signed, body, headers)

    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert len(signed.creates()) == 1


def test_an_untimed_delivery_redelivered_days_later_dials_nothing(signed: Stack) -> None:
    """GitHub's Redeliver sends a delivery of the past 3 days again (GitHub Enterprise Server: 7), with the same
    signed bytes and no timestamp to refuse it by. Its answer was kept for the 24 h retention, so a redelivery on
    the second day placed the call again."""
    body = json.dumps(CALL).encode()
    headers = raw_signature(body)

    first = post_webhook(signed, body, headers)
    backdate("key:sig:" + hashlib.sha256(body).hexdigest(), 7 * 24 * 3600)  # a week passes
    redelivered = post_webhook(signed, body, headers)

    assert (first.status_code, redelivered.status_code) == (201, 201), redelivered.text
    assert redelivered.headers["Idempotent-Replayed"] == "true"
    assert len(signed.creates()) == 1


def test_webhook_secret_from_key_vault_with_rotation(stack: Stack) -> None:
    stack.vault.set_secret("webhook-secret", SECRET)
    stack.vault.set_secret("webhook-secret-previous", PREVIOUS)
    try:
        body = json.dumps(CALL).encode()
        new = post_webhook(stack, body, raw_signature(body))
        old = post_webhook(
            stack,
            json.dumps({"to": "+12125550198"}).encode(),
            raw_signature(json.dumps({"to": "+12125550198"}).encode(), PREVIOUS),
        )
        assert (new.status_code, old.status_code) == (201, 201)
        assert stack.vault.secret_reads("webhook-secret") == 1
    finally:
        stack.vault.delete_secret("webhook-secret")
        stack.vault.delete_secret("webhook-secret-previous")


def test_a_disabled_previous_secret_retires_it_and_the_current_one_still_verifies(stack: Stack) -> None:
    """Disabling the rotation's previous secret (Key Vault then answers its reads 403 SecretDisabled) is a way to
    retire it: the current secret's deliveries were refused 500 key_vault_forbidden, every one, as if the current
    secret had been revoked, and callbacks could not be signed."""
    stack.vault.set_secret("webhook-secret", SECRET)
    stack.vault.set_secret("webhook-secret-previous", PREVIOUS)
    stack.vault.disable_secret("webhook-secret-previous")
    try:
        current = [
            post_webhook(stack, body, raw_signature(body))
            for body in (json.dumps({"to": f"+1212555019{digit}"}).encode() for digit in range(3))
        ]
        old_body = json.dumps({"to": "+12125550188"}).encode()
        old = post_webhook(stack, old_body, raw_signature(old_body, PREVIOUS))

        assert [response.status_code for response in current] == [201, 201, 201], current[0].text
        assert old.status_code == 401  # the previous secret is no longer in force
        previous_reads = [
            entry for entry in stack.vault.requests() if entry["path"].startswith("/secrets/webhook-secret-previous")
        ]
        assert len(previous_reads) <= 2, "a disabled secret was read for every delivery"  # the first, the re-read
    finally:
        stack.vault.delete_secret("webhook-secret")
        stack.vault.delete_secret("webhook-secret-previous")


def test_no_webhook_secret_anywhere_is_secret_not_found(stack: Stack) -> None:
    body = json.dumps(CALL).encode()

    response = post_webhook(stack, body, raw_signature(body))

    assert response.status_code == 500
    assert response.json()["code"] == "secret_not_found"
    assert stack.genesys.requests("create_call") == []


# ---- Event Grid and CloudEvents -------------------------------------------------------------------


def post_events(stack: Stack, body: object, content_type: str = "application/json", **headers: str):
    return stack.session.post(
        stack.host.base_url + "/api/events/calls",
        data=json.dumps(body).encode(),
        headers={"Content-Type": content_type, **headers},
        timeout=30,
    )


EVENT_TOPIC = (
    "/subscriptions/0d9b7a4e-1111-4c2d-9e8f-123456789abc/resourceGroups/rg/providers/Microsoft.EventGrid/topics/calls"
)


def event_grid(data: object, event_id: str | None = None, topic: str = EVENT_TOPIC) -> dict:
    return {
        "id": event_id or str(uuid.uuid4()),
        "topic": topic,
        "eventType": "Acme.Calls.Requested",
        "subject": "calls",
        "eventTime": "2026-11-22T08:00:00Z",
        "dataVersion": "1",
        "data": data,
    }


def test_event_grid_subscription_validation_handshake(stack: Stack) -> None:
    validation = {
        "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66",
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "subject": "",
        "eventTime": "2026-11-22T08:00:00Z",
        "dataVersion": "2",
        "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6", "validationUrl": "https://example.invalid"},
    }

    response = post_events(stack, [validation], **{"aeg-event-type": "SubscriptionValidation"})

    assert response.status_code == 200
    assert response.json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    assert stack.genesys.requests() == []


def test_event_grid_event_places_one_call_even_when_redelivered(stack: Stack) -> None:
    event = event_grid(CALL)

    first = post_events(stack, [event], **{"aeg-event-type": "Notification"})
    again = post_events(stack, [event], **{"aeg-event-type": "Notification"})

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(stack.creates()) == 1


def test_two_topics_may_use_one_event_id(stack: Stack) -> None:
    """A custom topic's publisher picks the ids: the same id from another topic is another event."""
    ours = event_grid({"to": "+12125550199"}, event_id="order-1")
    theirs = event_grid({"to": "+12125550198"}, event_id="order-1", topic=EVENT_TOPIC.replace("calls", "orders"))

    answers = [post_events(stack, [event], **{"aeg-event-type": "Notification"}) for event in (ours, theirs, ours)]

    assert [a.status_code for a in answers] == [201, 201, 201], answers[1].text
    assert answers[2].headers["Idempotent-Replayed"] == "true"
    assert [create.json["phoneNumber"] for create in stack.creates()] == ["+12125550199", "+12125550198"]


def test_event_grid_batch_answers_per_event(stack: Stack) -> None:
    batch = [event_grid({"to": "+12125550199"}), event_grid({"to": "+12125550198"}), event_grid({"to": "911"})]

    response = post_events(stack, batch)

    assert response.status_code == 400  # one event can never succeed: dead-letter, not retry
    assert [r["status"] for r in response.json()["results"]] == [201, 201, 403]
    assert len(stack.creates()) == 2


def test_cloudevents_abuse_protection_handshake(stack: Stack) -> None:
    response = stack.session.options(
        stack.host.base_url + "/api/events/calls", headers={"WebHook-Request-Origin": "eventgrid.azure.net"}, timeout=30
    )

    assert response.status_code == 200
    assert response.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    assert "POST" in response.headers["Allow"]


def test_cloudevents_structured_mode_places_one_call_per_event_id(stack: Stack) -> None:
    event = {"specversion": "1.0", "id": "evt-1", "source": "/crm/orders", "type": "acme.call", "data": CALL}

    first = post_events(stack, event, "application/cloudevents+json; charset=utf-8")
    again = post_events(stack, event, "application/cloudevents+json; charset=utf-8")
    other_source = post_events(stack, {**event, "source": "/crm/other"}, "application/cloudevents+json")

    assert (first.status_code, again.status_code, other_source.status_code) == (201, 201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(stack.creates()) == 2  # CloudEvents identity is source + id


def test_a_structured_cloudevent_is_read_as_structured_whatever_ce_headers_came_with_it(stack: Stack) -> None:
    """The Content-Type decides the mode (CloudEvents HTTP binding, section 3): `ce-*` headers a proxy left on a
    structured event do not make its envelope the call request."""
    event = {"specversion": "1.0", "id": "evt-2", "source": "/crm/orders", "type": "acme.call", "data": CALL}
    stray = {"ce-specversion": "1.0", "ce-id": "proxy-1", "ce-source": "/proxy"}

    response = post_events(stack, event, "application/cloudevents+json", **stray)
    again = post_events(stack, event, "application/cloudevents+json")

    assert response.status_code == 201, response.text
    assert again.headers["Idempotent-Replayed"] == "true"  # its identity is the event's source and id
    assert len(stack.creates()) == 1


def test_cloudevents_binary_mode(stack: Stack) -> None:
    headers = {"ce-specversion": "1.0", "ce-id": "evt-9", "ce-source": "/crm", "ce-type": "acme.call"}

    response = post_events(stack, CALL, **headers)

    assert response.status_code == 201, response.text
    assert len(stack.creates()) == 1


def test_a_binary_cloudevent_is_the_same_event_as_its_structured_form(stack: Stack) -> None:
    """Binary mode carries attributes percent-encoded (HTTP binding 3.1.3.2): read as sent, `order%2042` was another
    event than `order 42`, and the same event sent both ways placed two calls."""
    structured = {"specversion": "1.0", "id": "order 42", "source": "/crm/é", "type": "acme.call", "data": CALL}
    binary = {"ce-specversion": "1.0", "ce-id": "order%2042", "ce-source": "/crm/%C3%A9", "ce-type": "acme.call"}

    first = post_events(stack, structured, "application/cloudevents+json")
    again = post_events(stack, CALL, **binary)

    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(stack.creates()) == 1


def test_a_validation_event_beside_other_events_answers_for_none_of_them(stack: Stack) -> None:
    """Event Grid sends its handshake alone: beside a call it answered the handshake, and the call was dropped."""
    validation = {
        "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e67",
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"},
    }

    response = post_events(stack, [event_grid(CALL), validation])

    assert "validationResponse" not in response.json()
    assert [result["status"] for result in response.json()["results"]] == [201, 400]
    assert len(stack.creates()) == 1


def test_an_event_grid_batch_of_its_largest_size_is_placed(stack: Stack) -> None:
    """Event Grid batches up to 1 MB (preferredBatchSizeInKilobytes 1024): one over the route's old 256 KiB was
    answered 413 and dead-lettered, every call in it unplaced."""
    attributes = {f"note{n}": "x" * 1000 for n in range(8)}  # under the attributes' 8 KiB in all
    events = [event_grid({"to": f"+1212555{n:04d}", "attributes": attributes}) for n in range(40)]
    body = json.dumps(events).encode()
    assert 256 * 1024 < len(body) < MAX_EVENTS_BYTES

    response = stack.session.post(
        stack.host.base_url + "/api/events/calls", data=body, headers={"Content-Type": "application/json"}, timeout=60
    )

    assert response.status_code == 200, response.text[:500]
    assert len(stack.creates()) == 40


def test_cloudevents_batch_mode(stack: Stack) -> None:
    events = [
        {"specversion": "1.0", "id": f"b-{i}", "source": "/crm", "type": "acme.call", "data": {"to": f"+1212555010{i}"}}
        for i in range(3)
    ]

    response = post_events(stack, events, "application/cloudevents-batch+json")

    assert response.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == [201, 201, 201]


@pytest.mark.parametrize(
    ("body", "content_type", "headers"),
    [
        ({"not": "an array"}, "application/json", {}),
        ([], "application/json", {}),
        ([{"eventType": "x", "data": CALL}], "application/json", {}),
        ({"specversion": "0.3", "id": "a", "source": "b", "data": CALL}, "application/cloudevents+json", {}),
        (CALL, "application/json", {"ce-specversion": "1.0"}),
        ([event_grid("not an object")], "application/json", {}),
        (CALL, "application/json", {"ce-specversion": "1.0", "ce-id": "x" * 257, "ce-source": "/crm"}),
        (CALL, "application/json", {"ce-specversion": "1.0", "ce-id": "order%ff", "ce-source": "/crm"}),
    ],
    ids=[
        *("object", "empty", "no-id", "old-spec", "binary-no-id", "data-not-object"),
        *("binary-id-long", "binary-id-not-utf8"),
    ],
)
def test_malformed_deliveries_are_4xx_and_dial_nothing(stack: Stack, body, content_type, headers) -> None:
    response = post_events(stack, body, content_type, **headers)

    assert 400 <= response.status_code < 500
    assert response.json()["code"] == "validation_failed"
    assert stack.creates() == []


# ---- Trust: what a captured delivery can and cannot do ----------------------------------------------


@pytest.mark.parametrize("sign", [raw_signature, stamped_signature], ids=["sha256", "timestamped"])
def test_a_captured_delivery_with_a_new_unsigned_key_is_still_a_replay(signed: Stack, sign) -> None:
    body = json.dumps(CALL).encode()
    headers = sign(body)

    first = post_webhook(signed, body, {**headers, "Idempotency-Key": "original"})
    replays = [post_webhook(signed, body, {**headers, "Idempotency-Key": f"forged-{n}"}) for n in range(3)]

    assert first.status_code == 201
    assert [r.status_code for r in replays] == [201, 201, 201]
    assert all(r.headers["Idempotent-Replayed"] == "true" for r in replays)
    assert len(signed.creates()) == 1


def test_require_timestamp_refuses_the_untimed_scheme(signed: Stack, configure) -> None:
    configure(WEBHOOK_SECRET=SECRET, WEBHOOK_REQUIRE_TIMESTAMP="true")
    body = json.dumps(CALL).encode()

    untimed = post_webhook(signed, body, raw_signature(body))
    timed = post_webhook(signed, body, stamped_signature(body))

    assert untimed.status_code == 401
    assert untimed.json()["code"] == "invalid_signature"
    assert "WEBHOOK_REQUIRE_TIMESTAMP" in untimed.json()["detail"]
    assert timed.status_code == 201
    assert len(signed.creates()) == 1


def test_a_delivery_over_the_event_limit_places_nothing(stack: Stack, configure) -> None:
    configure(MAX_EVENTS_PER_DELIVERY="3")
    events = [
        {"specversion": "1.0", "id": f"many-{i}", "source": "/crm", "type": "acme.call", "data": CALL} for i in range(4)
    ]

    cloudevents = post_events(stack, events, "application/cloudevents-batch+json")
    event_grid_batch = post_events(stack, [event_grid(CALL) for _ in range(4)])

    for response in (cloudevents, event_grid_batch):
        assert response.status_code == 413
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert response.json()["code"] == "too_many_events"
    assert stack.creates() == []


def test_three_hundred_events_by_default_place_nothing(stack: Stack) -> None:
    events = [
        {
            "specversion": "1.0",
            "id": f"flood-{i}",
            "source": "/crm",
            "type": "acme.call",
            "data": {"to": "+12125550199"},
        }
        for i in range(300)
    ]

    response = post_events(stack, events, "application/cloudevents-batch+json")

    assert response.status_code == 413
    assert stack.creates() == []


def test_an_event_that_can_never_succeed_is_400_so_event_grid_dead_letters_it(stack: Stack) -> None:
    response = post_events(stack, [event_grid({"to": "+12125550199", "from": "+15005550006"})])

    assert response.status_code == 400
    assert response.json()["code"] == "caller_id_not_allowed"
    assert response.json()["eventStatus"] == 422
    assert stack.creates() == []


def test_a_user_without_a_station_is_400_though_genesys_said_409(stack: Stack) -> None:
    # 409 genesys_no_station is not retryable: redelivering it for a day would only ask Genesys again, or dial
    # hours late once someone gives the user a phone.
    response = post_events(stack, [event_grid({**CALL, "userId": NO_STATION_USER_ID})])

    assert response.status_code == 400
    assert response.json()["code"] == "genesys_no_station"
    assert response.json()["eventStatus"] == 409
    assert len(stack.creates()) == 1  # asked once, refused: nothing rang


def test_a_retryable_event_failure_keeps_503_with_retry_after(stack: Stack) -> None:
    stack.genesys.inject("token", *[Fault(status=503)] * 3)

    response = post_events(stack, [event_grid(CALL)])

    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert stack.creates() == []


def test_a_batch_with_a_failure_is_not_labelled_a_problem(stack: Stack) -> None:
    response = post_events(stack, [event_grid(CALL), event_grid({"to": "911"})])

    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/json")
    assert "results" in response.json()


def test_cloudevents_data_base64_and_data_as_a_json_string(stack: Stack) -> None:
    encoded = base64.b64encode(json.dumps({"to": "+12125550199"}).encode()).decode()
    events = [
        {"specversion": "1.0", "id": "b64", "source": "/crm", "type": "acme.call", "data_base64": encoded},
        {"specversion": "1.0", "id": "str", "source": "/crm", "type": "acme.call", "data": json.dumps(CALL)},
    ]

    response = post_events(stack, events, "application/cloudevents-batch+json")

    assert response.status_code == 200, response.text
    assert sorted(c.json["phoneNumber"] for c in stack.creates()) == ["+12125550199", "+12125550199"]


@pytest.mark.parametrize(
    ("content_type", "body", "code"),
    [
        ("text/plain", [{"id": "e-1", "data": CALL}], "unsupported_media_type"),
        ("application/json", "not an event", "validation_failed"),
    ],
)
def test_a_delivery_that_can_never_succeed_is_answered_400(
    stack: Stack, content_type: str, body: object, code: str
) -> None:
    """Event Grid dead-letters a 400 and retries anything else but 413, 401 and 403 for a day: a wrong Content-Type
    answered 415 came back on that schedule, to be refused each time."""
    response = post_events(stack, body, content_type)

    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
    assert stack.creates() == []


def test_binary_cloudevent_from_the_official_sdk_without_content_type(stack: Stack) -> None:
    from cloudevents.conversion import to_binary
    from cloudevents.http import CloudEvent

    event = CloudEvent({"type": "acme.call", "source": "/crm", "id": "sdk-1"}, CALL)
    headers, body = to_binary(event)
    assert "content-type" not in {name.lower() for name in headers}

    response = stack.session.post(stack.host.base_url + "/api/events/calls", data=body, headers=headers, timeout=30)

    assert response.status_code == 201, response.text
    assert len(stack.creates()) == 1


@pytest.mark.parametrize("event_id", ["x" * 256, "évènement-1", "tab\there"], ids=["256-chars", "non-ascii", "tab"])
def test_any_event_id_the_senders_allow_is_an_identity(stack: Stack, event_id: str) -> None:
    event = {"specversion": "1.0", "id": event_id, "source": "/crm", "type": "acme.call", "data": CALL}

    first = post_events(stack, event, "application/cloudevents+json")
    again = post_events(stack, event, "application/cloudevents+json")

    assert (first.status_code, again.status_code) == (201, 201), first.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(stack.creates()) == 1


def test_source_and_id_cannot_be_confused_across_the_separator(stack: Stack) -> None:
    one = {"specversion": "1.0", "id": "c", "source": "a:b", "type": "acme.call", "data": CALL}
    other = {**one, "id": "b:c", "source": "a"}

    answers = [post_events(stack, event, "application/cloudevents+json") for event in (one, other)]

    assert [a.status_code for a in answers] == [201, 201]
    assert "Idempotent-Replayed" not in answers[1].headers
    assert len(stack.creates()) == 2


def test_an_unreadable_event_in_a_batch_fails_alone(stack: Stack) -> None:
    good = {"specversion": "1.0", "id": "ok-1", "source": "/crm", "type": "acme.call", "data": CALL}
    bad = {"specversion": "1.0", "id": "bad-1", "source": "/crm", "type": "acme.call", "data_base64": "%%%"}

    response = post_events(stack, [good, bad], "application/cloudevents-batch+json")

    assert response.status_code == 400  # the bad one can never succeed; the good one was placed
    results = response.json()["results"]
    assert [(r["id"], r["status"]) for r in results] == [("ok-1", 201), (None, 400)]
    assert results[1]["body"]["field"] == "data_base64"
    assert len(stack.creates()) == 1


def test_two_signature_schemes_on_one_delivery_are_refused(signed: Stack) -> None:
    body = json.dumps(CALL).encode()

    response = post_webhook(signed, body, {**raw_signature(body), **stamped_signature(body)})

    assert response.status_code == 401
    assert "two signature schemes" in response.json()["detail"]
    assert signed.creates() == []
