"""The problem catalog: every failure the API can answer, as RFC 9457 problem details.

One place decides status, title, retryability and the default hint for each code, so callers
(Power Automate above all) can rely on 4xx meaning "fix the input" and 5xx/429 meaning "try again".
`docs/errors.md` documents every entry; a test keeps the two in step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

DEFAULT_RETRY_AFTER_SECONDS = 5
PROBLEM_TYPE_BASE = "urn:genesys-call-function:problem:"  # a name, not a link: docs/errors.md lists them


@dataclass(frozen=True)
class CatalogEntry:
    status: int
    title: str
    retryable: bool
    hint: str


CATALOG: dict[str, CatalogEntry] = {
    "invalid_json": CatalogEntry(400, "Request body is not valid JSON", False, "Send a JSON object as the body."),
    "unsupported_media_type": CatalogEntry(
        415,
        "Unsupported media type",
        False,
        "Send the body with 'Content-Type: application/json'.",
    ),
    "payload_too_large": CatalogEntry(
        413, "Request body too large", False, "Keep the body under the documented size limit."
    ),
    "too_many_events": CatalogEntry(
        413,
        "Too many events in one delivery",
        False,
        "Send at most MAX_EVENTS_PER_DELIVERY events per delivery (Event Grid: set the subscription's "
        "maxEventsPerBatch to that number or fewer).",
    ),
    "validation_failed": CatalogEntry(
        400, "Request failed validation", False, "Correct the field named in 'field' and send again."
    ),
    "invalid_phone_number": CatalogEntry(
        400,
        "Invalid phone number",
        False,
        "Send the number in international form (+<country code><number>) or set 'region' for a national one.",
    ),
    "destination_not_allowed": CatalogEntry(
        403,
        "Destination not allowed",
        False,
        "Emergency numbers and short codes are never dialed; premium-rate numbers need ALLOW_PREMIUM_RATE=true; "
        "other countries than ALLOWED_COUNTRIES are refused. 'reason' says which.",
    ),
    "do_not_call": CatalogEntry(
        403,
        "Number on the do-not-call list",
        False,
        "Do not call this number. If it was listed by mistake, remove it with DELETE /api/do-not-call/{number}.",
    ),
    "outside_calling_hours": CatalogEntry(
        422,
        "Outside the callee's calling hours",
        False,  # not by an automatic retry: only at nextAllowedAt
        "Call again at 'nextAllowedAt' (the callee's local calling hours: CALLING_HOURS), or request a callback, "
        "which is scheduled then.",
    ),
    "call_limit_reached": CatalogEntry(
        429,
        "Call limit for this number reached",
        True,
        "Wait for Retry-After seconds: then the oldest counted call leaves the window (CALLS_PER_NUMBER_LIMIT "
        "calls per CALLS_PER_NUMBER_WINDOW_HOURS).",
    ),
    "callback_url_not_allowed": CatalogEntry(
        422,
        "Status callback URL not allowed",
        False,
        "Send an https:// statusCallbackUrl (or notificationUrl) on a host listed in STATUS_CALLBACK_ALLOWED_HOSTS.",
    ),
    "too_many_subscriptions": CatalogEntry(
        409,
        "Too many subscriptions",
        False,
        "Turn off or delete flows that no longer use 'When a call ends': each holds one of the 50 subscriptions "
        "(a deleted flow's is removed once its URL has answered ended calls 404 or 410 for a day).",
    ),
    "caller_id_required": CatalogEntry(
        422,
        "No caller ID available",
        False,
        "Send 'from', use a queue with an outbound caller ID, or set DEFAULT_CALLER_ID.",
    ),
    "caller_id_not_allowed": CatalogEntry(
        422,
        "Caller ID not allowed",
        False,
        "Use one of the organization's numbers (ALLOWED_CALLER_IDS, or its Genesys DIDs and DID pools) as 'from'.",
    ),
    "user_not_allowed": CatalogEntry(
        403,
        "User not allowed",
        False,
        "Leave 'userId' out to place the call for GENESYS_CALL_USER_ID, or ask the operator to add the user to "
        "ALLOWED_USER_IDS.",
    ),
    "queue_not_allowed": CatalogEntry(
        403,
        "Queue not allowed",
        False,
        "Leave 'queueId' out, or ask the operator to add the queue to ALLOWED_QUEUE_IDS (unset, no queue is allowed).",
    ),
    "idempotency_key_reused": CatalogEntry(
        422,
        "Idempotency key reused with a different request",
        False,
        "Use a new Idempotency-Key for a different request.",
    ),
    "request_not_found": CatalogEntry(
        404,
        "No such asynchronous request",
        False,
        "Use the Location the 202 answer gave; results are kept for IDEMPOTENCY_RETENTION_SECONDS.",
    ),
    "request_in_progress": CatalogEntry(
        409,
        "Request with this key is still in progress",
        True,
        "Wait for Retry-After seconds, then send the same request again.",
    ),
    "genesys_auth_failed": CatalogEntry(
        502,
        "Genesys Cloud rejected the OAuth client",
        False,
        "Check GENESYS_CLIENT_ID, the client secret and GENESYS_REGION: the OAuth client must be a "
        "Client Credentials grant in the same region.",
    ),
    "genesys_permission_denied": CatalogEntry(
        502,
        "Genesys Cloud denied the permission",
        False,
        "Give the OAuth client's role the permission Genesys names (conversation:call:add or "
        "conversation:agentlessCall:add to place calls; conversation:callback:create for callbacks; "
        "telephony:plugin:all to read DIDs; routing:queue:view for queues).",
    ),
    "genesys_user_context_required": CatalogEntry(
        502,
        "Genesys Cloud requires a user context",
        False,
        "The endpoint refused a client-credentials token. Calls must be placed on behalf of a user: set "
        "GENESYS_CALL_USER_ID or send 'userId'.",
    ),
    "genesys_no_station": CatalogEntry(
        409,
        "The Genesys user has no station",
        False,
        "Assign a station (phone) to the user in Genesys Cloud, or place the call on behalf of another user.",
    ),
    "genesys_not_found": CatalogEntry(
        404,
        "Genesys Cloud could not find the resource",
        False,
        "Check the user, queue or conversation id.",
    ),
    "genesys_rejected_address": CatalogEntry(
        422,
        "Genesys Cloud rejected the participant address",
        False,
        "Genesys answers 'Malformed participant address' when: the number is not E.164 (we always send "
        "E.164, so check the number itself); the caller ID is not one of the organization's numbers or the "
        "trunk does not allow it; the request used an endpoint that needs a user token; or the outbound "
        "route/trunk cannot reach this destination. Check the caller ID and the Genesys outbound route.",
    ),
    "genesys_rejected_request": CatalogEntry(
        422,
        "Genesys Cloud rejected the request",
        False,
        "Read 'upstream.message'; correct the request and send again.",
    ),
    "genesys_rate_limited": CatalogEntry(
        429, "Genesys Cloud rate limit reached", True, "Wait for Retry-After seconds, then send the same request."
    ),
    "genesys_unavailable": CatalogEntry(
        503,
        "Genesys Cloud is unavailable",
        True,
        "Retry later with the same Idempotency-Key. If the failure came after the call was sent, check the "
        "call status first.",
    ),
    "genesys_timeout": CatalogEntry(
        504,
        "Genesys Cloud did not answer in time",
        True,
        # A read (token, DIDs, queue) dialed nothing; a create that may have rung gets OUTCOME_UNKNOWN_HINT.
        "Retry later with the same Idempotency-Key.",
    ),
    # Outcomes of a placed call, reported by GET /api/calls/{conversationId} (never the status of that GET).
    "destination_unreachable": CatalogEntry(
        422,
        "The number could not be reached",
        False,
        "Check the number (and, for international calls, that the outbound route allows the country).",
    ),
    "destination_busy": CatalogEntry(409, "The line was busy", True, "Call again later."),
    "destination_no_answer": CatalogEntry(408, "Nobody answered", True, "Call again later."),
    "destination_rejected": CatalogEntry(
        422, "The call was rejected", False, "The callee or the carrier declined the call; do not retry at once."
    ),
    "call_failed": CatalogEntry(
        502,
        "The call failed in Genesys Cloud",
        True,
        "Read 'upstream' for Genesys's reason; check the trunk and outbound route if it repeats.",
    ),
    "key_vault_unavailable": CatalogEntry(
        503, "Key Vault is unavailable", True, "Retry later; check the vault's health and KEY_VAULT_URL."
    ),
    "key_vault_forbidden": CatalogEntry(
        500,
        "Key Vault denied access",
        False,
        "Grant the function's managed identity the 'Key Vault Secrets User' role on the vault (and set "
        "AZURE_CLIENT_ID for a user-assigned identity).",
    ),
    "secret_not_found": CatalogEntry(
        500,
        "Secret not found in Key Vault",
        False,
        "Create the secret, or set GENESYS_CLIENT_SECRET_NAME to its name.",
    ),
    "idempotency_store_unavailable": CatalogEntry(
        503,
        "Idempotency store unavailable",
        True,
        "Retry later with the same Idempotency-Key: this request placed no call, and the retry replays an earlier "
        "attempt's call if there was one (without a key, only inside DUPLICATE_WINDOW_SECONDS of its answer).",
    ),
    "invalid_signature": CatalogEntry(
        401, "Invalid webhook signature", False, "Sign the raw body with the shared webhook secret."
    ),
    "signing_keys_unavailable": CatalogEntry(
        503,
        "The sender's signing keys could not be fetched",
        True,
        "Nothing to do for one failure: the sender delivers again. If it persists, let the function reach the "
        "sender's key host over HTTPS (sns.<region>.amazonaws.com for SNS, www.googleapis.com for Pub/Sub).",
    ),
    "configuration_error": CatalogEntry(
        500,
        "The function is misconfigured",
        False,
        "Fix the application setting named in 'detail' and restart the function app.",
    ),
    "internal_error": CatalogEntry(
        500,
        "Internal error",
        True,
        "Retry later; if it persists, report the requestId.",
    ),
}


OUTCOME_UNKNOWN_HINT = (
    "Outcome unknown: Genesys may have placed the call. Check the Genesys conversation list (or the "
    "conversation, if you have its id): a retry with the same Idempotency-Key only replays this answer, and a "
    "request with a new key places the call again, so send one only once you know no call was placed."
)


@dataclass
class Upstream:
    """What Genesys said, kept for support tickets (Genesys asks for the correlation id)."""

    status: int | None
    code: str | None
    message: str | None
    correlation_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "correlationId": self.correlation_id,
        }


@dataclass(eq=False)
class Problem(Exception):
    """A catalog failure raised anywhere below the HTTP layer and rendered once by it."""

    code: str
    detail: str
    hint: str | None = None
    field: str | None = None
    upstream: Upstream | None = None
    retry_after: int | None = None
    outcome_unknown: bool = False  # the create may have reached Genesys: a retry could ring twice
    extensions: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.code not in CATALOG:
            raise ValueError(f"unknown problem code {self.code!r}")
        super().__init__(f"{self.code}: {self.detail}")

    @property
    def entry(self) -> CatalogEntry:
        return CATALOG[self.code]

    @property
    def status(self) -> int:
        return self.entry.status

    def headers(self) -> dict[str, str]:
        """`Retry-After` where the caller should wait: always on 429 and 503."""
        if self.retry_after or self.status in (429, 503):
            return {"Retry-After": str(self.retry_after or DEFAULT_RETRY_AFTER_SECONDS)}
        return {}

    def to_json(self, request_id: str) -> dict[str, Any]:
        entry = self.entry
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.code,
            "title": entry.title,
            "status": entry.status,
            "detail": self.detail,
            "code": self.code,
            "hint": self.hint or (OUTCOME_UNKNOWN_HINT if self.outcome_unknown else entry.hint),
            # A call that may exist: the same key only replays this answer, and another could ring twice
            "retryable": entry.retryable and not self.outcome_unknown,
            "requestId": request_id,
        }
        if self.field is not None:
            body["field"] = self.field
        if self.upstream is not None:
            body["upstream"] = self.upstream.to_json()
        body.update(self.extensions)
        return body


_ADDRESS_CODES = {"bad.request", "invalid.ani.address"}
_PERMISSION_CODES = {"missing.permissions", "missing.any.permissions", "not.authorized"}
# The token endpoint's errors (RFC 6749 section 5.2): each says the OAuth client is set up wrong, never the call.
_OAUTH_ERRORS = {
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
}


def problem_from_genesys(status: int, body: Any, correlation_id: str | None, *, creating_call: bool) -> Problem:
    """Map one Genesys error answer (ErrorBody or OAuth error) to the catalog.

    `creating_call` matters twice: a 400 on the create is the infamous "Malformed participant address"
    family, and a create answered anything but a 4xx other than 408 leaves the outcome unknown: a 408
    `client.timeout` says a part of Genesys gave up waiting, not that nothing acted.
    """
    # Only strings: a gateway in front may put an object where Genesys puts a code
    said_as = {name: value for name, value in body.items() if isinstance(value, str)} if isinstance(body, dict) else {}
    code = said_as.get("code") or said_as.get("error")
    message = said_as.get("message") or said_as.get("error_description")
    upstream = Upstream(status, code, message, correlation_id)
    said = f"Genesys Cloud answered {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")

    if said_as.get("error") in _OAUTH_ERRORS or status == 401:  # `error`: only the token endpoint's answers have it
        catalog_code = "genesys_auth_failed"
    elif status == 403 or code in _PERMISSION_CODES:
        catalog_code = "genesys_permission_denied"
    elif code == "not.a.user":
        catalog_code = "genesys_user_context_required"
    elif code == "conversation.error.no.user.station":
        catalog_code = "genesys_no_station"
    elif status == 404:
        catalog_code = "genesys_not_found"
    elif status == 429:
        catalog_code = "genesys_rate_limited"
    elif status == 400 and creating_call and (code in _ADDRESS_CODES or "participant address" in str(message).lower()):
        catalog_code = "genesys_rejected_address"
    elif 400 <= status < 500 and status != 408:
        catalog_code = "genesys_rejected_request"
    elif status == 504:
        catalog_code = "genesys_timeout"
    else:
        catalog_code = "genesys_unavailable"
    # Only a 4xx other than 408 says the create was refused; a redirect or a 408 does not say nothing acted.
    may_have_rung = creating_call and not (400 <= status < 500 and status != 408)
    return Problem(catalog_code, said, upstream=upstream, outcome_unknown=may_have_rung)
