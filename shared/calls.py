"""The use case: turn one API request into exactly one Genesys create-call request.

`plan` makes the whole decision (input, numbers, caller ID, user) without dialing, so
`/api/calls/validate` and `/api/calls` can never disagree; `place` sends the plan.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from shared import phone
from shared.call_status import describe, placed_for
from shared.caller_ids import CallerIds
from shared.config import Settings
from shared.deadline import Deadline
from shared.errors import Problem
from shared.genesys import GenesysClient
from shared.http import is_given, json_kind
from shared.idempotency import Idempotency, JobAttempt, Reply, fingerprint
from shared.ids import is_uuid
from shared.instants import parse_instant
from shared.logs import get_logger
from shared.policy import CallPolicy
from shared.policy.call_cap import Count
from shared.status_callbacks import StatusCallback, StatusWatcher
from shared.status_callbacks.targets import EVENTS_FIELD, URL_FIELD
from shared.storage import READ_TIMEOUT_SECONDS

log = get_logger(__name__)

# Input limits (docs/limits in README): generous for real use, small enough to refuse abuse early.
MAX_NUMBER_LENGTH = 64
MAX_TEXT_LENGTH = 256
MAX_UUI_LENGTH = 512
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_KEY_LENGTH = 128
MAX_ATTRIBUTE_VALUE_LENGTH = 1024
# All of them as compact UTF-8 JSON: 50 values at their length (51 KiB) were refused only as a body over 16 KiB
MAX_ATTRIBUTES_BYTES = 8 * 1024
_LINE_BREAKS_AND_TABS = "\t\n\v\f\r"  # the only control characters an attribute value may hold (a note's lines)
REGION_CODE = re.compile(r"^[A-Za-z]{2}$")
# Names people copy from Genesys's own body or from wrong web advice, with the field we expect instead.
_FIELD_ALIASES = {"phoneNumber": "to", "callerId": "from", "callFromQueueId": "queueId", "number": "to"}
_TEXT_FIELDS = {"callerIdName": MAX_TEXT_LENGTH, "label": MAX_TEXT_LENGTH, "externalContactId": MAX_TEXT_LENGTH}
KNOWN_FIELDS = {
    "to",
    "from",
    "queueId",
    "userId",
    "region",
    "attributes",
    "uuiData",
    "mode",
    "scheduledTime",
    URL_FIELD,
    EVENTS_FIELD,
    *_TEXT_FIELDS,
}
MODES = ("call", "callback")
# CreateCallbackCommand has no user, UUI, label or external contact: refuse them rather than drop them.
# Status callbacks watch a call conversation; a callback waits in a queue until an agent takes it.
_CALL_ONLY_FIELDS = ("userId", "uuiData", "label", "externalContactId", URL_FIELD, EVENTS_FIELD)
CLOCK_SKEW_SECONDS = 60
MAX_SCHEDULE_DAYS = 366  # Genesys refuses a callback too far ahead; a year keeps our date arithmetic in range


def _invalid(field: str, detail: str, hint: str | None = None) -> Problem:
    return Problem("validation_failed", detail, field=field, hint=hint)


def _text(body: dict[str, Any], field: str, max_length: int, *, required: bool = False) -> str | None:
    value = body.get(field)
    if value is None:
        if required:
            raise _invalid(field, f"'{field}' is required.")
        return None
    if not isinstance(value, str):
        raise _invalid(field, f"'{field}' must be a string, not {json_kind(value)}.")
    value = value.strip()
    if not value and required:
        raise _invalid(field, f"'{field}' must not be empty.")
    if len(value) > max_length:
        raise _invalid(field, f"'{field}' is longer than {max_length} characters.")
    if _has_control_characters(value):
        raise _invalid(field, f"'{field}' contains control characters.")
    return value or None


def _genesys_id(body: dict[str, Any], field: str) -> str | None:
    value = _text(body, field, 36)
    if value is not None:
        check_genesys_id(value, field)
    return value


# The routes beside `GET /api/calls/{conversationId}` that a GET of them reaches instead
ROUTES_BESIDE_STATUS = {
    "validate": "a call is validated with POST /api/calls/validate",
    "requests": "an asynchronous request is read with GET /api/calls/requests/{requestId}",
}


def check_genesys_id(value: str, field: str) -> str:
    if not is_uuid(value):
        raise _invalid(field, f"'{field}' must be a Genesys id (a UUID such as 5f1e4c3a-9b1d-4c8e-a1f2-0c9d8e7b6a51).")
    return value


def _attributes(body: dict[str, Any]) -> dict[str, str]:
    value = body.get("attributes")
    if not is_given(value):
        return {}
    if not isinstance(value, dict):
        raise _invalid("attributes", "'attributes' must be an object of string values.")
    if len(value) > MAX_ATTRIBUTES:
        raise _invalid("attributes", f"'attributes' has {len(value)} entries; the limit is {MAX_ATTRIBUTES}.")
    for key, item in value.items():
        if not key.strip() or len(key) > MAX_ATTRIBUTE_KEY_LENGTH or _has_control_characters(key):
            raise _invalid(
                "attributes",
                f"Attribute names must have 1 to {MAX_ATTRIBUTE_KEY_LENGTH} characters, not all blank, and no "
                "control characters.",
            )
        if not isinstance(item, str) or len(item) > MAX_ATTRIBUTE_VALUE_LENGTH:
            raise _invalid(
                "attributes",
                f"Attribute {key[:40]!r} must be a string of at most {MAX_ATTRIBUTE_VALUE_LENGTH} characters.",
            )
        if _has_control_characters(item, allowed=_LINE_BREAKS_AND_TABS):
            raise _invalid("attributes", f"Attribute {key[:40]!r} holds control characters other than line breaks.")
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_ATTRIBUTES_BYTES:
        raise _invalid(
            "attributes", f"'attributes' is {size} bytes of JSON (UTF-8); the limit is {MAX_ATTRIBUTES_BYTES}."
        )
    return dict(value)


def _has_control_characters(text: str, allowed: str = "") -> bool:
    return any((ord(c) < 32 or ord(c) == 127) and c not in allowed for c in text)


def _scheduled_time(body: dict[str, Any]) -> str | None:
    """An ISO-8601 instant with a time zone, at most MAX_SCHEDULE_DAYS ahead, as Genesys's UTC form. Whether it is
    in the past depends on when the request was received (`CallService._check_policy`); one a year past or more is
    refused here, before a conversion that cannot hold the first years of the calendar."""
    text = _text(body, "scheduledTime", 64)
    if text is None:
        return None
    moment = parse_instant(text)
    if moment is None or moment.tzinfo is None:
        raise _invalid("scheduledTime", "'scheduledTime' must be ISO-8601 with a time zone, e.g. 2026-12-01T15:30:00Z.")
    ahead = moment - datetime.now(timezone.utc)  # aware arithmetic: no overflow near year 1 or 9999
    if ahead > timedelta(days=MAX_SCHEDULE_DAYS):
        raise _invalid("scheduledTime", f"'scheduledTime' is more than {MAX_SCHEDULE_DAYS} days ahead.")
    if ahead < -timedelta(days=MAX_SCHEDULE_DAYS):
        raise _invalid("scheduledTime", "'scheduledTime' is in the past.")
    return _genesys_time(moment)


def _genesys_time(moment: datetime) -> str:
    """The UTC form Genesys reads for `callbackScheduledTime`."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _instant(genesys_time: str) -> datetime:
    return datetime.strptime(genesys_time, "%Y-%m-%dT%H:%M:%S.000Z").replace(tzinfo=timezone.utc)


def _mode(body: dict[str, Any]) -> str:
    mode = _text(body, "mode", 16) or "call"
    if mode not in MODES:
        raise _invalid("mode", f"'mode' must be one of {', '.join(MODES)}.")
    if mode == "callback":
        if not _genesys_id(body, "queueId"):  # parsed as the request reads it: blank is absent
            raise _invalid("queueId", "A callback needs the 'queueId' of the queue whose agents will call back.")
        given = [field for field in _CALL_ONLY_FIELDS if is_given(body.get(field))]
        if given:
            raise _invalid(given[0], f"'{given[0]}' does not apply to callbacks.")
    elif is_given(body.get("scheduledTime")):
        raise _invalid("scheduledTime", '\'scheduledTime\' applies only to "mode": "callback".')
    return mode


def _is_allowed(genesys_id: str, allowed: frozenset[str] | None) -> bool:
    """Whether an allow-list setting (lowercase ids; None for `*`) admits the id."""
    return allowed is None or genesys_id.lower() in allowed


@dataclass(frozen=True)
class CallRequest:
    """A validated API request, before any number is interpreted."""

    to: str
    from_: str | None
    queue_id: str | None
    user_id: str | None
    region: str | None
    attributes: dict[str, str]
    passthrough: dict[str, str]  # callerIdName, uuiData, label, externalContactId as given
    mode: str = "call"
    scheduled_time: str | None = None
    status_callback: StatusCallback | None = None  # ours: never sent to Genesys

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> CallRequest:
        unknown = sorted(set(body) - KNOWN_FIELDS)
        if unknown:
            suggestions = [f"'{_FIELD_ALIASES[f]}' instead of '{f}'" for f in unknown if f in _FIELD_ALIASES]
            raise _invalid(
                unknown[0],
                f"Unknown field(s): {', '.join(unknown)[:200]}.",
                hint=("Use " + ", ".join(suggestions) + ".") if suggestions else "Remove the unknown fields.",
            )
        region = _text(body, "region", 2)
        if region is not None and not (REGION_CODE.fullmatch(region) and phone.is_known_region(region)):
            raise _invalid("region", f"'region' must be an ISO country code such as US or GB, not {region!r}.")
        mode = _mode(body)
        passthrough = {name: _text(body, name, limit) for name, limit in _TEXT_FIELDS.items()}
        passthrough["uuiData"] = _text(body, "uuiData", MAX_UUI_LENGTH)
        return cls(
            to=_text(body, "to", MAX_NUMBER_LENGTH, required=True) or "",
            from_=_text(body, "from", MAX_NUMBER_LENGTH),
            queue_id=_genesys_id(body, "queueId"),
            user_id=_genesys_id(body, "userId"),
            region=region.upper() if region else None,
            attributes=_attributes(body),
            passthrough={k: v for k, v in passthrough.items() if v is not None},
            mode=mode,
            scheduled_time=_scheduled_time(body),
            status_callback=StatusCallback.from_json(body),
        )


@dataclass(frozen=True)
class CallPlan:
    """Everything decided about one call: what we understood and the exact Genesys request."""

    to: phone.PhoneNumber
    caller_id: str
    user_id: str | None  # None for a callback: the queue's agents call
    queue_id: str | None
    genesys_body: dict[str, Any]
    mode: str = "call"
    scheduled_time: str | None = None
    scheduled_by_calling_hours: bool = False  # a callback asked for now, moved to the callee's calling hours
    status_callback: StatusCallback | None = None
    caller_id_chosen: bool = False  # no `from` was sent: the caller ID came from the settings or the queue

    @property
    def fingerprint(self) -> str:
        """What makes two requests the same call: the user, the exact Genesys body and where its status goes.

        What the function chose rather than the caller asked is left out. A time the calling hours chose
        depends on when the request came, and a retry that comes once the hours have opened is still the same
        callback. A caller ID chosen for a request without `from` is the queue's, read from Genesys and cached
        per instance: a retry on an instance that read it after it changed is still the same call.
        """
        chosen = {"callbackScheduledTime"} if self.scheduled_by_calling_hours else set()
        if self.caller_id_chosen:
            chosen.add("callerId")
        body = {name: value for name, value in self.genesys_body.items() if name not in chosen}
        meaning: dict[str, Any] = {"mode": self.mode, "userId": self.user_id, "body": body}
        if self.status_callback is not None:
            meaning["statusCallback"] = self.status_callback.to_json()
        return fingerprint(meaning)

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "to": self.to.e164,
            "from": self.caller_id,
            "userId": self.user_id,
            "queueId": self.queue_id,
            "understood": {"to": self.to.to_json()},
        }
        if self.mode == "callback":
            document.update(mode="callback", scheduledTime=self.scheduled_time)
            if self.scheduled_by_calling_hours:
                document["scheduledByCallingHours"] = True
        return document


class CallService:
    def __init__(
        self,
        settings: Settings,
        caller_ids: CallerIds,
        genesys: GenesysClient,
        idempotency: Idempotency,
        policy: CallPolicy,
        watcher: StatusWatcher | None = None,
    ) -> None:
        self._settings = settings
        self._caller_ids = caller_ids
        self._genesys = genesys
        self._idempotency = idempotency
        self._policy = policy
        self._watcher = watcher

    def plan(self, request: CallRequest) -> CallPlan:
        """Decide everything about the call, or raise the problem dialing would meet; sends no create."""
        to, region = self._understood(request)
        plan = self._build(request, to, region, self._check_policy(request, to, self._policy.clock()))
        self._check_signing(plan.status_callback)
        return plan

    def request_call(
        self,
        request: CallRequest,
        idempotency_key: str | None,
        request_id: str,
        *,
        job: JobAttempt | None = None,
    ) -> tuple[Reply, bool]:
        """Plan and place once. A retry of a call already placed (or still being placed) is answered as such even
        when the calling policy would refuse it now (the cap it filled, hours since closed): a sender told
        "refused" would retry until the stored answer expired, and then dial again."""
        checked_at = self._policy.clock()  # before the checks: a send that long after them checks again
        received_at = job.accepted_at if job is not None else checked_at
        to, region = self._understood(request)
        schedule_at, seen = self._checked(request, to, region, idempotency_key, received_at, queued=job is not None)
        if seen is not None:
            # Through the claim: its answer replays, an attempt in flight is waited for, one that may have sent
            # answers "outcome unknown"; and if the claim turns out free, the policy answers again.
            recheck = functools.partial(self._recheck, request, to, received_at)
            return self._place_once(seen, idempotency_key, request_id, checked_at, job=job, recheck=recheck)
        plan = self._build(request, to, region, schedule_at)
        return self._place_once(plan, idempotency_key, request_id, checked_at, job=job)

    def admit(self, request: CallRequest, idempotency_key: str | None) -> None:
        """What an asynchronous request must pass before it is queued: `plan`, except that a policy refusal
        yields when this very request was seen before (its job will replay that answer)."""
        to, region = self._understood(request)
        _, seen = self._checked(request, to, region, idempotency_key, self._policy.clock())
        if seen is None:
            plan = self._build(request, to, region, None)  # the caller ID: seen, it was built already
            if plan.status_callback is not None and not self._idempotency.recorded(idempotency_key, plan.fingerprint):
                self._check_signing(plan.status_callback)  # not for a request placed already: its job replays

    def _understood(self, request: CallRequest) -> tuple[phone.PhoneNumber, str]:
        """The number and the region it was read in, once the request's user, queue and callback are allowed."""
        region = request.region or self._settings.default_phone_region
        to = phone.normalize(request.to, region, field="to", allow_premium_rate=self._settings.allow_premium_rate)
        self._check_allowed(request)
        if request.status_callback is not None:
            self._check_callback(request.status_callback)
        return to, region

    def _check_policy(self, request: CallRequest, to: phone.PhoneNumber, received_at: float) -> datetime | None:
        """The calling policy; for a callback asked for now outside the hours, when to schedule it. A
        `scheduledTime` is in the past when it was already past as the request was received (`received_at`): a
        queued job is judged by when it was accepted, and a retry of one placed already replays (see `_checked`)."""
        scheduled = _instant(request.scheduled_time) if request.scheduled_time else None
        if scheduled is not None and scheduled.timestamp() < received_at - CLOCK_SKEW_SECONDS:
            raise _invalid("scheduledTime", "'scheduledTime' is in the past.")
        return self._policy.check(to, callback=request.mode == "callback", scheduled=scheduled)

    def _checked(
        self,
        request: CallRequest,
        to: phone.PhoneNumber,
        region: str,
        idempotency_key: str | None,
        received_at: float,
        *,
        queued: bool = False,
    ) -> tuple[datetime | None, CallPlan | None]:
        """The policy's word: when to schedule a callback it moved (None: now), or, when it refuses a request the
        store holds a record of, the plan that request was placed with; any other refusal is raised. A queued job
        (`queued`) was received when it was accepted."""
        started = time.monotonic()
        try:
            return self._check_policy(request, to, received_at), None
        except Problem as refusal:
            if refusal.status >= 500 and time.monotonic() - started >= READ_TIMEOUT_SECONDS:
                raise  # storage that hung on the policy's reads would hang on the request's own record too
            seen = self._seen_as(request, to, region, idempotency_key, received_at if queued else None)
            if seen is None:
                raise
            return None, seen

    def _recheck(self, request: CallRequest, to: phone.PhoneNumber, received_at: float) -> None:
        """A refused request whose earlier attempt ended without a call: the policy's answer now (the one before
        the wait may be out of date: that attempt's count was taken back), and if it now allows the call, a
        prompt retry through the usual way."""
        self._check_policy(request, to, received_at)
        raise Problem(
            "request_in_progress",
            "An earlier attempt of this request ended without placing the call; send it again.",
            retry_after=1,
        )

    def _seen_as(
        self,
        request: CallRequest,
        to: phone.PhoneNumber,
        region: str,
        idempotency_key: str | None,
        queued_at: float | None,
    ) -> CallPlan | None:
        """The plan this very request was placed with, when the store holds a record of it as the claim will find
        it (a queued job's as of its acceptance, `queued_at`); None when the policy's refusal is the answer. A
        storage outage the policy met (the do-not-call list or the cap could not be read) is looked past too, unless
        storage hung (see `_checked`): told "nothing was dialed" of a call an earlier attempt placed, a sender would
        send it anew. Found free, the claim asks the policy again (`_recheck`), and meets the outage again if it
        lasts."""
        try:
            plan = self._build(request, to, region, None)  # as placed: see CallPlan.fingerprint
            return plan if self._idempotency.recorded(idempotency_key, plan.fingerprint, queued_at) else None
        except Problem:  # the caller ID, the key or the store: the refusal stands
            return None

    def _build(
        self, request: CallRequest, to: phone.PhoneNumber, region: str, schedule_at: datetime | None
    ) -> CallPlan:
        """The Genesys request for an understood, allowed call (the caller ID is chosen here, last)."""
        if request.mode == "callback":
            return self._plan_callback(request, to, region, schedule_at)
        user_id = request.user_id or self._settings.call_user_id
        if user_id is None:
            raise _invalid("userId", "No 'userId' was sent and GENESYS_CALL_USER_ID is not set.")
        caller_id = self._caller_ids.choose(request.from_, request.queue_id, region)
        body: dict[str, Any] = {"phoneNumber": to.e164, "callerId": caller_id}
        if request.queue_id:
            body["callFromQueueId"] = request.queue_id
        if request.attributes:
            body["attributes"] = request.attributes
        body.update(request.passthrough)
        return CallPlan(
            to,
            caller_id,
            user_id,
            request.queue_id,
            body,
            status_callback=request.status_callback,
            caller_id_chosen=request.from_ is None,
        )

    def _check_signing(self, callback: StatusCallback | None) -> None:
        """A call asking for callbacks must be able to sign them (without a secret every event would fail), checked
        before a new call is placed, not before a replay: a request placed already is answered as it was."""
        if callback is not None and self._watcher is not None:
            self._watcher.check_signing()

    def _check_callback(self, callback: StatusCallback) -> None:
        """A status callback goes only to an allowed host (422 naming the field), checked before dialing."""
        if self._watcher is None:
            raise Problem("configuration_error", "Status callbacks are not available in this deployment.")
        self._watcher.check(callback)

    def _check_allowed(self, request: CallRequest) -> None:
        """Refuse a user or queue the settings do not allow, before anything (even a queue read) reaches Genesys."""
        if request.user_id and not _is_allowed(request.user_id, self._settings.allowed_user_ids):
            raise Problem(
                "user_not_allowed",
                "'userId' is not a user this function may place calls for (ALLOWED_USER_IDS).",
                field="userId",
            )
        if request.queue_id and not _is_allowed(request.queue_id, self._settings.allowed_queue_ids):
            raise Problem(
                "queue_not_allowed",
                "'queueId' is not a queue this function may place calls for (ALLOWED_QUEUE_IDS).",
                field="queueId",
            )

    def _plan_callback(
        self, request: CallRequest, to: phone.PhoneNumber, region: str, schedule_at: datetime | None
    ) -> CallPlan:
        """A `CreateCallbackCommand` (reference/genesys-cloud-api.md) for the same number and caller ID;
        `schedule_at` moves a callback requested outside the callee's calling hours to their start."""
        assert request.queue_id is not None  # CallRequest.from_json requires it for callbacks
        caller_id = self._caller_ids.choose(request.from_, request.queue_id, region)
        body: dict[str, Any] = {
            "routingData": {"queueId": request.queue_id},
            "callbackNumbers": [to.e164],
            "callerId": caller_id,
        }
        scheduled_time = request.scheduled_time or (_genesys_time(schedule_at) if schedule_at else None)
        if scheduled_time:
            body["callbackScheduledTime"] = scheduled_time
        if "callerIdName" in request.passthrough:
            body["callerIdName"] = request.passthrough["callerIdName"]
        if request.attributes:
            body["data"] = request.attributes
        return CallPlan(
            to,
            caller_id,
            None,
            request.queue_id,
            body,
            "callback",
            scheduled_time,
            schedule_at is not None,
            caller_id_chosen=request.from_ is None,
        )

    def status(self, conversation_id: str) -> dict[str, Any]:
        """The call's status from Genesys, mapped to initiated | ringing | connected | ended | failed."""
        meant = ROUTES_BESIDE_STATUS.get(conversation_id.lower().rstrip("/"))
        if meant is not None:  # the host gives a GET of these routes to this one
            raise _invalid("conversationId", f"'{conversation_id}' is no conversation id: {meant}.")
        check_genesys_id(conversation_id, "conversationId")
        conversation = self._genesys.get_call(conversation_id, Deadline(self._settings.call_deadline_seconds))
        self._check_visible(conversation)
        document = describe(conversation)
        try:
            deliveries = self._watcher.deliveries(conversation_id) if self._watcher else None
        except Problem as unreadable:  # the status is Genesys's: a storage outage hides only the deliveries
            log.warning("Status answered without the callback deliveries, unreadable now (%s)", unreadable.code)
            deliveries = None
        if deliveries is not None:
            document["statusCallbacks"] = deliveries
        return document

    def _check_visible(self, conversation: dict[str, Any]) -> None:
        """A caller sees the status (and the numbers) only of calls placed for users and queues it may use: the
        allow-lists apply to reading as to placing. A call showing no agent is placed by no allowed user."""
        users, queues = placed_for(conversation)
        allowed_users, allowed_queues = self._settings.allowed_user_ids, self._settings.allowed_queue_ids
        if allowed_users is not None and not (users and users <= allowed_users):
            raise Problem(
                "user_not_allowed",
                "This call was placed for a user this function may not see (ALLOWED_USER_IDS).",
                field="conversationId",
            )
        if allowed_queues is not None and not queues <= allowed_queues:
            raise Problem(
                "queue_not_allowed",
                "This call was placed for a queue this function may not see (ALLOWED_QUEUE_IDS).",
                field="conversationId",
            )

    def answer(
        self,
        body: Any,
        idempotency_key: str | None,
        request_id: str,
        *,
        job: JobAttempt | None = None,
    ) -> tuple[Reply, bool]:
        """One call request from a webhook, an event or a queued job, answered as a reply (problems included)."""
        try:
            if not isinstance(body, dict):
                raise Problem("validation_failed", "The delivery's data must be a call request object.", field="data")
            request = CallRequest.from_json(body)
            return self.request_call(request, idempotency_key, request_id, job=job)
        except Problem as problem:
            return Reply.of_problem(problem, request_id), False

    def _place_once(
        self,
        plan: CallPlan,
        idempotency_key: str | None,
        request_id: str,
        checked_at: float,
        *,
        job: JobAttempt | None = None,
        recheck: Callable[[], None] | None = None,
    ) -> tuple[Reply, bool]:
        """Place the call unless this request (same key, or same call inside the window) already did; with
        `recheck` (the policy refused it), answer only as the request already was, else as `recheck` does.

        A queued `job` marks its own record right before the request that could dial. Returns the answer and
        whether it is a replay.
        """

        def dial(mark_sent: Callable[[], None]) -> Reply:
            if recheck is not None:  # the claim was free: nothing of this request to tell
                recheck()
            self._check_signing(plan.status_callback)
            counted: Count | None = None
            marked = False
            scheduled = _instant(plan.scheduled_time) if plan.scheduled_time else None

            def before_each_send() -> None:
                nonlocal counted, marked
                self._policy.recheck(plan.to, checked_at, scheduled=scheduled)
                if marked:  # a re-send (after a 429): counted and marked already
                    return
                counted = self._policy.count(plan.to)  # once per placed call: after the claim, before sending
                mark_sent()  # a queued job's own record, then the call's claim
                marked = True

            try:
                answer = self.place(plan, request_id, before_send=before_each_send)
            except Problem as problem:
                if counted is not None and not problem.outcome_unknown:  # not placed: nothing sent, or refused
                    self._policy.uncount(plan.to, counted)
                raise
            return Reply(201, answer, {"Location": f"/api/calls/{answer['conversationId']}"})

        reply, replayed = self._idempotency.run(idempotency_key, plan.fingerprint, dial, request_id=request_id, job=job)
        # After the answer is recorded; a replay starts a watch that failed to start (it is idempotent).
        self._watch(reply, plan.mode, plan.status_callback)
        return reply, replayed

    def watch_recovered(self, body: dict[str, Any], reply: Reply) -> None:
        """Watch the call of a queued job answered from its call's own record: the delivery that placed it ended
        before its watch was written (storage failed, or the worker died), and this answer comes from no replay."""
        try:
            request = CallRequest.from_json(body)  # accepted once: the same fields, read again
        except Problem:
            return
        self._watch(reply, request.mode, request.status_callback)

    def _watch(self, reply: Reply, mode: str, callback: StatusCallback | None) -> None:
        if reply.status == 201 and mode == "call" and self._watcher is not None:
            self._watcher.start(reply.body["conversationId"], reply.body["requestId"], callback, reply.claimed_at)

    def place(self, plan: CallPlan, request_id: str, before_send: Callable[[], None] = lambda: None) -> dict[str, Any]:
        """Send the one create request and describe the call that Genesys accepted."""
        log.info(
            "Placing %s to %s from %s for %s",
            plan.mode,
            phone.mask(plan.to.e164),
            phone.mask(plan.caller_id),
            f"user {plan.user_id}" if plan.user_id else f"queue {plan.queue_id}",
        )
        deadline = Deadline(self._settings.call_deadline_seconds)
        if plan.user_id is None:
            created = self._genesys.create_callback(plan.genesys_body, deadline, before_send)
        else:
            created = self._genesys.create_call(plan.user_id, plan.genesys_body, deadline, before_send)
        log.info(
            "Genesys created conversation %s (correlation %s)",
            created.conversation_id,
            created.correlation_id,
        )
        return {
            "conversationId": created.conversation_id,
            **plan.to_json(),
            "status": "scheduled" if plan.mode == "callback" else "initiated",
            "requestId": request_id,
        }
