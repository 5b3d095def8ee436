"""Watching a placed call and posting its status events: a chain of delayed storage-queue messages.

A serverless app cannot hold Genesys's notification WebSocket, and EventBridge delivery needs an AWS
account (docs/callbacks.md), so the function polls: after a call is placed it writes a record
`callbacks:<conversationId>` in the idempotency table and queues a message to `call-status`, visible after
`STATUS_POLL_SECONDS`. Each run reads the conversation once, records each newly reached event, posts the
due deliveries, and queues the next step, visible after a doubling interval (capped at
`STATUS_POLL_MAX_SECONDS`), a Genesys `Retry-After`, or a delivery's retry time, until the call has ended or
failed and every delivery is settled, or `STATUS_WATCH_MAX_SECONDS` have passed.

The queue delivers at least once. Each message carries the step (`tick`) it is for and an id of its own
(`stepId`), and the record names the current step and the one message that may run it: an older step's
duplicate does nothing, a step from the future (its record write is still on its way) is retried later, and a
message the record does not name is a stray. Strays come from a step that ran twice: two copies of one message
in one batch both read the record before either wrote it, or a step whose record write failed ran again; both
runs queue a next step, and only the run whose record write landed names its own. Without that, both next
steps would act, and every later step with them (two chains, each reading the call and posting every event).
The next message is queued before the record moves on, and never visible sooner than a second, so a lost
record write repeats the step instead of ending the chain; a repeated step may post an event again, always with
the same `webhook-id`. Messages without an id, from releases before ids, still run (without the stray check);
those releases drop messages with one, so a rollback to them ends the watches in flight.
"""

from __future__ import annotations

import copy
import json
import math
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from shared.call_status import describe
from shared.deadline import Deadline
from shared.errors import Problem
from shared.genesys import GenesysClient
from shared.idempotency import PURGE_SCHEDULE, Record, Store, landed_unheard
from shared.ids import is_uuid
from shared.logs import get_logger, log_fields
from shared.status_callbacks.delivery import (
    DELIVERED,
    MAX_ATTEMPTS,
    PENDING,
    UNDELIVERABLE,
    Poster,
    event_document,
    iso_now,
)
from shared.status_callbacks.subscriptions import Subscription, Subscriptions
from shared.status_callbacks.targets import TERMINAL, StatusCallback, check_url
from shared.storage import MAX_QUEUE_DELAY_SECONDS, QueueSender, RetryLater

INSERT_PAUSES_SECONDS = (0.5, 2.0)  # a watch record refused is tried again after these: the caller waits for it
STEP_BUDGET_SECONDS = 20.0  # one step's deliveries, so a slow receiver cannot hold a worker thread for long
log = get_logger(__name__)

QUEUE_NAME = "call-status"
RECORD_PREFIX = "callbacks:"
WATCHING, FINISHED = "watching", "finished"
CALLBACK = "callback"  # the request's own statusCallbackUrl; subscriptions are "sub:<id>"
GONE_STATUSES = frozenset({"404", "410"})  # a subscription's URL answering these may have no flow behind it
MIN_DELAY_SECONDS = 1  # never sooner: the record write of this step lands first
POLL_DEADLINE_SECONDS = 4.0  # a 429 asking a longer wait is re-queued with its Retry-After, not slept on
# Reads Genesys refuses in a row (403: the role lacks the permission; 404: no such conversation for this org)
# before the watch stops: at 5, 15, 35, 75 and 135 s, past a new conversation's first moments. Polled on, each
# watch would cost 123 refused reads of the rate limit the calls share.
MAX_REFUSED_READS = 5
_REFUSED_READS = frozenset({"genesys_permission_denied", "genesys_not_found"})
# A step whose message became visible this long ago and has not run was lost: the queue's own retries (host.json:
# 5 tries 2 s apart) are over well before. A backlog longer than this resumes live watches: harmless (the old
# messages find their steps taken), but each is logged as stalled.
STALLED_AFTER_SECONDS = 300.0
RESUME_MAX_WATCHES = 1000  # per run: a timer run stays short however many watches stalled
RESUME_SECONDS = 240.0  # and at most this long, as the purge: the rest wait for the next run
MAX_RESUMES = 3  # in a row: a step that fails every time (to the poison queue) is not retried for a day
RESUME_SCHEDULE = PURGE_SCHEDULE  # the same moments as the purge: the app wakes no more often
_LEGACY_STEP_FIELDS = {"conversationId", "tick"}  # messages of releases before steps had ids
_STEP_FIELDS = {"conversationId", "tick", "stepId"}
_STEP_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class WatchSettings:
    allowed_hosts: frozenset[str]
    allow_insecure_loopback: bool
    poll_seconds: float = 5.0
    max_poll_interval_seconds: float = 60.0
    max_age_seconds: float = 7200.0
    retry_seconds: float = 5.0
    retention_seconds: float = 24 * 3600.0

    def poll_interval(self, polls: int) -> float:
        """The wait before the next read after `polls` reads: doubling from poll_seconds, capped."""
        return min(self.max_poll_interval_seconds, self.poll_seconds * 2 ** min(polls, 30))

    def max_polls(self) -> int:
        """The most conversation reads one call can cost (a read whose Retry-After is longer only lowers it)."""
        elapsed, polls = self.poll_interval(0), 1
        while elapsed + self.poll_interval(polls) <= self.max_age_seconds:
            elapsed += self.poll_interval(polls)
            polls += 1
        return polls + 1  # and the read that finds the maximum age passed


def _one_document_per_event(data: dict[str, Any]) -> None:
    """A record of the previous release kept a copy of the event in each delivery: keep one per event."""
    events = data.setdefault("events", {})
    for entry in data["deliveries"]:
        document = entry.pop("document", None)
        if document is not None:
            events.setdefault(entry["name"], document)


def _next_wake(data: dict[str, Any]) -> float | None:
    """When the watch must act next: its next read, or a pending delivery's retry; None once all is settled."""
    wake = [entry["nextAt"] for entry in data["deliveries"] if entry["status"] == PENDING]
    if data["watching"]:
        wake.append(data["nextPollAt"])
    return min(wake, default=None)


def record_key(conversation_id: str) -> str:
    return RECORD_PREFIX + conversation_id.lower()


@dataclass(frozen=True)
class _Step:
    conversation_id: str
    tick: int
    step_id: str | None  # None: queued by a release before steps had ids

    @classmethod
    def new(cls, conversation_id: str, tick: int) -> _Step:
        return cls(conversation_id, tick, uuid.uuid4().hex)

    def message(self) -> str:
        """The queue message; only steps of this release are queued, and they always carry their id."""
        assert self.step_id is not None
        step = {"conversationId": self.conversation_id, "tick": self.tick, "stepId": self.step_id}
        return json.dumps(step, separators=(",", ":"))

    @classmethod
    def read(cls, message: str) -> _Step | None:
        try:
            step = json.loads(message)
        except ValueError:
            return None
        if not isinstance(step, dict) or set(step) not in (_LEGACY_STEP_FIELDS, _STEP_FIELDS):
            return None
        conversation_id, tick, step_id = step["conversationId"], step["tick"], step.get("stepId")
        if not is_uuid(conversation_id):
            return None
        if not isinstance(tick, int) or isinstance(tick, bool) or tick < 0:
            return None
        if "stepId" in step and not (isinstance(step_id, str) and _STEP_ID.fullmatch(step_id)):
            return None
        return cls(conversation_id, tick, step_id)


def reached(described: dict[str, Any], now_iso: str) -> list[tuple[str, str]]:
    """The statuses a described call has passed, with when: a connected call rang, an ended call that had
    connected passed both; a failed call reached only `failed`."""
    status = described["status"]
    connected_at = described.get("connectedTime") or now_iso
    ended_at = described.get("endTime") or now_iso
    if status == "ringing":
        return [("ringing", now_iso)]
    if status == "connected":
        return [("ringing", connected_at), ("connected", connected_at)]
    if status == "ended":
        passed = [("ringing", connected_at), ("connected", connected_at)] if described.get("connectedTime") else []
        return [*passed, ("ended", ended_at)]
    if status == "failed":
        return [("failed", ended_at)]
    return []


def _one_per_url(subscriptions: list[Subscription]) -> list[Subscription]:
    """The latest subscription of each URL. A flow turned off whose DELETE was lost, then on again, subscribes its
    URL twice; posting to both would run the flow twice per call."""
    latest: dict[str, Subscription] = {}
    for subscription in sorted(subscriptions, key=lambda subscription: subscription.created_at):
        latest[subscription.url] = subscription
    return list(latest.values())


def _failure(described: dict[str, Any]) -> dict[str, Any] | None:
    failure = described.get("failure")
    if not failure:
        return None
    return {key: failure[key] for key in ("code", "title", "hint", "retryable")}


class StatusWatcher:
    """Starts watches after calls are placed, runs each queued step, and shows a call's deliveries."""

    def __init__(
        self,
        store: Store,
        queue: QueueSender | None,
        genesys: GenesysClient,
        poster: Poster,
        subscriptions: Subscriptions,
        settings: WatchSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._queue = queue
        self._genesys = genesys
        self._poster = poster
        self._subscriptions = subscriptions
        self._settings = settings
        self._clock = clock

    def check(self, callback: StatusCallback) -> None:
        """Refuse a callback URL the settings do not allow, before dialing (422 naming the field)."""
        check_url(
            callback.url, self._settings.allowed_hosts, allow_insecure_loopback=self._settings.allow_insecure_loopback
        )
        if self._queue is None:
            raise Problem(
                "configuration_error",
                "Status callbacks need a storage queue: set AzureWebJobsStorage (or its identity-based "
                "AzureWebJobsStorage__queueServiceUri and __tableServiceUri).",
            )

    def check_signing(self) -> None:
        """Raise the problem signing a callback's events would meet (no secret to sign with, an unreadable vault):
        checked before a call that asks for callbacks is placed, and by readiness."""
        self._poster.check_signing()

    def start(
        self, conversation_id: str, request_id: str, callback: StatusCallback | None, placed_at: float | None = None
    ) -> None:
        """Watch a placed call when it asked for callbacks or flows subscribed; idempotent (a replay of the
        request finds the record). A failure here is logged, never the caller's: the call was placed.

        A replay gives `placed_at`: a call placed longer ago than a watch lasts is not watched anew. Its watch has
        ended, and its record may be purged (it outlives the watch by a retention, while a signed delivery's answer
        is replayed for days): a new one would post the call's events again."""
        try:
            if self._queue is None or (callback is None and not self._subscriptions.any()):
                return
            now = self._clock()
            if placed_at is not None and now - placed_at > self._settings.max_age_seconds:
                return
            first = _Step.new(conversation_id, 0)
            data: dict[str, Any] = {
                "conversationId": conversation_id,
                "requestId": request_id,
                "callback": callback.to_json() if callback else None,
                "tick": 0,
                "stepId": first.step_id,
                "startedAt": now,
                "polls": 0,
                "nextPollAt": now + self._settings.poll_interval(0),
                "watching": True,
                "status": "initiated",
                "events": {},  # each reached event's document, once however many targets it goes to
                "deliveries": [],
            }
            expires_at = now + self._settings.max_age_seconds + self._settings.retention_seconds
            delay = self._delay(data["nextPollAt"], now)
            key = record_key(conversation_id)
            record = Record(key, "", WATCHING, request_id, now, expires_at, data=data, due_at=now + delay)
            if not self._insert(record):
                return  # watched already: a replay of the request
            # The record goes first and stays if the message is refused: the caller has its answer and will not
            # retry, so only the timer can start the watch then (`resume_stalled`), once the step is overdue.
            self._queue.send(first.message(), delay)
            log.info("Watching conversation %s for status events", conversation_id)
        except Exception as error:  # noqa: BLE001 - the call is placed; its callbacks wait for the timer, or are lost
            log.error("Could not start watching conversation %s: %s", conversation_id, type(error).__name__)

    def _insert(self, record: Record) -> bool:
        """Write a new watch record: True once written (by this request, its answer perhaps lost), False when a
        replay of the request wrote it. Tried again after a storage failure: the SDK does not resend an insert
        whose connection dropped, and without the record no timer can start the watch."""
        for pause in INSERT_PAUSES_SECONDS:
            try:
                return self._insert_once(record)
            except Problem:
                time.sleep(pause)
        return self._insert_once(record)

    def _insert_once(self, record: Record) -> bool:
        return self._store.create(record) is not None or landed_unheard(self._store, record) is not None

    def deliveries(self, conversation_id: str) -> list[dict[str, Any]] | None:
        """The request's own callback deliveries so far, or None when it asked for none."""
        record = self._store.read(record_key(conversation_id))
        if record is None or record.data is None or record.data.get("callback") is None:
            return None
        return [
            {"event": entry["name"], "status": entry["status"], "attempts": entry["attempts"]}
            for entry in record.data["deliveries"]
            if entry["target"] == CALLBACK
        ]

    def run(self, message: str) -> None:
        """One queued step; raises RetryLater for a step whose record is not written yet."""
        step = _Step.read(message)
        if step is None:
            log.error("Dropped a call-status message this app did not write")
            return
        conversation_id, tick = step.conversation_id, step.tick
        record = self._store.read(record_key(conversation_id))
        if record is None or record.data is None or record.state == FINISHED or tick < record.data["tick"]:
            log.info("Status step %s of %s is done already; a duplicate does nothing", tick, conversation_id)
            return
        if tick > record.data["tick"]:
            raise RetryLater(f"step {tick} of {conversation_id} arrived before its record")
        # A message without an id was queued by an earlier release (during an upgrade, or by an instance still
        # on it, which moves the record on without naming its message): it runs, as it did there.
        named = record.data.get("stepId")
        if step.step_id is not None and named is not None and step.step_id != named:
            log.info("Status step %s of %s came from a run that lost its record write; dropped", tick, conversation_id)
            return
        with log_fields(request_id=record.owner):
            self._step(record, conversation_id, tick)

    def _step(self, record: Record, conversation_id: str, tick: int) -> None:
        now = self._clock()
        data = copy.deepcopy(record.data or {})
        _one_document_per_event(data)
        if data["watching"] and now >= data["nextPollAt"]:
            self._poll(data, conversation_id, now)
        self._deliver_due(data, now)
        data.pop("resumes", None)  # a step ran: the stalls it counted are over
        wake = _next_wake(data)
        state, due_at = WATCHING, None
        if wake is not None:
            due_at = self._queue_next(data, conversation_id, tick + 1, self._delay(wake, now))
        else:
            state = FINISHED
            log.info("Conversation %s: status events settled after %s reads", conversation_id, data["polls"])
        if self._store.replace(replace(record, state=state, data=data, due_at=due_at)) is None:
            log.info("Another delivery of step %s of %s recorded it first", tick, conversation_id)

    def _queue_next(self, data: dict[str, Any], conversation_id: str, tick: int, delay: int) -> float:
        """Queue step `tick` and name it in `data`, which the caller then writes (the message goes out first);
        when the message becomes visible: the record's due time, which the resume goes by."""
        following = _Step.new(conversation_id, tick)
        data["tick"], data["stepId"] = following.tick, following.step_id
        assert self._queue is not None  # a record exists only where a queue does
        self._queue.send(following.message(), delay)
        return self._clock() + delay

    def resume_stalled(self, limit: int = RESUME_MAX_WATCHES, seconds: float = RESUME_SECONDS) -> int:
        """Queue a new step for each watch whose step became due `STALLED_AFTER_SECONDS` ago and never ran; how many.

        A step's message can be lost: storage refused a new watch's first message, or the app stopped between
        writing the watch and queuing it, or a step's record write took longer than its successor's retries (the
        successor went to the poison queue). The new step is one tick on, and the
        record names it by an ETag-conditional write, so if the old message turns up after all it does nothing,
        and a step that ran meanwhile keeps its own chain (this one's message is then a stray).

        A storage outage ends the run: every other watch would wait out the same retries (a queue that hangs cost
        16 s a watch, hours for a run), and the next run resumes them.
        """
        if self._queue is None:
            return 0
        now, ends = self._clock(), time.monotonic() + seconds
        resumed = 0
        for record in self._store.overdue(WATCHING, now - STALLED_AFTER_SECONDS, limit):
            if time.monotonic() >= ends:
                log.warning(
                    "Resumed %d stalled status watches in %.0f s; the rest wait for the next run", resumed, seconds
                )
                break
            with log_fields(request_id=record.owner):
                try:
                    resumed += self._resume(record)
                except Problem as problem:
                    log.error(
                        "Could not resume the status watch %s (%s); the rest wait for the next run",
                        record.key,
                        problem.code,
                    )
                    break
                except Exception as error:  # noqa: BLE001 - one watch must not hold up the others
                    log.error("Could not resume the status watch %s: %s", record.key, type(error).__name__)
        return resumed

    def _resume(self, record: Record) -> bool:
        data = copy.deepcopy(record.data or {})  # only status watches are written "watching", always with data
        conversation_id = data["conversationId"]
        data["resumes"] = data.get("resumes", 0) + 1  # stalls in a row: any step that runs clears the count
        if data["resumes"] > MAX_RESUMES:  # its steps keep failing: the poison queue's verdict stands
            for entry in data["deliveries"]:
                if entry["status"] == PENDING:
                    entry["status"] = UNDELIVERABLE
            if self._store.replace(replace(record, state=FINISHED, data=data, due_at=None)) is not None:
                log.error(
                    "Status watch of conversation %s stalled again after %s resumes; ended",
                    conversation_id,
                    MAX_RESUMES,
                )
            return False
        due_at = self._queue_next(data, conversation_id, data["tick"] + 1, MIN_DELAY_SECONDS)
        if self._store.replace(replace(record, data=data, due_at=due_at)) is None:
            return False  # a step ran meanwhile: its chain goes on, and the message just queued is a stray
        log.warning("Status watch of conversation %s had stalled (its step never ran); resumed", conversation_id)
        return True

    @staticmethod
    def _delay(at: float, now: float) -> int:
        return min(max(MIN_DELAY_SECONDS, math.ceil(at - now)), MAX_QUEUE_DELAY_SECONDS)  # a Retry-After of a year

    def _poll(self, data: dict[str, Any], conversation_id: str, now: float) -> None:
        data["polls"] += 1
        too_old = now - data["startedAt"] >= self._settings.max_age_seconds
        wait = self._settings.poll_interval(data["polls"])
        try:
            described = describe(self._genesys.get_call(conversation_id, Deadline(POLL_DEADLINE_SECONDS)))
        except Problem as problem:
            if problem.code == "genesys_rate_limited":
                wait = max(wait, float(problem.retry_after or 0))
            refused = data.get("refusedReads", 0) + 1 if problem.code in _REFUSED_READS else 0
            data["refusedReads"] = refused
            data["nextPollAt"] = now + wait
            data["watching"] = not too_old and refused < MAX_REFUSED_READS
            if data["watching"]:
                log.warning(
                    "Reading conversation %s failed (%s); next read in %.0f s", conversation_id, problem.code, wait
                )
            else:
                log.error(
                    "Stopped watching conversation %s: %s; its status events will not be sent",
                    conversation_id,
                    f"Genesys refused {refused} reads in a row ({problem.code})"
                    if refused
                    else "its maximum age passed",
                )
            return
        data["refusedReads"] = 0
        data["status"] = described["status"]
        self._record_events(data, described, now)
        if described["status"] in TERMINAL or too_old:
            data["watching"] = False
            if too_old and described["status"] not in TERMINAL:
                log.error("Stopped watching conversation %s: its maximum age passed before it ended", conversation_id)
        data["nextPollAt"] = now + wait

    def _record_events(self, data: dict[str, Any], described: dict[str, Any], now: float) -> None:
        """Add a pending delivery for each newly reached event each target asked for."""
        targets: list[tuple[str, tuple[str, ...]]] = []
        if data["callback"]:
            targets.append((CALLBACK, tuple(data["callback"]["events"])))
        if described["status"] in TERMINAL:  # flows subscribed to "When a call ends"
            targets += [(f"sub:{s.id}", tuple(TERMINAL)) for s in _one_per_url(self._subscriptions.all())]
        known = {(entry["target"], entry["name"]) for entry in data["deliveries"]}
        for name, occurred_at in reached(described, iso_now(lambda: now)):
            failure = _failure(described) if name == "failed" else None
            new_targets = [target for target, events in targets if name in events and (target, name) not in known]
            if new_targets:  # one document per event: the record is one Table property, at most 32K characters
                document = event_document(data["conversationId"], data["requestId"], name, occurred_at, failure)
                data["events"].setdefault(name, document)
            for target in new_targets:
                data["deliveries"].append(
                    {"target": target, "name": name, "status": PENDING, "attempts": 0, "nextAt": now}
                )

    def _target(self, data: dict[str, Any], target: str) -> tuple[str | None, Subscription | None]:
        """Where an entry goes now (None: nowhere any more), and the subscription it goes to, if one."""
        if target == CALLBACK:
            url = data["callback"]["url"]
            try:  # the allow-list may have changed since the request
                check_url(
                    url, self._settings.allowed_hosts, allow_insecure_loopback=self._settings.allow_insecure_loopback
                )
            except Problem:
                return None, None
            return url, None
        subscription = self._subscriptions.get(target.removeprefix("sub:"))
        if subscription is None:
            return None, None
        try:  # stored before today's rules: checked again, as a callback URL is
            self._subscriptions.check(subscription.url)
        except Problem:
            return None, None
        return subscription.url, subscription

    def _note_answer(self, subscription: Subscription, *, gone: bool) -> None:
        """Kept, a subscription whose flow is gone would be posted every ended call and hold one of the
        MAX_SUBSCRIPTIONS places for good (`Subscriptions.answered`)."""
        try:
            self._subscriptions.answered(subscription, gone)
        except Problem:  # storage: the next ended call notes it again
            log.warning("Could not note subscription %s's answer now", subscription.id)

    def _deliver_due(self, data: dict[str, Any], now: float) -> None:
        started = time.monotonic()
        for entry in data["deliveries"]:
            if entry["status"] != PENDING or entry["nextAt"] > now:
                continue
            if time.monotonic() - started > STEP_BUDGET_SECONDS:  # slow receivers: the rest waits for the next step
                break
            url, subscription = self._target(data, entry["target"])
            entry["attempts"] += 1
            if url is None:
                entry["status"] = UNDELIVERABLE
                log.warning("Event %s of %s has no allowed target any more", entry["name"], data["conversationId"])
                continue
            try:  # a subscription's (Power Automate's) URL is itself signed (SAS): no signature headers
                outcome = self._poster.post(url, data["events"][entry["name"]], signed=subscription is None)
                outcome_state, detail = outcome.state, outcome.detail
            except Problem as problem:  # no webhook secret to sign with: may be fixed before the next try
                outcome_state, detail = PENDING, problem.code
            if outcome_state == PENDING and entry["attempts"] >= MAX_ATTEMPTS:
                outcome_state = UNDELIVERABLE
            if subscription is not None and (outcome_state == DELIVERED or detail in GONE_STATUSES):
                self._note_answer(subscription, gone=outcome_state != DELIVERED)
            entry["status"] = outcome_state
            entry["nextAt"] = now + self._settings.retry_seconds * 2 ** (entry["attempts"] - 1)
            level = log.info if outcome_state == DELIVERED else log.warning
            level(
                "Event %s of %s to %s: %s (%s, attempt %s)",
                entry["name"],
                data["conversationId"],
                entry["target"],
                outcome_state,
                detail,
                entry["attempts"],
            )
