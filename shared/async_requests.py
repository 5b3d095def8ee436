"""Asynchronous mode (Power Automate's asynchronous pattern): accept now, place the call from a queue.

`Prefer: respond-async` gets `202` with `Location: /api/calls/requests/{requestId}` at once; a
queue-triggered function places the call and records the answer; polling the location answers `202`
while pending, then the final `201` or problem. A message that keeps failing ends as a stored failure.

Each job is guarded by its own record, `async:<requestId>`, kept for the whole retention whether or not
the caller sent an `Idempotency-Key`: pending -> claimed -> sent -> done. The queue delivers at least once,
so a redelivery finds the record and never dials again: a job that may have reached Genesys and never
recorded its outcome answers "outcome unknown". Queue messages are untrusted input: a message that is not
the one this app wrote for a pending job is refused and dials nothing.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from shared.errors import Problem
from shared.idempotency import (
    CLAIMED,
    DONE,
    SENT,
    Claim,
    JobAttempt,
    Record,
    Reply,
    Store,
    check_key,
    fingerprint,
    keyed_store_key,
    landed_unheard,
    let_go_of_job_claim,
    outcome_never_recorded,
)
from shared.ids import is_uuid
from shared.logs import get_logger, log_fields
from shared.storage import MAX_QUEUE_DELAY_SECONDS, QueueSender, RetryLater

log = get_logger(__name__)

QUEUE_NAME = "call-requests"
POISON_QUEUE_NAME = f"{QUEUE_NAME}-poison"  # where the Functions host moves a message after 5 failed tries
MAX_DEQUEUE_COUNT = 5  # the host's default maxDequeueCount (host.json extensions.queues)
MAX_MESSAGE_BYTES = 48 * 1024  # a storage queue message is at most 64 KiB after base64 (4 bytes per 3)
PENDING = "pending"
RECORD_PREFIX = "async:"
DELIVERY = "delivery"  # in a job's record: how many deliveries have taken it (see JobAttempt)
CALL_RECORD = "callRecord"  # in a job's record once sent: the record its call's answer went to (see JobAttempt)
# A job taken this often without an answer ends: a worker dying on every delivery would otherwise go from the
# poison queue back to the queue (`fail` looks again at a claim that may still answer) for ever.
MAX_DELIVERIES = 2 * MAX_DEQUEUE_COUNT
PURGE_MARGIN_SECONDS = 15 * 60  # a job queued again must find its record before the purge timer removes it
# A job no message has run this long after one was due is settled when its caller polls (see `_settled_if_orphaned`)
ORPHANED_AFTER_SECONDS = 30 * 60
_RETRY_LATER = (409, 429, 503)


class Answer(Protocol):
    """The call use case (`CallService.answer`) as a job runs it."""

    def __call__(
        self,
        body: Any,
        idempotency_key: str | None,
        request_id: str,
        *,
        job: JobAttempt,
    ) -> tuple[Reply, bool]: ...


def never_sent(deliveries: int) -> Problem:
    return Problem(
        "internal_error", f"The asynchronous request failed on {deliveries} deliveries; no call was sent to Genesys."
    )


def cancelled_unrun() -> Problem:
    return Problem(
        "internal_error",
        f"The asynchronous request was not run within {ORPHANED_AFTER_SECONDS // 60} minutes of its queue message "
        "being due (the message was lost, or the queue is that far behind), and is cancelled: it will not run. No "
        "call was sent to Genesys.",
    )


def expired_unsent() -> Problem:
    return Problem(
        "internal_error",
        "The asynchronous request waited on the queue past IDEMPOTENCY_RETENTION_SECONDS; no call was sent to Genesys.",
    )


class UntrustedMessage(Exception):
    """A queue message this app did not write for a pending job: it dials nothing and ends in the poison queue."""


_JOB_FIELDS = {"requestId", "body", "idempotencyKey", "acceptedAt"}


@dataclass(frozen=True)
class Job:
    """One queued call request, as `accept` wrote it."""

    request_id: str
    body: dict[str, Any]
    idempotency_key: str | None
    accepted_at: float  # the duplicate window is measured from here, not from when a worker takes the job

    def to_message(self) -> str:
        """Compact JSON (UTF-8 text as is): the message the queue carries and the record's fingerprint covers."""
        job = {
            "requestId": self.request_id,
            "body": self.body,
            "idempotencyKey": self.idempotency_key,
            "acceptedAt": self.accepted_at,
        }
        return json.dumps(job, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_message(cls, message: str) -> Job:
        """Read a message as untrusted input: its shape and sizes, or `UntrustedMessage` saying what is wrong."""
        size = len(message.encode("utf-8", errors="replace"))
        if size > MAX_MESSAGE_BYTES:
            raise UntrustedMessage(f"the message has {size} bytes; jobs have at most {MAX_MESSAGE_BYTES}")
        try:
            job = json.loads(message)
        except (ValueError, RecursionError):
            raise UntrustedMessage("the message is not JSON") from None
        if not isinstance(job, dict) or set(job) != _JOB_FIELDS:
            raise UntrustedMessage("the message is not a job: it needs exactly " + ", ".join(sorted(_JOB_FIELDS)))
        request_id, body, key, accepted_at = job["requestId"], job["body"], job["idempotencyKey"], job["acceptedAt"]
        if not is_uuid(request_id):
            raise UntrustedMessage("requestId is not a request id this app issues")
        if not isinstance(body, dict):
            raise UntrustedMessage("body is not a call request object")
        if key is not None and not _is_valid_key(key):
            raise UntrustedMessage("idempotencyKey is not a valid Idempotency-Key")
        if not isinstance(accepted_at, (int, float)) or isinstance(accepted_at, bool) or not _is_time(accepted_at):
            raise UntrustedMessage("acceptedAt is not a time")
        return cls(request_id, body, key, float(accepted_at))


def _is_time(value: float) -> bool:
    """A finite number of seconds a float holds (an integer of 400 digits does not)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _is_valid_key(key: object) -> bool:
    try:
        return isinstance(key, str) and bool(check_key(key))
    except Problem:
        return False


def record_key(request_id: str) -> str:
    """Where a job's record lives in the idempotency table."""
    return RECORD_PREFIX + request_id


class AsyncRequests:
    """Accepts jobs, runs each once from the queue, and answers polls with their state or final answer."""

    def __init__(
        self,
        store: Store,
        queue: QueueSender | None,
        *,
        retention_seconds: float,
        retry_after_seconds: int,
        stale_seconds: float,
        wait_seconds: float,
        duplicate_window_seconds: float,
        watch_recovered: Callable[[dict[str, Any], Reply], None] = lambda body, reply: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`stale_seconds` and `wait_seconds` are the call's own (IDEMPOTENCY_STALE_SECONDS, _WAIT_SECONDS).
        `watch_recovered(body, reply)` starts the status watch of a job's call whose answer came from the call's own
        record: the delivery that placed it ended before it could."""
        self._store = store
        self._queue = queue
        self._retention = retention_seconds
        self._retry_after = retry_after_seconds
        # A delivery takes the job before the call's own claim, which may first wait for another attempt with the
        # same key: the job's holder is presumed dead only after that wait and the call's own stale limit.
        self._stale = stale_seconds + wait_seconds
        self._duplicate_window = duplicate_window_seconds
        self._watch_recovered = watch_recovered
        self._clock = clock

    def _pending(self, request_id: str) -> Reply:
        return Reply(
            202,
            {"requestId": request_id, "status": PENDING},
            {"Location": f"/api/calls/requests/{request_id}", "Retry-After": str(self._retry_after)},
        )

    def accept(self, body: dict[str, Any], idempotency_key: str | None) -> Reply:
        """Record the job as pending and queue it; the body was already validated by the caller."""
        if self._queue is None:
            raise Problem(
                "configuration_error",
                "Asynchronous mode (Prefer: respond-async) needs a storage queue: set AzureWebJobsStorage "
                "(or its identity-based AzureWebJobsStorage__queueServiceUri and __tableServiceUri).",
            )
        if idempotency_key is not None:
            check_key(idempotency_key)  # refused now, like every input error, rather than by the worker
        now = self._clock()
        job = Job(str(uuid.uuid4()), body, idempotency_key, now)
        message = job.to_message()  # a validated body of at most 16 KiB: always far under MAX_MESSAGE_BYTES
        # The record's fingerprint is the message's: only the message written here can run this job.
        expires_at = now + self._retention
        accepted = self._store.create(
            Record(record_key(job.request_id), fingerprint(message), PENDING, job.request_id, now, expires_at)
        )
        try:
            self._queue.send(message)
        except Problem:
            if self._withdrawn(job.request_id, accepted):
                raise  # nothing was dialed, and nothing will be
            log.warning("Asynchronous request %s: its message was refused, yet may run; answered 202", job.request_id)
        log.info("Accepted asynchronous request %s", job.request_id)
        return self._pending(job.request_id)

    def _withdrawn(self, request_id: str, accepted: Record | None) -> bool:
        """After a refused send: whether the job is gone, so that no copy of its message can run it (a send
        answered with an error may have landed, once per try). False when a copy has taken it, or when storage
        cannot say: then the caller gets the job's id (202), and the poll tells what became of it, never a 503
        saying nothing was dialed before a copy dials."""
        key = record_key(request_id)
        try:
            record = accepted or self._store.read(key)  # None: the insert's answer was lost, and its resend met 409
            if record is not None and record.state == PENDING:
                self._store.delete(record)  # by its etag: a copy that took the job keeps it
            return self._store.read(key) is None
        except Problem:
            return False

    def result(self, request_id: str) -> Reply:
        """202 while pending, then the stored final answer (the id in any case: a UUID's hex digits are one)."""
        record = self._store.read(record_key(request_id.lower())) if is_uuid(request_id) else None
        if record is None:
            raise Problem(
                "request_not_found",
                "There is no such asynchronous request (or it expired).",
                field="requestId",
            )
        if record.state == DONE and record.reply is not None:
            return record.reply
        return self._settled_if_orphaned(record) or self._pending(request_id.lower())

    def _settled_if_orphaned(self, record: Record) -> Reply | None:
        """The answer of a job no queue message will run any more, settled at its caller's poll; None while one
        may still come.

        A message is due when the job is accepted or put back (`due_at`, else the last claim), or, for a job a
        delivery holds, when that claim turns stale (a copy is queued again for then). `ORPHANED_AFTER_SECONDS`
        later none will come: it was lost (a send that failed and a withdrawal storage could not confirm; a poison
        message whose handler kept failing), and the job would read "pending" until its record expired. The write
        is conditional: a delivery that takes the job first keeps it, and a message that turns up later finds the
        answer and dials nothing, so the answer is true either way.
        """
        due = record.claimed_at + self._stale if record.state in (CLAIMED, SENT) else record.due_at or record.claimed_at
        if self._clock() < due + ORPHANED_AFTER_SECONDS:
            return None
        try:
            # A sent job's call is not watched from here: with no message, there is no body to watch it by
            reply = (
                self._sent_answer(record) if record.state == SENT else Reply.of_problem(cancelled_unrun(), record.owner)
            )
            if self._store.replace(replace(record, state=DONE, reply=reply)) is None:
                return None
        except Problem:  # storage: the poll answers "pending", as before it looked
            return None
        log.warning(
            "Asynchronous request %s, %s, had no queue message run it; settled at its poll", record.owner, record.state
        )
        return reply

    def _trusted(self, message: str) -> tuple[Job, Record]:
        job = Job.from_message(message)
        record = self._store.read(record_key(job.request_id))
        if record is None:
            raise UntrustedMessage(f"no asynchronous request {job.request_id} was accepted (or it expired)")
        if record.fingerprint != fingerprint(message):
            raise UntrustedMessage(f"the message differs from the one accepted for request {job.request_id}")
        return job, record

    def process(self, message: str, dequeue_count: int, answer: Answer) -> None:
        """Place the queued call once and record its answer; transient failures go back to the queue."""
        job, record = self._trusted(message)
        with log_fields(request_id=job.request_id, idempotency_key=job.idempotency_key):
            self._run(message, job, record, dequeue_count, answer)

    def _run(self, message: str, job: Job, record: Record, dequeue_count: int, answer: Answer) -> None:
        if record.state == DONE:
            log.info("Asynchronous request %s was already answered; a redelivery dials nothing", job.request_id)
            return
        if record.state in (CLAIMED, SENT) and self._stale_in(record) >= 0:
            self._check_back(message, record)
            return
        if self._outlived(job, record):
            log.warning("Asynchronous request %s outlived its retention on the queue", job.request_id)
            self._end_unanswered(job, record, expired_unsent())
            return
        if record.state == SENT:
            if not self._placed_nothing(job, record):
                log.warning("Asynchronous request %s sent its call and never recorded the outcome", job.request_id)
                self._complete_sent(job, record)
                return
            log.warning("Asynchronous request %s was left 'sent' by an attempt that placed nothing", job.request_id)
        delivery = int((record.data or {}).get(DELIVERY, 0)) + 1  # numbered by this conditional write
        if delivery > MAX_DELIVERIES:  # its worker died on every one (a crash, a timeout): it sent nothing
            self._end_unanswered(job, record, never_sent(MAX_DELIVERIES))
            return
        taken = self._store.replace(replace(record, state=CLAIMED, claimed_at=self._clock(), data={DELIVERY: delivery}))
        if taken is None:
            raise RetryLater("another delivery took this job first")
        claim = Claim(self._store, taken)
        try:
            attempt = JobAttempt(job.accepted_at, lambda call_key: claim.mark_sent({CALL_RECORD: call_key}), delivery)
            reply, replayed = answer(job.body, job.idempotency_key, job.request_id, job=attempt)
        except Exception:
            if claim.sent:  # the call may exist: record that instead of letting a redelivery try again
                self._complete_sent(job, claim.record)
                return
            self._release(claim)
            raise
        self._settle(message, job, claim, (reply, replayed), delivery, dequeue_count)

    def _settle(
        self, message: str, job: Job, claim: Claim, answered: tuple[Reply, bool], delivery: int, dequeue_count: int
    ) -> None:
        """Record the job's answer, or try it again: a retryable failure is tried again unless its call may exist.
        One before the create goes back to the queue, which shows the message again 2 s later. A create that
        provably sent nothing (Genesys answered 429 with a Retry-After past the deadline, or no connection was
        made) is queued again for when Genesys asked."""
        reply, replayed = answered
        retryable = reply.status in _RETRY_LATER and reply.body.get("retryable") is True
        if retryable and claim.sent and not reply.outcome_unknown and delivery < MAX_DEQUEUE_COUNT:
            wait = self._retry_wait(job, claim.record, reply)
            if wait is not None:
                self._release(claim, due_in=wait)
                assert self._queue is not None  # a message came from the queue, so there is one
                self._queue.send(message, wait)
                log.info("Asynchronous request %s sent nothing (%s); again in %d s", job.request_id, reply.status, wait)
                return
        if retryable and not claim.sent and dequeue_count < MAX_DEQUEUE_COUNT:
            self._release(claim)
            raise RetryLater(f"{reply.status} {reply.body.get('code')}, try {dequeue_count} of {MAX_DEQUEUE_COUNT}")
        if replayed:
            reply = replace(reply, headers={**reply.headers, "Idempotent-Replayed": "true"})
        self._complete(claim.record, reply)

    def fail(self, message: str) -> None:
        """A poison message: the caller polling for it gets a failure that says whether a call was sent."""
        try:
            job, record = self._trusted(message)
        except UntrustedMessage as untrusted:
            log.error("Dropped a poison message this app did not write for a pending job: %s", untrusted)
            return
        if record.state == DONE:
            return
        if record.state in (CLAIMED, SENT) and self._stale_in(record) >= 0:
            self._check_back(message, record)  # its holder may still answer; else a later look settles it
            return
        self._end_unanswered(job, record, never_sent(MAX_DEQUEUE_COUNT))

    def _end_unanswered(self, job: Job, record: Record, unsent: Problem) -> None:
        """End a job that no delivery answered: a sent one as `_sent_answer` says, else with `unsent`, and then the
        claim a dead delivery left under its key is let go of (a keyless claim lives under the call's fingerprint,
        which the job does not know: it expires KEYLESS_UNKNOWN_OUTCOME_SECONDS past its stale limit)."""
        if record.state == SENT and not self._placed_nothing(job, record):
            self._complete_sent(job, record)
            return
        self._complete(record, Reply.of_problem(unsent, record.owner))
        if job.idempotency_key is None:
            return
        try:
            let_go_of_job_claim(self._store, job.idempotency_key, job.request_id)
        except Problem:  # the job's answer stands; its key answers "outcome unknown" until the claim expires
            log.warning("Could not let go of the claim asynchronous request %s left", job.request_id)

    def _complete_sent(self, job: Job, record: Record) -> None:
        """Record a sent job's answer (`_sent_answer`), and watch its call when that is the call's own 201."""
        reply = self._sent_answer(record)
        self._complete(record, reply)
        self._watch_recovered(job.body, reply)

    def _sent_answer(self, record: Record) -> Reply:
        """The answer of a job that sent its call and did not record it: its call's, when the call's own record
        holds it (the job's last write failed after it), else "outcome unknown". Never a guess: a keyless
        client told "may have been placed" of a call it could have known about sends it again."""
        call_key = (record.data or {}).get(CALL_RECORD)
        call = self._store.read(call_key) if isinstance(call_key, str) else None
        if call is not None and call.owner == record.owner and call.state == DONE and call.reply is not None:
            log.info("Asynchronous request %s: its call's answer was recorded; it is the job's", record.owner)
            return call.reply
        return Reply.of_problem(outcome_never_recorded(), record.owner)

    def _placed_nothing(self, job: Job, record: Record) -> bool:
        """Whether a job with a key, marked sent, placed nothing after all: its key's claim is gone. Only an
        attempt that sent nothing (refused, or failed before sending) lets go of a claim, no other request can
        take a key's over within its retention, and the purge takes one only after the job outlived its own; the
        job stays "sent" when its put-back to pending failed after such an attempt. Without a key it proves
        nothing: past the duplicate window an identical request takes the claim over, and lets go of it when its
        own create is refused."""
        if job.idempotency_key is None or (record.data or {}).get(CALL_RECORD) != keyed_store_key(job.idempotency_key):
            return False
        return not self._outlived(job, record) and self._store.read(keyed_store_key(job.idempotency_key)) is None

    def _check_back(self, message: str, record: Record) -> None:
        """Another delivery holds the job (a duplicate message, or one whose worker died): queue the message again
        for when that claim turns stale, instead of failing on the tries a few seconds apart that the queue
        gives, which would end a job that can still run (or overwrite its holder's answer) as a failure."""
        assert self._queue is not None  # a message came from the queue, so there is one
        delay = min(max(1, math.ceil(self._stale_in(record)) + 1), MAX_QUEUE_DELAY_SECONDS)
        self._queue.send(message, delay)
        log.info("Asynchronous request %s is held by another delivery; looking again in %d s", record.owner, delay)

    def _retry_wait(self, job: Job, record: Record, reply: Reply) -> int | None:
        """The answer's Retry-After (Genesys's own wait on a 429), or None when waiting it would outlast what keeps
        the job from a second dial: its own record (kept for the retention from acceptance) and, without a key,
        the duplicate window an identical request placed meanwhile is answered from."""
        wait = max(1, int(reply.headers.get("Retry-After") or 1))
        guarded = record.expires_at - self._clock() - PURGE_MARGIN_SECONDS
        if job.idempotency_key is None:
            guarded = min(guarded, self._duplicate_window)
        return wait if wait <= guarded else None

    def _outlived(self, job: Job, record: Record) -> bool:
        """Whether the job runs too late to be kept from a second dial: near the end of its retention (its
        record's, or the one in force now when that is shorter) the answer of an identical request it must replay
        may be purged before it looks."""
        ends = min(record.expires_at, job.accepted_at + self._retention)
        return ends - PURGE_MARGIN_SECONDS <= self._clock()

    def _stale_in(self, record: Record) -> float:
        """Seconds until the record's claim turns stale (its holder presumed dead); negative once it has."""
        return record.claimed_at + self._stale - self._clock()

    def _release(self, claim: Claim, due_in: float = 0) -> None:
        """Back to pending: nothing was sent, so the next delivery may try again (its message in `due_in` s). A
        "sent" mark storage could not confirm may have landed all the same: then it is the record to put back,
        or every later delivery would take the job for sent and answer "outcome unknown" of a call never placed."""
        due_at = self._clock() + due_in if due_in else None
        if self._store.replace(replace(claim.record, state=PENDING, due_at=due_at)) is None and claim.unconfirmed:
            landed = landed_unheard(self._store, claim.unconfirmed)
            if landed is not None:
                self._store.replace(replace(landed, state=PENDING, due_at=due_at))

    def _complete(self, record: Record, reply: Reply) -> None:
        if self._store.replace(replace(record, state=DONE, reply=reply)) is None:
            raise RetryLater("the job's record changed while it ran; the next delivery reads it again")
        log.info("Asynchronous request %s finished with %s", record.owner, reply.status)
