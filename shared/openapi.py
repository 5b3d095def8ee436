"""The Swagger 2.0 (OpenAPI 2.0) document of the HTTP API: one source of truth for what the app serves at
`GET /api/openapi.json` and for the Power Automate custom connector (`connector/apiDefinition.swagger.json`,
written by `scripts/export-connector.sh`).

Power Automate imports only Swagger 2.0 and follows its own conventions: PascalCase `operationId`, a `summary`
and a `description` ending in a period on every operation, `x-ms-summary` (Title Case) on parameters and
fields, `x-ms-visibility` (`important`, `advanced`, `internal`). What the code already knows (field limits,
modes, catalog codes and their statuses, header formats) is read from the code, so the document cannot drift
from it; `tests/test_openapi.py` checks the rest against the routes and against the live app.
"""

from __future__ import annotations

import json
import re
from typing import Any

from shared.async_requests import PENDING
from shared.call_status import OUTCOME_CODES, STATUSES
from shared.calls import (
    MAX_ATTRIBUTE_KEY_LENGTH,
    MAX_ATTRIBUTE_VALUE_LENGTH,
    MAX_ATTRIBUTES,
    MAX_ATTRIBUTES_BYTES,
    MAX_NUMBER_LENGTH,
    MAX_TEXT_LENGTH,
    MAX_UUI_LENGTH,
    MODES,
    REGION_CODE,
)
from shared.errors import CATALOG, DEFAULT_RETRY_AFTER_SECONDS, PROBLEM_TYPE_BASE
from shared.http import CLIENT_REQUEST_ID, MAX_BODY_BYTES, MAX_EVENTS_BYTES
from shared.idempotency import MAX_KEY_LENGTH
from shared.ids import UUID
from shared.phone import REASON_TEXT, TYPE_NAMES
from shared.policy.calling_hours import SEARCH_DAYS
from shared.readiness import NOT_READY_RETRY_AFTER_SECONDS
from shared.status_callbacks.delivery import DELIVERED, UNDELIVERABLE
from shared.status_callbacks.delivery import PENDING as DELIVERY_PENDING
from shared.status_callbacks.subscriptions import NOTIFICATION_FIELD
from shared.status_callbacks.targets import DEFAULT_EVENTS, EVENTS, EVENTS_FIELD, MAX_URL_LENGTH, URL_FIELD
from shared.webhooks import event_status, sns_status
from shared.webhooks.hmac_signatures import RAW_SIGNATURE, SIGNATURE_TOLERANCE_SECONDS, TIMESTAMPED_SIGNATURE
from shared.webhooks.signed import DELIVERY_SCHEMES
from shared.webhooks.sns import MESSAGE_TYPE_HEADER, SIGNED_FIELDS, SUBSCRIBE, UNSUBSCRIBE
from shared.webhooks.standard_webhooks import (
    ID_HEADER,
    MAX_ID_LENGTH,
    SIGNATURE_HEADER,
    TIMESTAMP,
    TIMESTAMP_HEADER,
    TOLERANCE_SECONDS,
)

DEFAULT_HOST = "your-function-app.azurewebsites.net"  # set to the function app's host when importing the connector
# Certification asks who answers for the connector: the publisher replaces these before submitting it
# (connector/README.md, "Certification"). The title names what the connector does, not a third-party product.
TITLE = "Outbound Call Placer"
CONTACT = {
    "name": "Outbound call function maintainers",
    "url": "https://example.com/support",
    "email": "support@example.com",
}
WEBSITE = "https://example.com/outbound-calls"
PRIVACY_POLICY = "https://example.com/privacy"
CATEGORIES = "Communication;IT Operations"
JSON, PROBLEM_JSON = "application/json", "application/problem+json"

# Which catalog codes each operation can answer as a problem (its HTTP status comes from the catalog).
_INPUT = ("invalid_json", "unsupported_media_type", "payload_too_large", "validation_failed", "invalid_phone_number")
_POLICY = (
    "user_not_allowed",
    "queue_not_allowed",
    "destination_not_allowed",
    "do_not_call",
    "outside_calling_hours",
    "call_limit_reached",
    "caller_id_required",
    "caller_id_not_allowed",
    "callback_url_not_allowed",
)
_GENESYS = tuple(code for code in CATALOG if code.startswith("genesys_"))  # every answer Genesys can be mapped to
_SERVER = ("key_vault_unavailable", "key_vault_forbidden", "secret_not_found", "configuration_error", "internal_error")
_ONCE = ("idempotency_key_reused", "request_in_progress", "idempotency_store_unavailable")
_PLACE = (*_INPUT, *_POLICY, *_GENESYS, *_SERVER, *_ONCE)
_DO_NOT_CALL_SERVER = ("idempotency_store_unavailable", "configuration_error", "internal_error")
PROBLEM_CODES: dict[str, tuple[str, ...]] = {
    "PlaceCall": _PLACE,
    "ValidateCall": (*_INPUT, *_POLICY, *_GENESYS, *_SERVER, "idempotency_store_unavailable"),  # the list, the cap
    "GetCallStatus": ("validation_failed", "user_not_allowed", "queue_not_allowed", *_GENESYS, *_SERVER),
    # The stored final answer of an asynchronous request: what placing the call met when the queue ran it.
    "GetCallRequest": ("request_not_found", *(c for c in _PLACE if c not in _INPUT[:3])),
    "ReceiveSignedWebhook": (*_PLACE, "invalid_signature"),
    "ReceiveSnsMessage": (*_PLACE, "invalid_signature", "signing_keys_unavailable"),
    "ReceivePubSubPush": (*_PLACE, "invalid_signature", "signing_keys_unavailable"),
    "ReceiveEvents": (*_PLACE, "too_many_events"),
    "ValidateEventsSubscription": ("validation_failed", "internal_error"),
    # A number that can never be dialed (emergency, short code) is named so on the list's routes too.
    "PutDoNotCall": (
        "invalid_json",
        "unsupported_media_type",
        "payload_too_large",
        "validation_failed",
        "invalid_phone_number",
        "destination_not_allowed",
        *_DO_NOT_CALL_SERVER,
    ),
    "GetDoNotCall": ("validation_failed", "invalid_phone_number", "destination_not_allowed", *_DO_NOT_CALL_SERVER),
    "DeleteDoNotCall": ("validation_failed", "invalid_phone_number", "destination_not_allowed", *_DO_NOT_CALL_SERVER),
    "GetHealth": ("internal_error",),
    "GetReadiness": ("internal_error",),
    "GetOpenApi": ("internal_error",),
    "WhenCallEnds": (
        "invalid_json",
        "unsupported_media_type",
        "payload_too_large",
        "validation_failed",
        "callback_url_not_allowed",
        "too_many_subscriptions",
        "idempotency_store_unavailable",
        "configuration_error",
        "internal_error",
    ),
    "DeleteSubscription": ("idempotency_store_unavailable", "configuration_error", "internal_error"),
}
_WAIT_STATUSES = (409, 429, 503, 504)  # problems that can carry Retry-After (always on 429 and 503)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/definitions/{name}"}


def _ecma(pattern: re.Pattern[str]) -> str:
    """A Python pattern as a JSON Schema (ECMA 262) one: named groups become plain groups."""
    return re.sub(r"\(\?P<\w+>", "(", pattern.pattern)


def _field(kind: str | None, summary: str, description: str, **more: Any) -> dict[str, Any]:
    """A schema property (or parameter body) with Power Automate's Title Case `x-ms-summary`."""
    field: dict[str, Any] = {"type": kind} if kind else {}
    field.update({"x-ms-summary": summary, "description": description})
    for name, value in more.items():
        field[{"nullable": "x-nullable", "visibility": "x-ms-visibility"}.get(name, name)] = value
    return field


def _header(name: str, summary: str, description: str, visibility: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, "type": "string", **more} | {
        "x-ms-summary": summary,
        "description": description,
        "x-ms-visibility": visibility,
    }


# --- Parameters ----------------------------------------------------------------------------------------------

REQUEST_ID_PARAMETER = _header(
    "X-Request-Id",
    "Request ID",
    "Your id for this request (1-64 letters, digits, '.', '_' or '-'); it is echoed in X-Request-Id, in "
    "'requestId' and in every log line. Anything else is replaced by a fresh UUID.",
    "advanced",
    pattern=CLIENT_REQUEST_ID.pattern,
    maxLength=64,
)
IDEMPOTENCY_KEY_PARAMETER = _header(
    "Idempotency-Key",
    "Idempotency Key",
    f"1-{MAX_KEY_LENGTH} printable ASCII characters but a comma, naming this call: the same key with the same call "
    "answers the first answer again and never dials twice. In a flow, use the run id: @{workflow()['run']['name']}. "
    f"Not starting with {', '.join(f'{scheme}:' for scheme in DELIVERY_SCHEMES)} (signed deliveries' keys).",
    "advanced",
    minLength=1,
    maxLength=MAX_KEY_LENGTH,
    pattern=f"^[ -+\\--~]{{1,{MAX_KEY_LENGTH}}}$",  # no comma: the host joins a repeated header with commas
)
PREFER_PARAMETER = _header(
    "Prefer",
    "Prefer",
    "respond-async: check the request now, answer 202 with a Location to poll, and place the call from a "
    "queue (Power Automate's asynchronous pattern).",
    "advanced",
    enum=["respond-async"],
)


def _body(schema: dict[str, Any], summary: str, description: str) -> dict[str, Any]:
    return {
        "name": "body",
        "in": "body",
        "required": True,
        "schema": schema,
        "x-ms-summary": summary,
        "description": description,
    }


def _path(name: str, summary: str, description: str, **more: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "type": "string",
        "x-ms-summary": summary,
        "description": description,
        "x-ms-visibility": "important",
        # The value is encoded once, as when it is absent; the Swagger Validator asks that it be said
        "x-ms-url-encoding": "single",
        **more,
    }


CALL_REQUEST_BODY = _body(
    _ref("CallRequest"), "Call Request", f"The call to place (a JSON object of at most {MAX_BODY_BYTES // 1024} KiB)."
)

# --- Definitions ---------------------------------------------------------------------------------------------

_GENESYS_ID_FIELD = {"pattern": UUID.pattern, "maxLength": 36}


def _understood_number() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "How the number was read.",
        "required": ["e164", "region"],
        "additionalProperties": False,
        "properties": {
            "e164": _field("string", "E.164", "The number in E.164, as sent to Genesys Cloud.", example="+12125550199"),
            "region": _field("string", "Region", "The number's ISO country code, when it has one.", nullable=True),
            "type": _field(
                "string",
                "Number Type",
                "The kind of number, as libphonenumber classifies it.",
                enum=sorted({*TYPE_NAMES.values(), "unknown"}),
            ),
            "other": _field(
                "string",
                "Other Reading",
                "invalid_phone_number, reason ambiguous: the other valid number the text reads as (E.164).",
            ),
        },
    }


def _understood() -> dict[str, Any]:
    return _field(
        "object",
        "Understood",
        "What the function understood of the numbers it was given.",
        required=["to"],
        additionalProperties=False,
        properties={"to": _ref("UnderstoodNumber")},
    )


def _call_request() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "A call to place: only 'to' is required. Unknown fields are refused.",
        "required": ["to"],
        "additionalProperties": False,
        "example": {"to": "(212) 555-0199", "from": "+13175550105", "attributes": {"invoice": "A-1017"}},
        "properties": {
            "to": _field(
                "string",
                "To",
                "The number to call, in any common format: +1 212-555-0199, (212) 555-0199, tel:+12125550199, "
                "0044 20 7946 0958.",
                minLength=1,
                maxLength=MAX_NUMBER_LENGTH,
                visibility="important",
                example="+1 212-555-0199",
            ),
            "from": _field(
                "string",
                "From",
                "The caller ID: an allowed caller ID, or with 'queueId' the queue's own. Default: the queue's "
                "caller ID (with 'queueId'), then the DEFAULT_CALLER_ID setting.",
                maxLength=MAX_NUMBER_LENGTH,
                visibility="important",
            ),
            "queueId": _field(
                "string",
                "Queue ID",
                "The Genesys queue to place the call for (its caller ID is allowed); required for a callback.",
                visibility="important",
                **_GENESYS_ID_FIELD,
            ),
            "userId": _field(
                "string",
                "User ID",
                "The Genesys user on whose behalf to dial. Default: the GENESYS_CALL_USER_ID setting. Calls only.",
                visibility="advanced",
                **_GENESYS_ID_FIELD,
            ),
            "callerIdName": _field(
                "string", "Caller ID Name", "The caller ID name.", maxLength=MAX_TEXT_LENGTH, visibility="advanced"
            ),
            "region": _field(
                "string",
                "Region",
                "The ISO country code (US, GB) for numbers written without a country code. Default: the "
                "DEFAULT_PHONE_REGION setting.",
                minLength=2,
                maxLength=2,
                pattern=REGION_CODE.pattern,
                visibility="advanced",
            ),
            "attributes": _field(
                "object",
                "Attributes",
                f"Names (1-{MAX_ATTRIBUTE_KEY_LENGTH} characters) and string values attached to the customer "
                f"participant (a callback's data): at most {MAX_ATTRIBUTES_BYTES // 1024} KiB in all, as UTF-8 JSON.",
                maxProperties=MAX_ATTRIBUTES,
                additionalProperties=_field(
                    "string", "Attribute Value", "One attribute's value.", maxLength=MAX_ATTRIBUTE_VALUE_LENGTH
                ),
                visibility="advanced",
            ),
            "uuiData": _field(
                "string",
                "UUI Data",
                "User-to-user information. Calls only.",
                maxLength=MAX_UUI_LENGTH,
                visibility="advanced",
            ),
            "label": _field(
                "string",
                "Label",
                "The call's label in Genesys. Calls only.",
                maxLength=MAX_TEXT_LENGTH,
                visibility="advanced",
            ),
            "externalContactId": _field(
                "string",
                "External Contact ID",
                "The Genesys external contact to associate. Calls only.",
                maxLength=MAX_TEXT_LENGTH,
                visibility="advanced",
            ),
            "mode": _field(
                "string",
                "Mode",
                "call (default) dials now for a user; callback creates a Genesys callback that an agent of "
                "'queueId' takes from the queue.",
                enum=list(MODES),
                default=MODES[0],
                visibility="advanced",
            ),
            "scheduledTime": _field(
                "string",
                "Scheduled Time",
                "Callbacks only: when to call back, ISO-8601 with a time zone (2026-12-01T15:30:00Z), in the future.",
                format="date-time",
                maxLength=64,
                visibility="advanced",
            ),
            URL_FIELD: _field(
                "string",
                "Status Callback URL",
                "Calls only: where to POST signed status events (Standard Webhooks), https on a host listed in "
                "STATUS_CALLBACK_ALLOWED_HOSTS.",
                maxLength=MAX_URL_LENGTH,
                visibility="advanced",
            ),
            EVENTS_FIELD: _field(
                "array",
                "Status Callback Events",
                f"Which events to send; default {' and '.join(DEFAULT_EVENTS)}. Needs '{URL_FIELD}'.",
                items={"type": "string", "enum": list(EVENTS)},
                minItems=1,
                visibility="advanced",
            ),
        },
    }


def _call_event() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "A call reached a status: what the status callback URL and the When a call ends trigger get.",
        "required": ["id", "type", "conversationId", "requestId", "status", "occurredAt", "sentAt"],
        "properties": {
            "id": _field("string", "Event ID", "The same for every delivery of this event (also webhook-id)."),
            "type": _field("string", "Type", "call.<status>.", enum=[f"call.{event}" for event in EVENTS]),
            "conversationId": _field("string", "Conversation ID", "The Genesys conversation id of the call."),
            "requestId": _field("string", "Request ID", "The requestId of the request that placed the call."),
            "status": _field("string", "Status", "The status the call reached.", enum=list(EVENTS)),
            "failure": _field(
                "object",
                "Failure",
                "Why the call failed (failed only; null otherwise).",
                nullable=True,
                properties={
                    "code": _field("string", "Failure Code", "The catalog code.", enum=sorted(OUTCOME_CODES)),
                    "title": _field("string", "Failure Title", "The failure in a few words."),
                    "hint": _field("string", "Failure Hint", "What to do about it."),
                    "retryable": _field("boolean", "Failure Retryable", "Whether calling again later may work."),
                },
            ),
            "occurredAt": _field("string", "Occurred At", "When the call reached the status.", format="date-time"),
            "sentAt": _field("string", "Sent At", "When this delivery was sent.", format="date-time"),
        },
    }


def _subscription() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "A subscription of a flow's When a call ends trigger.",
        "required": ["id", "createdAt", "requestId"],
        "additionalProperties": False,
        "properties": {
            "id": _field("string", "Subscription ID", "The subscription's id (the end of its Location)."),
            "createdAt": _field("string", "Created At", "When it was created.", format="date-time"),
            "requestId": _REQUEST_ID_FIELD,
        },
    }


def _unsubscribed() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "The subscription is gone.",
        "required": ["id", "deleted", "requestId"],
        "additionalProperties": False,
        "properties": {
            "id": _field("string", "Subscription ID", "The subscription's id."),
            "deleted": _field("boolean", "Deleted", "Whether it existed (a repeated DELETE answers false)."),
            "requestId": _REQUEST_ID_FIELD,
        },
    }


def _plan_properties() -> dict[str, Any]:
    """What `CallPlan.to_json` answers: the normalized request."""
    return {
        "to": _field("string", "To", "The number to call, in E.164.", example="+12125550199"),
        "from": _field("string", "From", "The caller ID used, in E.164.", example="+13175550105"),
        "userId": _field(
            "string", "User ID", "The Genesys user the call is placed for (null for a callback).", nullable=True
        ),
        "queueId": _field("string", "Queue ID", "The Genesys queue, if any.", nullable=True),
        "understood": _understood(),
        "mode": _field("string", "Mode", "Present for callbacks only.", enum=["callback"]),
        "scheduledTime": _field(
            "string", "Scheduled Time", "Callbacks only: the callback time in UTC, or null.", nullable=True
        ),
        "scheduledByCallingHours": _field(
            "boolean",
            "Scheduled By Calling Hours",
            "Callbacks only: true when the callback was asked for now, outside the callee's calling hours, and "
            "is scheduled at their start instead.",
        ),
    }


_REQUEST_ID_FIELD = _field("string", "Request ID", "The id of this request, also in X-Request-Id and the logs.")
_PLAN_REQUIRED = ["to", "from", "userId", "queueId", "understood"]


def _call_created() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "Genesys Cloud accepted the call (or the callback); nobody has answered yet.",
        "required": ["conversationId", *_PLAN_REQUIRED, "status", "requestId"],
        "additionalProperties": False,
        "properties": {
            "conversationId": _field("string", "Conversation ID", "The Genesys conversation id of the call."),
            **_plan_properties(),
            "status": _field(
                "string", "Status", "initiated for a call, scheduled for a callback.", enum=["initiated", "scheduled"]
            ),
            "requestId": _REQUEST_ID_FIELD,
        },
    }


def _validation() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "The call would be placed as shown; nothing was dialed.",
        "required": ["valid", *_PLAN_REQUIRED, "requestId"],
        "additionalProperties": False,
        "properties": {
            "valid": _field("boolean", "Valid", "Always true: an invalid request answers a problem.", enum=[True]),
            **_plan_properties(),
            "requestId": _REQUEST_ID_FIELD,
        },
    }


def _nullable_text(summary: str, description: str) -> dict[str, Any]:
    return _field("string", summary, description, nullable=True)


def _call_status() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "What happened to a placed call, from the customer participant of its Genesys conversation.",
        "required": ["conversationId", "status", "requestId"],
        "additionalProperties": False,
        "properties": {
            "conversationId": _nullable_text("Conversation ID", "The Genesys conversation id."),
            "status": _field("string", "Status", "Where the call is.", enum=list(STATUSES)),
            "to": _nullable_text("To", "The number called."),
            "from": _nullable_text("From", "The caller ID."),
            "genesysState": _nullable_text("Genesys State", "The customer participant's state in Genesys."),
            "disconnectType": _nullable_text("Disconnect Type", "How the customer participant was disconnected."),
            "connectedTime": _nullable_text("Connected Time", "When the customer participant connected."),
            "endTime": _nullable_text("End Time", "When the customer participant ended."),
            "statusCallbacks": _field(
                "array",
                "Status Callbacks",
                "With a statusCallbackUrl: each event reached so far and its delivery.",
                items={
                    "type": "object",
                    "required": ["event", "status", "attempts"],
                    "additionalProperties": False,
                    "properties": {
                        "event": _field("string", "Event", "The status the call reached.", enum=list(EVENTS)),
                        "status": _field(
                            "string",
                            "Delivery Status",
                            "delivered, pending (retrying) or undeliverable (gave up).",
                            enum=[DELIVERED, DELIVERY_PENDING, UNDELIVERABLE],
                        ),
                        "attempts": _field("integer", "Attempts", "Deliveries tried so far."),
                    },
                },
            ),
            "failure": _field(
                "object",
                "Failure",
                "Why the call failed (status failed only).",
                required=["code", "title", "hint", "retryable", "upstream"],
                additionalProperties=False,
                properties={
                    "code": _field("string", "Code", "The failure's catalog code.", enum=sorted(OUTCOME_CODES)),
                    "title": _field("string", "Title", "The failure in a few words."),
                    "hint": _field("string", "Hint", "What to do about it."),
                    "retryable": _field("boolean", "Retryable", "Whether calling again later may work."),
                    "upstream": _field(
                        "object",
                        "Upstream",
                        "Genesys's errorInfo on the customer participant.",
                        additionalProperties=False,
                        properties={
                            "code": _nullable_text("Upstream Code", "Genesys's errorInfo code."),
                            "message": _nullable_text("Upstream Message", "Genesys's errorInfo message."),
                        },
                    ),
                },
            ),
            "requestId": _REQUEST_ID_FIELD,
        },
    }


def _pending() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "The asynchronous request is accepted or still running: poll the Location.",
        "required": ["requestId", "status"],
        "additionalProperties": False,
        "properties": {
            "requestId": _field("string", "Request ID", "The asynchronous request's id, the end of the Location."),
            "status": _field("string", "Status", "Always pending.", enum=[PENDING]),
        },
    }


def _problem_properties() -> dict[str, Any]:
    return {
        "type": _field("string", "Type", f"{PROBLEM_TYPE_BASE}<code>, a name (docs/errors.md lists them)."),
        "title": _field("string", "Title", "The problem in a few words."),
        "status": _field("integer", "Status", "The HTTP status."),
        "detail": _field("string", "Detail", "What exactly went wrong with this request."),
        "code": _field(
            "string", "Code", "The stable catalog code to branch on (docs/errors.md).", enum=sorted(CATALOG)
        ),
        "hint": _field("string", "Hint", "What to do about it."),
        "retryable": _field(
            "boolean",
            "Retryable",
            "Whether the same request may succeed later (after Retry-After where given): branch on this, not "
            "on the status; a few 4xx are, such as 409 request_in_progress and 429 call_limit_reached, and a 5xx "
            "whose outcome is unknown (the call may exist) is not.",
        ),
        "field": _field("string", "Field", "The input field (or header) at fault."),
        "requestId": _field("string", "Request ID", "The id of this request, for support and the logs."),
        "upstream": _field(
            "object",
            "Upstream",
            "What Genesys Cloud answered.",
            additionalProperties=False,
            properties={
                "status": _field("integer", "Upstream Status", "Genesys's HTTP status.", nullable=True),
                "code": _nullable_text("Upstream Code", "Genesys's error code."),
                "message": _nullable_text("Upstream Message", "Genesys's error message."),
                "correlationId": _nullable_text(
                    "Correlation ID", "Genesys's ININ-Correlation-Id: give it to Genesys support."
                ),
            },
        ),
        "reason": _field(
            "string",
            "Reason",
            "Why a number was refused: "
            + ", ".join(sorted({*REASON_TEXT, "emergency_number", "short_code", "premium_rate"}))
            + ".",
        ),
        "understood": _ref("UnderstoodNumber"),
        "country": _field(
            "string", "Country", "destination_not_allowed by country: the number's country.", nullable=True
        ),
        "nextAllowedAt": _field(
            "string",
            "Next Allowed At",
            "outside_calling_hours: the next moment (RFC 3339, UTC) the call is allowed; "
            f"null when not in {SEARCH_DAYS} days.",
            nullable=True,
        ),
        "timeZones": _field(
            "array",
            "Time Zones",
            "outside_calling_hours: the callee's candidate time zones.",
            items={"type": "string"},
        ),
        "callsInWindow": _field("integer", "Calls In Window", "call_limit_reached: calls counted in the window."),
        "limit": _field("integer", "Limit", "call_limit_reached: CALLS_PER_NUMBER_LIMIT."),
    }


def _problem() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "An RFC 9457 problem (application/problem+json) with this API's extensions.",
        "required": ["type", "title", "status", "detail", "code", "hint", "retryable", "requestId"],
        "additionalProperties": False,
        "properties": _problem_properties(),
    }


def _event_results() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "The answer to a batch of events, or to Event Grid's subscription handshake.",
        "additionalProperties": False,
        "properties": {
            "results": _field(
                "array",
                "Results",
                "One entry per event of the batch, in order.",
                items={
                    "type": "object",
                    "description": "One event's answer.",
                    "required": ["key", "status", "body"],
                    "additionalProperties": False,
                    "properties": {
                        "id": _field(
                            "string",
                            "Event ID",
                            "The event's id as sent (null for an event that could not be read).",
                            nullable=True,
                        ),
                        "key": _field(
                            "string", "Event Key", "The idempotency key: a digest of the event's id (and source)."
                        ),
                        "status": _field("integer", "Status", "The HTTP status the event alone would answer."),
                        "body": _field("object", "Body", "The event's answer: a CallCreated or a Problem."),
                    },
                },
            ),
            "validationResponse": _field(
                "string", "Validation Response", "Event Grid's validationCode, echoed to confirm the subscription."
            ),
        },
    }


def _event_status() -> dict[str, Any]:
    return _field("integer", "Event Status", "The status /api/calls would answer, where this route answers another.")


def _events_problem() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "A Problem (one event, or a delivery that could not be read), or EventResults for a batch.",
        "additionalProperties": False,
        "properties": {
            **_problem_properties(),
            "eventStatus": _event_status(),
            "results": _event_results()["properties"]["results"],
        },
    }


def _sns_problem() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "A Problem; one that can succeed later answers 503 (SNS drops a message answered 4xx), "
        "with the status /api/calls would answer as eventStatus.",
        "additionalProperties": False,
        "properties": {**_problem_properties(), "eventStatus": _event_status()},
    }


def _do_not_call_entry() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "A number's place on the do-not-call list.",
        "required": ["number", "listed", "requestId"],
        "additionalProperties": False,
        "properties": {
            "number": _field("string", "Number", "The number in E.164."),
            "listed": _field("boolean", "Listed", "Whether the number is on the list."),
            "addedAt": _field("string", "Added At", "When it was listed (UTC)."),
            "reason": _nullable_text("Reason", "Why it was listed, as given."),
            "removed": _field("boolean", "Removed", "DELETE only: whether it was listed before."),
            "requestId": _REQUEST_ID_FIELD,
        },
    }


def _do_not_call_operation(method: str) -> dict[str, Any]:
    number = _path(
        "number",
        "Number",
        "The number in any common format (URL-encoded: +1 212-555-0199 is %2B1%20212-555-0199).",
        minLength=1,
        maxLength=64,
    )
    region = {
        "name": "region",
        "in": "query",
        "required": False,
        "type": "string",
        "x-ms-summary": "Region",
        "description": "ISO country for a number without a country code; default DEFAULT_PHONE_REGION.",
        "x-ms-visibility": "advanced",
        "pattern": "^[A-Za-z]{2}$",
    }
    reason = _body(
        {
            "type": "object",
            "additionalProperties": False,  # as the route: a `region` is the query parameter, not a body field
            "properties": {"reason": _field("string", "Reason", "Why it is listed.", maxLength=256)},
        },
        "Listing",
        "Optional: why the number is listed.",
    )
    reason["required"] = False
    operation_id, summary, description = {
        "PUT": ("PutDoNotCall", "Add to the do-not-call list", "Lists a number: every call to it is refused."),
        "GET": ("GetDoNotCall", "Look up the do-not-call list", "Says whether a number is listed."),
        "DELETE": ("DeleteDoNotCall", "Remove from the do-not-call list", "Unlists a number."),
    }[method]
    parameters = [number, region, reason] if method == "PUT" else [number, region]
    return _operation(
        operation_id,
        summary,
        f"{description} Needs the admin (master) key.",
        "advanced",
        parameters,
        {"200": _response("The number's place on the list.", "DoNotCallEntry"), **_problems(operation_id)},
        tag="Policy",
    )


def _health() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "The function app is running.",
        "required": ["status"],
        "additionalProperties": False,
        "properties": {"status": _field("string", "Status", "Always ok.", enum=["ok"])},
    }


def _readiness() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "Whether this deployment can place a call, check by check.",
        "required": ["status", "checks", "requestId"],
        "additionalProperties": False,
        "properties": {
            "status": _field("string", "Status", "ready when every check is ok.", enum=["ready", "not_ready"]),
            "checks": _field(
                "array",
                "Checks",
                "Configuration, Key Vault, Genesys token, call user, caller IDs, webhook secret and idempotency store.",
                items={
                    "type": "object",
                    "description": "One check.",
                    "required": ["name", "status"],
                    "additionalProperties": False,
                    "properties": {
                        "name": _field("string", "Name", "What was checked."),
                        "status": _field(
                            "string",
                            "Status",
                            "ok, failed, or skipped when the check does not apply to this deployment.",
                            enum=["ok", "failed", "skipped"],
                        ),
                        "detail": _field("string", "Detail", "What was found."),
                        "code": _field("string", "Code", "The failure's catalog code.", enum=sorted(CATALOG)),
                        "remediation": _field("string", "Remediation", "What to fix."),
                    },
                },
            ),
            "requestId": _REQUEST_ID_FIELD,
        },
    }


def _text(summary: str, description: str, **more: Any) -> dict[str, Any]:
    return _field("string", summary, description, **more)


def _sns_message_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "An AWS SNS HTTP(S) message; which fields are signed depends on Type.",
        "required": ["Type", "MessageId", "TopicArn", "Message", "Timestamp", "SignatureVersion", "Signature"],
        "properties": {
            "Type": _text("Type", "The kind of message.", enum=list(SIGNED_FIELDS)),
            "MessageId": _text("Message ID", "Kept by SNS across retries: the idempotency key."),
            "TopicArn": _text("Topic ARN", "The topic; must be one of SNS_TOPIC_ARNS."),
            "Subject": _text("Subject", "Notifications: the subject, when the publisher gave one."),
            "Message": _text("Message", "Notifications: the CallRequest as JSON text."),
            "Timestamp": _text("Timestamp", "When SNS sent the message (ISO-8601, UTC)."),
            "SignatureVersion": _text("Signature Version", "1: SHA1withRSA; 2: SHA256withRSA.", enum=["1", "2"]),
            "Signature": _text("Signature", "Base64 of the RSA signature over the message's signed fields."),
            "SigningCertURL": _text("Signing Certificate URL", "https://sns.<region>.amazonaws.com/...pem."),
            "SubscribeURL": _text("Subscribe URL", "Confirmations: visited to confirm the subscription."),
            "Token": _text("Token", "Confirmations: the confirmation token."),
            "UnsubscribeURL": _text("Unsubscribe URL", "Notifications: where to unsubscribe."),
        },
    }


def _sns_acknowledged() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "An SNS subscription confirmed or an unsubscription acknowledged.",
        "required": ["type", "topicArn", "requestId"],
        "additionalProperties": False,
        "properties": {
            "type": _text("Type", "The message's Type.", enum=[SUBSCRIBE, UNSUBSCRIBE]),
            "topicArn": _text("Topic ARN", "The topic."),
            "requestId": _REQUEST_ID_FIELD,
        },
    }


def _pubsub_push_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "A Pub/Sub push in the wrapped format.",
        "required": ["message"],
        "properties": {
            "message": _field(
                "object",
                "Message",
                "The pushed message.",
                required=["data", "messageId"],
                properties={
                    "data": _text("Data", "Base64 of the CallRequest as JSON.", format="byte"),
                    "messageId": _text("Message ID", "Kept across redeliveries: the idempotency key."),
                    "publishTime": _text("Publish Time", "When the message was published."),
                    "attributes": _field(
                        "object",
                        "Attributes",
                        "The message's attributes (not used).",
                        additionalProperties={"type": "string"},
                    ),
                },
            ),
            "subscription": _text("Subscription", "The push subscription's name."),
            "deliveryAttempt": _field("integer", "Delivery Attempt", "With a dead-letter policy: the attempt."),
        },
    }


def definitions() -> dict[str, Any]:
    return {
        "CallRequest": _call_request(),
        "CallCreated": _call_created(),
        "Validation": _validation(),
        "CallStatus": _call_status(),
        "Pending": _pending(),
        "UnderstoodNumber": _understood_number(),
        "Problem": _problem(),
        "EventResults": _event_results(),
        "EventsProblem": _events_problem(),
        "SnsProblem": _sns_problem(),
        "SnsMessage": _sns_message_schema(),
        "SnsAcknowledged": _sns_acknowledged(),
        "PubSubPush": _pubsub_push_schema(),
        "Health": _health(),
        "DoNotCallEntry": _do_not_call_entry(),
        "Readiness": _readiness(),
        "CallEvent": _call_event(),
        "Subscription": _subscription(),
        "Unsubscribed": _unsubscribed(),
    }


# --- Responses -----------------------------------------------------------------------------------------------

_HEADERS = {
    "X-Request-Id": {"type": "string", "description": "The request id, as in the body and the logs."},
    "Retry-After": {
        "type": "integer",
        "description": f"Seconds to wait before trying again (always on 429 and 503; {DEFAULT_RETRY_AFTER_SECONDS} "
        "unless said otherwise).",
    },
    "Idempotent-Replayed": {
        "type": "string",
        "enum": ["true"],
        "description": "This is the stored answer to an earlier identical request; nothing was dialed now.",
    },
    "Location": {
        "type": "string",
        "description": "Where to read the result: a path on this host (/api/calls/... or /api/calls/requests/...), "
        "which Power Automate and HTTP clients resolve against the request's URL; a subscription's is an absolute "
        "URL (/api/subscriptions/...).",
    },
}


def _headers(*names: str) -> dict[str, Any]:
    return {name: _HEADERS[name] for name in ("X-Request-Id", *names)}


def _response(description: str, schema: str | dict[str, Any], *headers: str) -> dict[str, Any]:
    """A response with its schema (a definition's name, or inline) and its headers (X-Request-Id always)."""
    return {
        "description": description,
        "schema": _ref(schema) if isinstance(schema, str) else schema,
        "headers": _headers(*headers),
    }


def answer_status(operation_id: str, code: str) -> int:
    """The HTTP status an operation answers a catalog code with: the catalog's, except that the events and SNS
    routes answer in the statuses their senders act on (`shared/webhooks/redelivery.py`)."""
    entry = CATALOG[code]
    status_for_sender = _SENDER_STATUSES.get(operation_id)
    return entry.status if status_for_sender is None else status_for_sender(entry.status, entry.retryable)


_SENDER_STATUSES = {"ReceiveEvents": event_status, "ReceiveSnsMessage": sns_status}


def _problems(operation_id: str, replays: bool = False) -> dict[str, Any]:
    """One response per status the operation's catalog codes map to, listing the codes."""
    by_status: dict[int, list[str]] = {}
    for code in PROBLEM_CODES[operation_id]:
        by_status.setdefault(answer_status(operation_id, code), []).append(code)
    responses = {}
    for status, codes in sorted(by_status.items()):
        headers = ["Retry-After"] if status in _WAIT_STATUSES else []
        if replays:
            headers.append("Idempotent-Replayed")
        titles = "; ".join(f"{code} ({CATALOG[code].title})" for code in codes)
        responses[str(status)] = _response(f"A problem; code is one of: {titles}.", "Problem", *headers)
    return responses


_KEY_REFUSED = (
    "The function key (x-functions-key header or code query parameter) is missing or wrong: the Functions host "
    "answers this without a body."
)


def _operation(
    operation_id: str,
    summary: str,
    description: str,
    visibility: str,
    parameters: list[dict[str, Any]],
    responses: dict[str, Any],
    *,
    tag: str,
    anonymous: bool = False,
    **more: Any,
) -> dict[str, Any]:
    """An operation; unless anonymous, the host's 401 for a missing function key is among its answers."""
    if not anonymous:
        problem = responses.get("401")
        responses["401"] = (
            {**problem, "description": f"{problem['description'][:-1]}; or: {_KEY_REFUSED}"}
            if problem
            else {"description": _KEY_REFUSED}
        )
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "description": description,
        "tags": [tag],
        "x-ms-visibility": visibility,
        "parameters": [*parameters, REQUEST_ID_PARAMETER],
        "responses": dict(sorted(responses.items())),
        **more,
    }
    if anonymous:
        operation["security"] = []
    return operation


def _place_call() -> dict[str, Any]:
    return _operation(
        "PlaceCall",
        "Place a call",
        "Places an outbound call (or, with mode callback, a Genesys callback) after checking the number and the "
        "caller ID. Send an Idempotency-Key: a retry answers the first answer and never dials twice. With "
        "Prefer: respond-async the answer is 202 and the result is read from the Location.",
        "important",
        [IDEMPOTENCY_KEY_PARAMETER, PREFER_PARAMETER, CALL_REQUEST_BODY],
        {
            "201": _response(
                "Genesys Cloud accepted the call; Location is its status.",
                "CallCreated",
                "Location",
                "Idempotent-Replayed",
            ),
            "202": _response(
                "Accepted (Prefer: respond-async): poll the Location after Retry-After seconds.",
                "Pending",
                "Location",
                "Retry-After",
            ),
            **_problems("PlaceCall", replays=True),
        },
        tag="Calls",
    )


def _validate_call() -> dict[str, Any]:
    return _operation(
        "ValidateCall",
        "Validate a call",
        "Makes the whole decision of Place a call (number, caller ID, user, queue) without dialing, and answers "
        "the normalized request or the problem that dialing would meet.",
        "advanced",
        [CALL_REQUEST_BODY],
        {"200": _response("The call would be placed as shown.", "Validation"), **_problems("ValidateCall")},
        tag="Calls",
    )


def _get_call_status() -> dict[str, Any]:
    return _operation(
        "GetCallStatus",
        "Get call status",
        "Reads what happened to a placed call: initiated, ringing, connected, ended or failed (with the reason).",
        "important",
        [
            _path(
                "conversationId",
                "Conversation ID",
                "The conversationId that Place a call answered.",
                **_GENESYS_ID_FIELD,
            )
        ],
        {"200": _response("The call's status.", "CallStatus"), **_problems("GetCallStatus")},
        tag="Calls",
    )


def _get_call_request() -> dict[str, Any]:
    return _operation(
        "GetCallRequest",
        "Get asynchronous request",
        "Reads the result of a call placed with Prefer: respond-async: 202 while it is pending, then the final "
        "answer of Place a call.",
        "advanced",
        [_path("requestId", "Request ID", "The requestId of the 202 answer (the end of its Location).", minLength=1)],
        {
            "201": _response("The call was placed.", "CallCreated", "Location", "Idempotent-Replayed"),
            "202": _response(
                "Still pending: poll again after Retry-After seconds.", "Pending", "Location", "Retry-After"
            ),
            **_problems("GetCallRequest", replays=True),
        },
        tag="Calls",
    )


def _signed_webhook() -> dict[str, Any]:
    signature = _header(
        "X-Signature-256",
        "SHA-256 Signature",
        "sha256=<hex of HMAC-SHA256(secret, raw body)>. Send exactly one scheme's headers.",
        "advanced",
        pattern=_ecma(RAW_SIGNATURE),
    )
    github = _header(
        "X-Hub-Signature-256",
        "GitHub Signature",
        "GitHub's sha256=<hex of HMAC-SHA256(secret, raw body)>; X-GitHub-Delivery is not signed and is ignored.",
        "internal",
        pattern=_ecma(RAW_SIGNATURE),
    )
    stamped = _header(
        "X-Signature",
        "Timestamped Signature",
        f"t=<unix seconds>,v1=<hex of HMAC-SHA256(secret, '<t>.<raw body>')>, within {SIGNATURE_TOLERANCE_SECONDS} s "
        "of the function's clock.",
        "advanced",
        pattern=_ecma(TIMESTAMPED_SIGNATURE),
    )
    standard = [
        _header(
            ID_HEADER,
            "Standard Webhooks ID",
            "Standard Webhooks: the message id, kept across the sender's retries (the idempotency key).",
            "internal",
            maxLength=MAX_ID_LENGTH,
        ),
        _header(
            TIMESTAMP_HEADER,
            "Standard Webhooks Timestamp",
            f"Standard Webhooks: unix seconds, within {TOLERANCE_SECONDS} s of the function's clock.",
            "internal",
            pattern=TIMESTAMP.pattern,
        ),
        _header(
            SIGNATURE_HEADER,
            "Standard Webhooks Signature",
            "Standard Webhooks: space-separated v1,<base64 of HMAC-SHA256(key, '<id>.<timestamp>.<raw body>')>, "
            "the key being the base64 after whsec_ in the secret.",
            "internal",
        ),
    ]
    return _operation(
        "ReceiveSignedWebhook",
        "Receive a signed webhook",
        "Places a call for a service that signs its webhooks with the shared secret: our HMAC-SHA256 schemes, "
        "GitHub's X-Hub-Signature-256 or Standard Webhooks; a delivery with two schemes' headers is refused. "
        "The signature (Standard Webhooks: webhook-id) is the idempotency key, so a redelivery never dials "
        "again; an Idempotency-Key header is not signed and is ignored here.",
        "internal",
        [signature, github, stamped, *standard, CALL_REQUEST_BODY],
        {
            "201": _response("Genesys Cloud accepted the call.", "CallCreated", "Location", "Idempotent-Replayed"),
            **_problems("ReceiveSignedWebhook", replays=True),
        },
        tag="Webhooks",
    )


def _sns_message() -> dict[str, Any]:
    body = _body(_ref("SnsMessage"), "SNS Message", "The message as SNS posts it (SNS labels it text/plain).")
    message_type = _header(
        MESSAGE_TYPE_HEADER,
        "SNS Message Type",
        "Sent by SNS; must name the message's Type.",
        "internal",
        enum=list(SIGNED_FIELDS),
    )
    problems = _problems("ReceiveSnsMessage", replays=True)
    problems["503"] = {
        **problems["503"],
        "description": problems["503"]["description"][:-1] + "; or a 4xx that can succeed later (eventStatus).",
        "schema": _ref("SnsProblem"),
    }
    return _operation(
        "ReceiveSnsMessage",
        "Receive an AWS SNS message",
        "Verifies an AWS SNS message (topic in SNS_TOPIC_ARNS, SHA1withRSA or SHA256withRSA signature with the "
        "certificate from an sns.<region>.amazonaws.com host, Timestamp) before acting on it: a "
        "SubscriptionConfirmation is confirmed, an UnsubscribeConfirmation acknowledged, and a Notification "
        "places the call in Message, with MessageId as the idempotency key.",
        "internal",
        [message_type, body],
        {
            "200": _response("A subscription confirmed, or an unsubscription acknowledged.", "SnsAcknowledged"),
            "201": _response("Genesys Cloud accepted the call.", "CallCreated", "Location", "Idempotent-Replayed"),
            **problems,
        },
        tag="Webhooks",
    )


def _pubsub_push() -> dict[str, Any]:
    # The token's Authorization header is described, not declared: a custom connector refuses a parameter of that
    # name (its own API key authentication owns the header), and the push gives its function key as ?code=.
    body = _body(_ref("PubSubPush"), "PubSub Push", "The wrapped push: message.data is the call request.")
    return _operation(
        "ReceivePubSubPush",
        "Receive a Google PubSub push",
        "Verifies a Pub/Sub push subscription's OIDC token (the Authorization header, Bearer: RS256 by Google, aud "
        "PUBSUB_AUDIENCE, email one of PUBSUB_SERVICE_ACCOUNTS and verified, not expired), then places the call in "
        "message.data (base64 of a CallRequest), with message.messageId as the idempotency key. The push "
        "endpoint gives the function key as ?code=.",
        "internal",
        [body],
        {
            "201": _response("Genesys Cloud accepted the call.", "CallCreated", "Location", "Idempotent-Replayed"),
            **_problems("ReceivePubSubPush", replays=True),
        },
        tag="Webhooks",
    )


_EVENT_MEDIA_TYPES = [JSON, "application/cloudevents+json", "application/cloudevents-batch+json"]


def _receive_events() -> dict[str, Any]:
    body = _body(
        {
            "description": "An Event Grid array of events, a CloudEvent, a CloudEvents batch, or (binary mode, "
            "with ce-* headers) the call request itself. Each event's data is a CallRequest.",
            "example": [
                {
                    "id": "9aeb0fdf-c01e-0131-0922-9eb54906e209",
                    "eventType": "Contoso.Calls.Requested",
                    "subject": "calls/A-1017",
                    "eventTime": "2026-01-01T12:00:00Z",
                    "dataVersion": "1.0",
                    "data": {"to": "(212) 555-0199", "attributes": {"invoice": "A-1017"}},
                }
            ],
        },
        "Events",
        f"The delivery, at most {MAX_EVENTS_BYTES // 1024} KiB.",
    )
    headers = [
        _header(
            "aeg-event-type",
            "Event Grid Event Type",
            "Sent by Event Grid; the function reads the events themselves.",
            "internal",
            enum=["Notification", "SubscriptionValidation", "SubscriptionDeletion"],
        ),
        _header("ce-specversion", "CloudEvents Spec Version", "Binary mode: 1.0.", "internal", enum=["1.0"]),
        _header("ce-id", "CloudEvents ID", "Binary mode: the event id.", "internal", maxLength=256),
        _header("ce-source", "CloudEvents Source", "Binary mode: the event source.", "internal", maxLength=256),
        _header("ce-type", "CloudEvents Type", "Binary mode: the event type.", "internal"),
    ]
    problems = _problems("ReceiveEvents", replays=True)
    for status in ("400", "503"):
        problems[status] = {
            **problems[status],
            "description": problems[status]["description"][:-1] + "; or, for a batch, EventResults.",
            "schema": _ref("EventsProblem"),
        }
    return _operation(
        "ReceiveEvents",
        "Receive events",
        "Places one call per Azure Event Grid or CloudEvents 1.0 event; the event id is the idempotency key, so a "
        "redelivered event never dials again. At most MAX_EVENTS_PER_DELIVERY events (default 50), else 413 and "
        "nothing is placed. One event answers as itself, except that a failure that can never succeed answers "
        "400 (Event Grid dead-letters it; eventStatus keeps the status /api/calls would give) and one that can "
        "succeed later answers 429 or 503 with Retry-After; a batch answers 200 when all succeeded, 503 when any "
        "can succeed later, else 400.",
        "internal",
        [*headers, body],
        {
            "200": _response(
                "Every event of the batch succeeded, or the Event Grid subscription handshake.", "EventResults"
            ),
            "201": _response("The one event's call was placed.", "CallCreated", "Location", "Idempotent-Replayed"),
            **problems,
        },
        tag="Webhooks",
        consumes=_EVENT_MEDIA_TYPES,
    )


def _validate_events_subscription() -> dict[str, Any]:
    origin = _header(
        "WebHook-Request-Origin",
        "Webhook Request Origin",
        "The sender asking for consent (CloudEvents webhook validation).",
        "internal",
        default="eventgrid.azure.net",
    ) | {"required": True}
    return _operation(
        "ValidateEventsSubscription",
        "Validate an events subscription",
        "Answers the CloudEvents abuse-protection handshake that Event Grid sends before delivering events.",
        "internal",
        [origin],
        {
            "200": {
                "description": "Consent to deliveries from the asking origin.",
                "headers": {
                    "WebHook-Allowed-Origin": {"type": "string", "description": "The origin allowed to deliver."},
                    "WebHook-Allowed-Rate": {"type": "string", "description": "The allowed rate: any."},
                    "Allow": {"type": "string", "description": "The methods allowed: POST, OPTIONS."},
                },
            },
            **_problems("ValidateEventsSubscription"),
        },
        tag="Webhooks",
        produces=["text/plain", PROBLEM_JSON],
    )


def _get_health() -> dict[str, Any]:
    return _operation(
        "GetHealth",
        "Check liveness",
        "Answers 200 while the function app runs; touches no setting and no remote service.",
        "advanced",
        [],
        {"200": _response("The function app is running.", "Health"), **_problems("GetHealth")},
        tag="Health",
        anonymous=True,
    )


def _get_readiness() -> dict[str, Any]:
    return _operation(
        "GetReadiness",
        "Check readiness",
        "Checks the settings, the Key Vault secret, a Genesys token, the caller IDs and the idempotency store, "
        "and says what to fix.",
        "advanced",
        [],
        {
            "200": _response("Ready: every check is ok.", "Readiness"),
            **_problems("GetReadiness"),
            "503": _response(
                f"Not ready: the failed checks say what to fix (Retry-After: {NOT_READY_RETRY_AFTER_SECONDS}).",
                "Readiness",
                "Retry-After",
            ),
        },
        tag="Health",
    )


def _get_openapi() -> dict[str, Any]:
    return _operation(
        "GetOpenApi",
        "Get the OpenAPI document",
        "Answers this Swagger 2.0 document, the same as the custom connector's apiDefinition.swagger.json.",
        "internal",
        [],
        {
            "200": _response("The Swagger 2.0 document.", {"type": "object"}),
            **_problems("GetOpenApi"),
        },
        tag="Health",
        anonymous=True,
    )


_TRIGGER: dict[str, Any] = {"x-ms-trigger": "single"}  # one notification per ended call


def _when_a_call_ends() -> dict[str, Any]:
    body = _body(
        {
            "type": "object",
            "required": [NOTIFICATION_FIELD],
            "properties": {
                NOTIFICATION_FIELD: _field(
                    "string",
                    "Notification URL",
                    "Power Automate's callback URL (it fills this in).",
                    visibility="internal",
                    **{"x-ms-notification-url": True},
                )
            },
        },
        "Subscription",
        "Where to post each ended or failed call.",
    )
    return _operation(
        "WhenCallEnds",
        "When a call ends",
        "Triggers a flow for every placed call that ends or fails, with its status and the failure's reason.",
        "important",
        [body],
        {
            "201": _response("Subscribed; DELETE the Location to unsubscribe.", "Subscription", "Location"),
            **_problems("WhenCallEnds"),
        },
        tag="Triggers",
        **_TRIGGER,
    )


def _delete_subscription() -> dict[str, Any]:
    return _operation(
        "DeleteSubscription",
        "Delete a subscription",
        "Removes a When a call ends subscription; Power Automate calls it when the flow is deleted or turned off.",
        "internal",
        [_path("subscriptionId", "Subscription ID", "The id at the end of the subscription's Location.", minLength=1)],
        {"200": _response("Unsubscribed.", "Unsubscribed"), **_problems("DeleteSubscription")},
        tag="Triggers",
    )


def paths() -> dict[str, Any]:
    return {
        "/calls": {"post": _place_call()},
        "/calls/validate": {"post": _validate_call()},
        "/calls/requests/{requestId}": {"get": _get_call_request()},
        "/calls/{conversationId}": {"get": _get_call_status()},
        "/do-not-call/{number}": {
            method.lower(): _do_not_call_operation(method) for method in ("PUT", "GET", "DELETE")
        },
        "/webhooks/calls": {"post": _signed_webhook()},
        "/webhooks/sns": {"post": _sns_message()},
        "/webhooks/pubsub": {"post": _pubsub_push()},
        "/events/calls": {"post": _receive_events(), "options": _validate_events_subscription()},
        "/health": {"get": _get_health()},
        "/health/ready": {"get": _get_readiness()},
        "/openapi.json": {"get": _get_openapi()},
        "/subscriptions": {
            "x-ms-notification-content": {"description": "A call that ended or failed.", "schema": _ref("CallEvent")},
            "post": _when_a_call_ends(),
        },
        "/subscriptions/{subscriptionId}": {"delete": _delete_subscription()},
    }


def document(host: str | None = DEFAULT_HOST) -> dict[str, Any]:
    """The whole Swagger 2.0 document; `host=None` leaves `host` out (clients then use the serving host)."""
    spec: dict[str, Any] = {
        "swagger": "2.0",
        "info": {
            "title": TITLE,
            "version": "1.0",
            "contact": CONTACT,
            "description": "Places outbound calls and callbacks through Genesys Cloud: reads numbers in any "
            "format, checks the caller ID before dialing, never dials twice for one request, and explains every "
            "failure with a stable code and a hint.",
        },
        "basePath": "/api",
        "schemes": ["https"],
        "consumes": [JSON],
        "produces": [JSON, PROBLEM_JSON],
        "securityDefinitions": {
            "apiKey": {
                "type": "apiKey",
                "in": "header",
                "name": "x-functions-key",
                "description": "The function key (App keys or the function's keys in the Azure portal).",
            }
        },
        "security": [{"apiKey": []}],
        "tags": [
            {"name": "Calls", "description": "Place calls and follow them."},
            {"name": "Webhooks", "description": "Signed webhooks, SNS, Pub/Sub push, Event Grid and CloudEvents."},
            {"name": "Policy", "description": "Who may be called: the do-not-call list."},
            {"name": "Triggers", "description": "Power Automate triggers: When a call ends."},
            {"name": "Health", "description": "Liveness, readiness and this document."},
        ],
        "paths": paths(),
        "definitions": definitions(),
        "x-ms-connector-metadata": [
            {"propertyName": "Website", "propertyValue": WEBSITE},
            {"propertyName": "Privacy policy", "propertyValue": PRIVACY_POLICY},
            {"propertyName": "Categories", "propertyValue": CATEGORIES},
        ],
    }
    if host:
        spec["host"] = host
    return spec


def swagger_json(host: str | None = DEFAULT_HOST) -> str:
    """The document as `connector/apiDefinition.swagger.json` holds it (scripts/export-connector.sh)."""
    return json.dumps(document(host), indent=2, sort_keys=True) + "\n"
