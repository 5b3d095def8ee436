"""Azure Event Grid and CloudEvents 1.0 deliveries (`POST`/`OPTIONS /api/events/calls`).

Each event carries one of our call requests; a digest of its topic and id (Event Grid) or source and id
(CloudEvents) is the idempotency key, so a redelivered event replays the first answer and never dials again.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from shared.errors import Problem
from shared.http import media_type_of, parse_json
from shared.idempotency import Reply
from shared.webhooks.redelivery import for_event_sender
from shared.webhooks.signed import delivery_key

BATCH_BUDGET_SECONDS = 20.0  # under Event Grid's 30 s wait for an answer
VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
MAX_ATTRIBUTE_LENGTH = 256  # an event's id and a CloudEvent's source, structured or binary


@dataclass(frozen=True)
class Event:
    key: str  # idempotency key: a digest of the event's identity
    event_id: str | None  # as the sender named it, for the batch's results
    data: Any
    problem: Problem | None = None  # an event of a batch that could not be read: it alone fails


@dataclass(frozen=True)
class Delivery:
    """What a POST to the events route carried: a subscription handshake or events to act on."""

    validation_code: str | None
    events: list[Event]


def abuse_protection(headers: Mapping[str, str]) -> dict[str, str]:
    """CloudEvents webhook validation (OPTIONS): consent to deliveries from the asking origin."""
    origin = headers.get("webhook-request-origin")
    if not origin:
        raise Problem(
            "validation_failed", "An OPTIONS handshake needs WebHook-Request-Origin.", field="WebHook-Request-Origin"
        )
    return {"WebHook-Allowed-Origin": origin[:256], "WebHook-Allowed-Rate": "*", "Allow": "POST, OPTIONS"}


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Problem("validation_failed", f"Each {what} must be a JSON object.")
    return value


def _text_of(event: dict[str, Any], name: str, what: str) -> str:
    value = event.get(name)
    if not isinstance(value, str) or not value or len(value) > MAX_ATTRIBUTE_LENGTH:
        raise Problem("validation_failed", f"The {what} has no usable '{name}'.", field=name)
    return value


def is_binary_cloudevent(headers: Mapping[str, str]) -> bool:
    """CloudEvents binary mode: attributes in `ce-*` headers, the body is the data (Content-Type optional).

    The Content-Type decides first (the HTTP binding, section 3): an `application/cloudevents` one is structured
    or batched mode, whatever `ce-*` headers a proxy left on the request.
    """
    media_type = media_type_of(headers)
    return bool(headers.get("ce-specversion")) and not media_type.startswith("application/cloudevents")


def read_delivery(headers: Mapping[str, str], body: bytes, max_events: int) -> Delivery:
    """Understand an Event Grid (its own schema) or CloudEvents 1.0 (structured, batch, binary) delivery.

    More than `max_events` events is `too_many_events` before any is acted on: one delivery must not be
    able to place hundreds of calls.
    """
    media_type = media_type_of(headers)
    if is_binary_cloudevent(headers):
        if headers["ce-specversion"] != "1.0":
            raise Problem("validation_failed", "Only CloudEvents specversion 1.0 is supported.", field="ce-specversion")
        event_id, source = _header_attribute(headers, "ce-id"), _header_attribute(headers, "ce-source")
        if not event_id or not source:
            raise Problem("validation_failed", "A binary CloudEvent needs ce-id and ce-source.", field="ce-id")
        return Delivery(None, [Event(delivery_key("ce", source, event_id), event_id, parse_json(body))])

    document = parse_json(body)
    items = document if isinstance(document, list) else [document]
    if len(items) > max_events:
        raise Problem(
            "too_many_events",
            f"The delivery holds {len(items)} events; the limit is {max_events} (MAX_EVENTS_PER_DELIVERY).",
        )
    if media_type.startswith("application/cloudevents"):
        return Delivery(None, _each(items, _cloudevent))

    if not isinstance(document, list) or not document:
        raise Problem("validation_failed", "An Event Grid delivery is a non-empty JSON array of events.")
    handshake = document[0]
    if len(document) == 1 and isinstance(handshake, dict) and handshake.get("eventType") == VALIDATION_EVENT:
        # Event Grid sends it alone; beside other events it would answer for them, and they would be dropped
        code = _object(handshake.get("data"), "validation event's data").get("validationCode")
        if not isinstance(code, str) or not code:
            raise Problem("validation_failed", "The validation event has no validationCode.")
        return Delivery(code, [])
    return Delivery(None, _each(items, _event_grid_event))


def _header_attribute(headers: Mapping[str, str], name: str) -> str | None:
    """A binary CloudEvent's attribute as its header carries it, percent-encoded (HTTP binding 3.1.3.2): `order 42`
    arrives as `order%2042`, and must be the same event as a structured one whose id is `order 42`."""
    value = headers.get(name)
    if not value:
        return None
    try:
        decoded = unquote(value, errors="strict")
    except UnicodeDecodeError:
        raise Problem("validation_failed", f"{name} is not percent-encoded UTF-8.", field=name) from None
    if len(decoded) > MAX_ATTRIBUTE_LENGTH:
        raise Problem("validation_failed", f"{name} is longer than {MAX_ATTRIBUTE_LENGTH} characters.", field=name)
    return decoded


def _each(items: list[Any], read: Callable[[Any], Event]) -> list[Event]:
    """Read every event; in a batch an unreadable event fails alone, so the others are still placed."""
    if len(items) == 1:
        return [read(items[0])]  # one event answers as itself: its problem is the delivery's
    events = []
    for index, item in enumerate(items):
        try:
            events.append(read(item))
        except Problem as problem:
            events.append(Event(f"unreadable:{index}", None, None, problem))
    return events


def _cloudevent(item: Any) -> Event:
    event = _object(item, "CloudEvent")
    if event.get("specversion") != "1.0":
        raise Problem("validation_failed", "Only CloudEvents specversion 1.0 is supported.", field="specversion")
    source, event_id = _text_of(event, "source", "CloudEvent"), _text_of(event, "id", "CloudEvent")
    return Event(delivery_key("ce", source, event_id), event_id, _cloudevent_data(event))


def _event_grid_event(item: Any) -> Event:
    """Its identity is its topic and id, as a CloudEvent's is its source and id: a custom topic's publisher picks
    the ids, so two topics may use the same one. Event Grid sets `topic`; a publisher cannot."""
    event = _object(item, "Event Grid event")
    event_id = _text_of(event, "id", "Event Grid event")
    topic = event.get("topic")
    return Event(delivery_key("eg", topic if isinstance(topic, str) else "", event_id), event_id, event.get("data"))


def _cloudevent_data(event: dict[str, Any]) -> Any:
    """The event's data in the JSON format: `data` (an object, or a string holding JSON) or `data_base64`."""
    if "data_base64" in event:
        encoded = event["data_base64"]
        try:
            if not isinstance(encoded, str):
                raise ValueError("not a string")
            decoded = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error):
            raise Problem("validation_failed", "data_base64 is not base64.", field="data_base64") from None
        return parse_json(decoded)
    data = event.get("data")
    if isinstance(data, str):
        try:
            return parse_json(data.encode("utf-8"))
        except (Problem, UnicodeEncodeError):
            raise Problem(
                "validation_failed", "data is a string that does not hold a JSON object.", field="data"
            ) from None
    return data


def answer_events(
    events: list[Event],
    answer: Callable[[Any, str], tuple[Reply, bool]],
    request_id: str,
    *,
    budget_seconds: float = BATCH_BUDGET_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[Reply, bool]:
    """Act on each event once; one event answers as itself, a batch as 200, 503 (retry) or 400 (dead-letter).

    Event Grid waits 30 s for an answer, then delivers again: past `budget_seconds` no further event is
    started; those answer 503 and come back with the redelivery (the ones done by then replay).
    """
    started = clock()
    answers: list[tuple[Event, Reply, bool]] = []
    for event in events:
        if event.problem is not None:
            answers.append((event, Reply.of_problem(event.problem, request_id), False))
        elif clock() - started > budget_seconds:
            later = Problem("request_in_progress", "Not started: the delivery's time ran out; deliver it again.")
            answers.append((event, Reply.of_problem(later, request_id), False))
        else:
            answers.append((event, *answer(event.data, event.key)))
    if len(answers) == 1:
        return for_event_sender(answers[0][1]), answers[0][2]
    statuses = [for_event_sender(reply).status for _, reply, _ in answers]
    if all(status < 400 for status in statuses):
        status = 200
    elif any(status == 429 or status >= 500 for status in statuses):
        status = 503  # Event Grid redelivers the batch; the events already done replay
    else:
        status = 400
    results = [
        {"id": event.event_id, "key": event.key, "status": reply.status, "body": reply.body}
        for event, reply, _ in answers
    ]
    return Reply(status, {"results": results}, {"Retry-After": "5"} if status == 503 else {}), False
