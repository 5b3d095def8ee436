"""At most one Genesys call per logical request, on any number of instances.

Semantics follow Stripe and the IETF Idempotency-Key draft. The first request with a key claims it with
an atomic insert (first writer wins) before anything is dialed; the same key and body later replays the
stored answer; a different body is `idempotency_key_reused`; a repeat while the first still runs waits
for its answer. The claim is written "sending": a call costs two Table writes, the claim and the answer.
A failure that provably sent nothing releases the claim (in the background when storage fails then: `LateWrites`,
which also records an answer storage refused);
an owner that died without answering leaves a claim
that answers "outcome unknown", never a second dial (it cannot tell whether the create went out).
Without a key, identical requests inside `DUPLICATE_WINDOW_SECONDS` share one derived key: the window
decides only whether a new request is the same as an old one. A claim that may have reached Genesys is
never taken over by the request it belongs to; asynchronous jobs are guarded by their own record
(`shared/async_requests.py`), so a redelivery after the window cannot dial again. The one takeover of a claim
still "sending": by a later delivery of the same queued job, which proves the earlier one cannot send
(`JobAttempt`).
Table Storage has no TTL: `purge_expired` deletes records a retention after they expire, in bounded runs (a timer
trigger).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from shared.errors import Problem
from shared.logs import get_logger
from shared.storage import ManagedTable, is_lost_race

if TYPE_CHECKING:
    from azure.data.tables import TableClient

log = get_logger(__name__)

# A request's claim is written "sending": from then on its call may be sent, so it is never taken over, only
# answered (two Table writes per call: the claim and the answer), except by a later delivery of the same queued
# job (JobAttempt). An asynchronous job's record goes claimed -> sent -> done, as its worker may die before its
# call is even planned.
CLAIMED, SENDING, SENT, DONE = "claimed", "sending", "sent", "done"
MAY_HAVE_SENT = (SENDING, SENT)
POLL_SECONDS = 0.1
MAX_KEY_LENGTH = 255
IN_PROGRESS_RETRY_AFTER_SECONDS = 5
# A claim that may have sent its call, and an outcome-unknown answer, are kept longer than the retention:
# senders redeliver for days (Google Pub/Sub up to 7, Standard Webhooks senders about 27 hours), and every
# redelivery must find them rather than dial again.
UNKNOWN_OUTCOME_RETENTION_SECONDS = 8 * 24 * 3600.0
# Without a key, an outcome-unknown answer is replayed at least this long after it was given, and a claim that
# never recorded one is kept this long past the stale limit: longer than a client's whole retry run (Power
# Automate's default policy retries 4 times over about two minutes, each try waiting up to our deadline), so
# no retry of a call that may exist finds the record gone and dials again.
KEYLESS_UNKNOWN_OUTCOME_SECONDS = 15 * 60.0
PURGE_BATCH = 1000  # records a purge's query deletes before it is asked again
# A run deletes batches until one is not full or this long has passed: about 16,000 records at 15 ms a delete, so
# a busy app's tables (3 or 4 records a call with asynchronous jobs and callbacks) shrink as fast as they grow,
# and a run still ends well before the next (every 10 minutes) and the host's function timeout
PURGE_SECONDS = 240.0
PURGE_SCHEDULE = "0 */10 * * * *"  # NCRONTAB: every 10 minutes
KEYLESS_PREFIX = "auto:"
LATE_WRITE_FIRST_WAIT = 1.0  # a claim's write storage refused is tried again after this, then ever later
LATE_WRITE_MAX_WAIT = 30.0


@dataclass(frozen=True)
class Reply:
    """An HTTP answer as stored for replay.

    `outcome_unknown` is this attempt's word that its call may exist (it failed after the create may have been
    sent); it is not stored: a replay sends nothing, whatever the stored answer says.
    """

    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    outcome_unknown: bool = field(default=False, compare=False)
    claimed_at: float | None = field(default=None, compare=False)  # a replay's: when the answering request began

    @classmethod
    def of_problem(cls, problem: Problem, request_id: str) -> Reply:
        return cls(problem.status, problem.to_json(request_id), problem.headers(), problem.outcome_unknown)


Action = Callable[[Callable[[], None]], Reply]  # gets `mark_sent`; returns the answer to store
JOB_DELIVERY = "jobDelivery"  # in a claim's data: which delivery of a queued job wrote it (HTTP requests never do)


@dataclass(frozen=True)
class JobAttempt:
    """One delivery of an asynchronous job, as the call path sees it.

    `accepted_at` is when the job was accepted: its duplicate window runs from there, not from when a worker got
    to it. `mark_sent(call_key)` marks the job's own record right before the create could reach Genesys, naming
    the record the call's answer goes to (None: no record), where the job finds it if its own write fails. `delivery`
    numbers the deliveries that took the job's record, each by a write conditional on the one before.

    A claim written by delivery n and found "sending" by a later delivery m > n is taken over, not answered
    "outcome unknown": m took the job's record from n while it did not say sent, so n either never sent or never
    can (its mark fails on the record m rewrote). A delivery never takes a claim of its own number or a later one:
    it may have lost the job to that delivery, which may be sending.
    """

    accepted_at: float
    mark_sent: Callable[[str | None], None]
    delivery: int


@dataclass(frozen=True)
class Record:
    key: str
    fingerprint: str
    state: str
    owner: str
    claimed_at: float
    expires_at: float
    reply: Reply | None = None
    etag: str | None = None
    data: dict[str, Any] | None = None  # what other records in the table keep (the call cap's call times)
    due_at: float | None = None  # when a queued message should next act on it (a status watch's next step)


class Store(Protocol):
    """Conditional writes are all the coordination there is: no locks span instances."""

    def create(self, record: Record) -> Record | None:
        """Insert; the stored record (with its etag), or None when the key exists."""

    def read(self, key: str) -> Record | None: ...

    def replace(self, record: Record) -> Record | None:
        """Write if `record.etag` still matches; the stored record, or None when someone else wrote first."""

    def delete(self, record: Record) -> None:
        """Delete if `record.etag` still matches."""

    def purge_expired(self, now: float, limit: int, until: float = math.inf) -> int:
        """Delete up to `limit` records that expired before `now` (unless rewritten meanwhile), stopping once
        `time.monotonic()` passes `until`; how many."""

    def overdue(self, state: str, before: float, limit: int) -> list[Record]:
        """Up to `limit` records in `state` that were due before `before`: work whose message never came."""


def landed_unheard(store: Store, written: Record) -> Record | None:
    """`written` as stored, when the write landed and only its answer was lost (the SDK's resend then met it: 409
    on an insert, 412 on a conditional update); None when what is stored is another's. What an attempt writes
    (its owner, its moment, its data) no other attempt writes."""
    current = store.read(written.key)
    return current if current is not None and replace(current, etag=written.etag) == written else None


def let_go_of_job_claim(store: Store, key: str, request_id: str) -> None:
    """Delete the claim a delivery of queued job `request_id` left "sending" under `key`, once the job has ended
    having sent nothing (that delivery died after writing it, before the job's record said sent): left, it would
    answer the key's retries "it may have been placed" for days of a call never placed. The job's record is done
    by then, so no delivery of it can mark it sent and dial; the delete is conditional on what was read."""
    claim = store.read(keyed_store_key(key))
    written_by = (claim.data or {}).get(JOB_DELIVERY) if claim is not None else None
    if claim is not None and claim.state == SENDING and claim.owner == request_id and isinstance(written_by, int):
        store.delete(claim)
        log.info("Let go of the claim request %s left before sending; its key is free", request_id)


def keyed_store_key(key: str) -> str:
    """Where the claim of a request with an `Idempotency-Key` lives."""
    return "key:" + check_key(key)


def _read_back(store: Store, written: Record) -> Record | None:
    """`landed_unheard`, or None when storage cannot say either."""
    try:
        return landed_unheard(store, written)
    except Problem:
        return None


class MemoryStore:
    """One process only: for local runs without storage. Each instance would dial on its own."""

    def __init__(self) -> None:
        self._records: dict[str, Record] = {}
        self._lock = threading.Lock()

    def create(self, record: Record) -> Record | None:
        with self._lock:
            if record.key in self._records:
                return None
            stored = self._records[record.key] = replace(record, etag=uuid.uuid4().hex)
            return stored

    def read(self, key: str) -> Record | None:
        with self._lock:
            return self._records.get(key)

    def replace(self, record: Record) -> Record | None:
        with self._lock:
            current = self._records.get(record.key)
            if current is None or current.etag != record.etag:
                return None
            stored = self._records[record.key] = replace(record, etag=uuid.uuid4().hex)
            return stored

    def delete(self, record: Record) -> None:
        with self._lock:
            current = self._records.get(record.key)
            if current is not None and current.etag == record.etag:
                del self._records[record.key]

    def purge_expired(self, now: float, limit: int, until: float = math.inf) -> int:
        with self._lock:  # all at once: no time to run out of
            expired = [key for key, record in self._records.items() if record.expires_at <= now][:limit]
            for key in expired:
                del self._records[key]
            return len(expired)

    def overdue(self, state: str, before: float, limit: int) -> list[Record]:
        with self._lock:
            late = (
                record
                for record in self._records.values()
                if record.state == state and record.due_at is not None and record.due_at < before
            )
            return list(itertools.islice(late, limit))


def fingerprint(value: Any) -> str:
    """A stable digest of a request's meaning (canonical JSON)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def check_key(key: str) -> str:
    if not (0 < len(key) <= MAX_KEY_LENGTH) or not key.isprintable() or not key.isascii():
        raise Problem(
            "validation_failed",
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters.",
            field="Idempotency-Key",
        )
    return key


class Claim:
    """A held record; the action calls `mark_sent` right before the request that could dial.

    A record already written "sending" needs no write there; `sent` then only remembers, in memory, that this
    attempt went on to the request, so a failure before it can release the claim.
    """

    def __init__(self, store: Store, record: Record) -> None:
        self._store = store
        self.record = record
        self.sent = False
        self.unconfirmed: Record | None = None  # the "sent" mark, when storage could not say whether it landed

    def mark_sent(self, note: dict[str, Any] | None = None) -> None:
        """`note` joins the record's data in the same write."""
        if self.sent:
            return
        if self.record.state not in MAY_HAVE_SENT:
            data = {**(self.record.data or {}), **note} if note else self.record.data
            written = replace(self.record, state=SENT, data=data)
            try:
                # None: the write met another's, or its own whose answer was lost (the SDK's resend met it)
                updated = self._store.replace(written) or landed_unheard(self._store, written)
            except Problem:  # every try's answer lost, or the read-back failed: the write may have landed
                updated = _read_back(self._store, written)
                if updated is None:
                    self.unconfirmed = written
                    raise
            if updated is None:
                raise Problem(
                    "request_in_progress",
                    "Another attempt took over this request; nothing was dialed by this one.",
                    retry_after=1,
                )
            self.record = updated
        self.sent = True


@dataclass(frozen=True)
class LateWrite:
    """A write a claim needed when storage refused it: over the claim as this request last wrote it (`written`),
    the `answer` to record, or with none the claim let go of."""

    written: Record
    answer: Record | None
    until: float  # given up then
    kept_for: float = 0.0  # a keyless answer's window runs from when it lands: kept at least this long after

    @property
    def claim(self) -> tuple[str, str, float]:
        """Which claim it is about: what one attempt writes (its key, owner and moment) no other writes."""
        return self.written.key, self.written.owner, self.written.claimed_at


class LateWrites:
    """What storage would not let a request write about its claim when it ended, tried again in the background,
    each until the longest a keyless client retries (`KEYLESS_UNKNOWN_OUTCOME_SECONDS`) past its stale limit:

    - the release of a claim that sent nothing (a blip that failed a write before the send fails the release
      after it too). Left "sending", it answers its retries 409 and then "outcome unknown" (for days, with a
      key) of a call never placed; let go, a retry places it.
    - the answer of a placed call. Left "sending", the claim answers its retries 409 and then "outcome unknown",
      though this instance knows the conversation id; recorded, they replay it.

    Each is as safe late as at once, and conditional on the claim as written: a claim written since (a later
    delivery of the same job took it, or the answer landed unheard) is left alone."""

    def __init__(self, store: Store, clock: Callable[[], float], first_wait: float = LATE_WRITE_FIRST_WAIT) -> None:
        self._store = store
        self._clock = clock
        self._first_wait = first_wait
        # By the claim as written: a retry's release of its own claim never takes the place of an earlier answer
        self._pending: dict[tuple[str, str, float], LateWrite] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None  # the one trying, while any is pending
        self._closed = threading.Event()
        self.idle = threading.Event()  # set while nothing is pending or being tried
        self.idle.set()

    def release(self, claim: Record, until: float) -> None:
        """Let go of `claim`, which sent nothing."""
        self._add(LateWrite(claim, None, until))

    def record(self, claim: Record, answer: Record, until: float, kept_for: float = 0.0) -> None:
        """Write `answer` over `claim`, kept at least `kept_for` after it lands (its expiry may have passed)."""
        self._add(LateWrite(claim, answer, until, kept_for))

    def _add(self, write: LateWrite) -> None:
        with self._lock:
            if self._closed.is_set():
                return
            self._pending[write.claim] = write
            self.idle.clear()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="late-claim-writes", daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Stop trying (the services are built anew: their store may be another)."""
        self._closed.set()

    def _run(self) -> None:
        wait = self._first_wait
        try:
            while not self._closed.wait(wait):
                wait = self._first_wait if self._round() else min(2 * wait, LATE_WRITE_MAX_WAIT)
                with self._lock:
                    if not self._pending:  # decided under the lock: a write added after starts a new thread
                        self._stopped()
                        return
        finally:
            with self._lock:
                if self._thread is threading.current_thread():  # closed, or an error got out
                    self._stopped()

    def _stopped(self) -> None:
        self._thread = None
        self.idle.set()

    def _round(self) -> bool:
        """One try of each pending write; whether storage took any (else the next round waits longer)."""
        with self._lock:
            pending = list(self._pending.values())
        took = False
        for write in pending:
            owner, what = write.written.owner, "record the answer" if write.answer else "let go of the claim"
            if self._clock() >= write.until:
                log.error("Gave up trying to %s of request %s", what, owner)
            else:
                try:
                    self._write(write)
                except Exception as error:  # noqa: BLE001 - whatever failed, the next round tries again
                    log.debug("Could not %s of request %s yet: %s", what, owner, type(error).__name__)
                    continue
                took = True
                log.info("Tried again to %s of request %s: done, unless written since", what, owner)
            with self._lock:
                if self._pending.get(write.claim) is write:
                    del self._pending[write.claim]
        return took

    def _write(self, write: LateWrite) -> None:
        held = landed_unheard(self._store, write.written)  # None: gone, or written since (left alone)
        if held is None:
            return
        if write.answer is None:
            self._store.delete(held)
        else:
            expires_at = max(write.answer.expires_at, self._clock() + write.kept_for)
            self._store.replace(replace(write.answer, expires_at=expires_at, etag=held.etag))


@dataclass
class Idempotency:
    store: Store
    wait_seconds: float = 25.0
    stale_seconds: float = 60.0
    retention_seconds: float = 24 * 3600.0
    duplicate_window_seconds: float = 60.0
    clock: Callable[[], float] = time.time
    # Keys (their prefixes) whose known answers are kept as long as unknown ones: a sender's redeliveries that
    # nothing else refuses come for longer than the retention
    long_kept_keys: tuple[str, ...] = ()
    late_writes: LateWrites = field(init=False, repr=False, compare=False)
    _long_kept_store_keys: tuple[str, ...] = field(init=False, repr=False, compare=False)  # where they are stored

    def __post_init__(self) -> None:
        self._long_kept_store_keys = tuple(map(keyed_store_key, self.long_kept_keys))
        self.late_writes = LateWrites(self.store, self.clock)

    def run(
        self,
        key: str | None,
        request_fingerprint: str,
        action: Action,
        *,
        request_id: str,
        job: JobAttempt | None = None,
    ) -> tuple[Reply, bool]:
        """Answer once per key: run `action(mark_sent)` under a claim, or replay. Returns (reply, replayed).

        `job` is given when the request is a delivery of an asynchronous job (see `JobAttempt`).
        """
        store_key = self._store_key(key, request_fingerprint)
        if store_key is None:
            return action(_marking(job, None, lambda: None)), False
        if key is None:
            # A claim that may send outlives the window: its owner may take up to the stale limit to answer, and
            # one that never records an answer (a crash after sending) must outlive the client's retries too.
            lifetime = self.stale_seconds + max(self.duplicate_window_seconds, KEYLESS_UNKNOWN_OUTCOME_SECONDS)
        else:
            lifetime = max(self.retention_seconds, UNKNOWN_OUTCOME_RETENTION_SECONDS)  # shortened by a known answer

        waited_until = time.monotonic() + self.wait_seconds
        while True:
            now = self.clock()
            arrived = now if job is None else min(job.accepted_at, now)
            mine = Record(
                store_key,
                request_fingerprint,
                SENDING,
                request_id,
                now,
                now + lifetime,
                data={JOB_DELIVERY: job.delivery} if job else None,
            )
            claimed = self._write_claim(self.store.create, mine)
            if claimed is not None:
                return self._execute(Claim(self.store, claimed), action, request_id, job), False
            current = self.store.read(store_key)
            if current is None:
                continue  # released between our insert and read: try to claim again
            if _is_written_by(current, mine):
                # Our own insert: it landed, its answer was lost, and the SDK's resend met it (409).
                return self._execute(Claim(self.store, current), action, request_id, job), False
            takeover = replace(mine, etag=current.etag)
            if job is not None and _left_by_earlier_delivery(current, job, request_id):
                log.warning("An earlier delivery of job %s left its claim before sending; resuming it", request_id)
                taken = self._take_over(takeover)
                if taken is not None:
                    return self._execute(Claim(self.store, taken), action, request_id, job), False
                continue
            if _expired(current, arrived):
                # Past the window an identical keyless request is a new one and a key past its retention is free.
                # A claim that may still send or may have sent expires only long after (its lifetime): until then
                # it answers "outcome unknown" below, never a re-dial (a stalled owner past its deadline does not
                # send; see GenesysClient).
                taken = self._take_over(takeover)
                if taken is not None:
                    return self._execute(Claim(self.store, taken), action, request_id, job), False
                continue
            if current.fingerprint != request_fingerprint:
                raise Problem(
                    "idempotency_key_reused",
                    "This Idempotency-Key was used for a different request.",
                    field="Idempotency-Key",
                )
            if current.state == DONE and current.reply is not None:
                log.info("Replaying the answer of request %s", current.owner)
                return replace(current.reply, claimed_at=current.claimed_at), True
            if now - current.claimed_at > self.stale_seconds or current.expires_at <= now:
                log.warning("Request %s never recorded its outcome; answering outcome unknown", current.owner)
                raise outcome_never_recorded()
            if time.monotonic() >= waited_until:
                raise Problem(
                    "request_in_progress",
                    "An earlier request with the same key is still being processed.",
                    retry_after=IN_PROGRESS_RETRY_AFTER_SECONDS,
                )
            time.sleep(POLL_SECONDS)

    def recorded(self, key: str | None, request_fingerprint: str, queued_at: float | None = None) -> bool:
        """Whether the store holds a live record of this request (read only): `run` would replay it, wait for it
        or answer "outcome unknown" (an answer past its window or retention is free, as `run` finds it). A queued
        job is judged, as `run` judges it, by when it was accepted (`queued_at`)."""
        store_key = self._store_key(key, request_fingerprint)
        current = self.store.read(store_key) if store_key is not None else None
        if current is None or current.fingerprint != request_fingerprint:
            return False
        return not _expired(current, self.clock() if queued_at is None else queued_at)

    def _write_claim(self, write: Callable[[Record], Record | None], mine: Record) -> Record | None:
        """Write our claim; when storage fails, take it back if the write landed unheard and the store answers.

        The request answers that failure 503 "nothing was dialed, retry": a claim of ours left "sending" would
        answer that retry "outcome unknown" (for days, with a key) for a call that was never sent.
        """
        try:
            return write(mine)
        except Problem:
            try:
                landed = landed_unheard(self.store, mine)
                if landed is not None:
                    self.store.delete(landed)
            except Problem:
                log.warning("Could not take back the claim of request %s now; trying again meanwhile", mine.owner)
                self.late_writes.release(mine, self._give_up_at(mine))
            raise

    def _take_over(self, takeover: Record) -> Record | None:
        """Replace the record `takeover` names by its etag with our claim; None when another wrote it first. A
        replace that landed and whose answer was lost (the SDK's resend met 412) is ours: looping on, this
        request would take its own claim for another's and wait on it. When storage cannot say, the request
        fails having sent nothing, and its claim, if it landed, is let go of later (see `_write_claim`)."""
        taken = self._write_claim(self.store.replace, takeover)
        if taken is not None:
            return taken
        try:
            return landed_unheard(self.store, takeover)
        except Problem:
            self.late_writes.release(takeover, self._give_up_at(takeover))
            raise

    def _store_key(self, key: str | None, request_fingerprint: str) -> str | None:
        """Where a request's claim lives: its key's, or without one the fingerprint's (None: no window)."""
        if key is not None:
            return keyed_store_key(key)
        return KEYLESS_PREFIX + request_fingerprint if self.duplicate_window_seconds > 0 else None

    def _execute(self, claim: Claim, action: Action, request_id: str, job: JobAttempt | None) -> Reply:
        try:
            reply = action(_marking(job, claim.record.key, claim.mark_sent))
        except Problem as problem:
            if claim.sent and problem.outcome_unknown:
                self._finish(claim, Reply.of_problem(problem, request_id), outcome_unknown=True)
            else:
                self._release(claim.record)  # nothing was dialed: a retry may try again
            raise
        except Exception:
            if claim.sent:  # we cannot tell whether the call exists: never let a retry dial again
                unknown = Problem("internal_error", "The call may have been placed.", outcome_unknown=True)
                self._finish(claim, Reply.of_problem(unknown, request_id), outcome_unknown=True)
            else:
                self._release(claim.record)
            raise
        self._finish(claim, reply)
        return reply

    def _release(self, claim: Record) -> None:
        """Take back a claim that sent nothing; when storage fails now, in the background (`LateWrites`). The
        request's own failure is what its caller is told."""
        try:
            self.store.delete(claim)
        except Problem:
            log.warning("Could not let go of the claim of request %s now; trying again meanwhile", claim.owner)
            self.late_writes.release(claim, self._give_up_at(claim))

    def _give_up_at(self, claim: Record) -> float:
        """The longest a keyless client retries, past the claim's stale limit: a late write helps none later."""
        return claim.claimed_at + self.stale_seconds + KEYLESS_UNKNOWN_OUTCOME_SECONDS

    def purge(self, batch: int = PURGE_BATCH, seconds: float = PURGE_SECONDS) -> int:
        """Delete records that expired a retention ago (Table Storage keeps rows forever otherwise), a `batch` at a
        time for up to `seconds`; how many went.

        Not as soon as they expire: a queued job is judged by when it was accepted (`JobAttempt`) and may run up
        to a retention later, and the answer of an identical request it must replay has to be there when it does.
        """
        cutoff, ends = self.clock() - self.retention_seconds, time.monotonic() + seconds
        removed = 0
        while True:
            deleted = self.store.purge_expired(cutoff, batch, until=ends)
            removed += deleted
            if deleted < batch or time.monotonic() >= ends:
                break
        log.info("Purged %d expired idempotency records", removed)
        return removed

    def _finish(self, claim: Claim, reply: Reply, *, outcome_unknown: bool = False) -> None:
        """Record the answer for replays. If storage refuses it, the caller still gets the real answer and the
        answer is written again in the background (`LateWrites`); until it lands the claim stays "sending", so a
        retry waits, then answers "outcome unknown", never dials again.

        A keyless answer's window runs from the answer (recorded late, from when it lands); an outcome-unknown one
        is kept at least `KEYLESS_UNKNOWN_OUTCOME_SECONDS`, so a client's late retries replay it rather than dial.
        A keyed claim lives `UNKNOWN_OUTCOME_RETENTION_SECONDS` unless a known answer shortens it to the retention
        (but for `long_kept_keys`).
        """
        expires_at, kept_for = claim.record.expires_at, 0.0
        if claim.record.key.startswith(KEYLESS_PREFIX):
            answered = self.clock()
            expires_at, kept_for = answered + self.duplicate_window_seconds, self.duplicate_window_seconds
            if outcome_unknown:
                expires_at = max(expires_at, claim.record.expires_at, answered + KEYLESS_UNKNOWN_OUTCOME_SECONDS)
                kept_for = max(kept_for, KEYLESS_UNKNOWN_OUTCOME_SECONDS)
        elif not outcome_unknown and not claim.record.key.startswith(self._long_kept_store_keys):
            expires_at = claim.record.claimed_at + self.retention_seconds  # replayed for the retention, then free
        done = replace(claim.record, state=DONE, reply=reply, expires_at=expires_at)
        try:
            if self.store.replace(done) is not None:
                return
        except Problem:
            pass  # refused, or every try's answer lost: it may have landed
        # (None: the write met a record: its own, landed unheard, or one written since; the late write tells)
        log.warning(
            "The outcome of request %s may not be recorded for replay; trying again meanwhile", claim.record.owner
        )
        self.late_writes.record(claim.record, done, self._give_up_at(claim.record), kept_for)


def _marking(job: JobAttempt | None, call_key: str | None, mark_claim: Callable[[], None]) -> Callable[[], None]:
    """What marks a request sent: its claim, and first a queued job's own record (naming the claim's record)."""
    if job is None:
        return mark_claim

    def mark() -> None:
        job.mark_sent(call_key)
        mark_claim()

    return mark


def _is_written_by(record: Record, mine: Record) -> bool:
    """Whether `record` is the claim `mine`, as this attempt wrote it (its owner and its moment), not yet answered."""
    return record.owner == mine.owner and record.claimed_at == mine.claimed_at and record.state == SENDING


def _left_by_earlier_delivery(record: Record, job: JobAttempt, request_id: str) -> bool:
    """A claim still "sending" that an earlier delivery of this same job wrote (see `JobAttempt`)."""
    written_by = (record.data or {}).get(JOB_DELIVERY)
    if record.owner != request_id or not isinstance(written_by, int):
        return False  # another request's claim, or one no queued job wrote
    return record.state == SENDING and written_by < job.delivery


def _expired(record: Record, at: float) -> bool:
    """A record past its expiry: its key is free again. An answer expires with its window or retention; a claim
    that never recorded one only once its owner can no longer send and a client's retries are over (its lifetime,
    see `run`). The purge comes a retention later, for queued jobs judged by when they were accepted."""
    return record.expires_at <= at


def outcome_never_recorded() -> Problem:
    """The answer for a claim that sent its call and never recorded what Genesys said: never dial again."""
    return Problem(
        "genesys_timeout",
        "An earlier attempt sent the call to Genesys and its outcome was never recorded: it may have been placed.",
        outcome_unknown=True,
    )


class TableStore:
    """Claims as Azure Table Storage entities (`AzureWebJobsStorage`), shared by every instance."""

    def __init__(self, table: TableClient) -> None:
        self._managed = ManagedTable(table, "The idempotency store")
        self._table = table

    @property
    def table(self) -> TableClient:
        """The Table client (benchmarks and tests count its requests)."""
        return self._table

    @staticmethod
    def _address(key: str) -> tuple[str, str]:
        digest = hashlib.sha256(key.encode()).hexdigest()  # keys may hold characters Table Storage forbids
        return digest[:2], digest

    def _entity(self, record: Record) -> dict[str, Any]:
        partition, row = self._address(record.key)
        entity: dict[str, Any] = {
            "PartitionKey": partition,
            "RowKey": row,
            "Key": record.key[: MAX_KEY_LENGTH + 5],
            "Fingerprint": record.fingerprint,
            "State": record.state,
            "Owner": record.owner,
            "ClaimedAt": record.claimed_at,
            "ExpiresAt": record.expires_at,
        }
        if record.data is not None:
            entity["Data"] = json.dumps(record.data)
        if record.due_at is not None:
            entity["DueAt"] = float(record.due_at)  # a double, as the overdue query compares it
        if record.reply is not None:
            entity["ReplyStatus"] = record.reply.status
            entity["ReplyBody"] = json.dumps(record.reply.body)
            entity["ReplyHeaders"] = json.dumps(record.reply.headers)
        return entity

    def _call(self, operation: Callable[[], Any]) -> Any:
        return self._managed.call(operation)

    def create(self, record: Record) -> Record | None:
        from azure.core.exceptions import ResourceExistsError

        try:
            written = self._call(lambda: self._table.create_entity(self._entity(record)))
        except ResourceExistsError:
            return None
        return replace(record, etag=written["etag"])

    def read(self, key: str) -> Record | None:
        from azure.core.exceptions import ResourceNotFoundError

        partition, row = self._address(key)
        try:
            entity = self._call(lambda: self._table.get_entity(partition, row))
        except ResourceNotFoundError:
            return None
        return self._record(key, entity)

    @staticmethod
    def _record(key: str, entity: Any) -> Record:
        reply = None
        if entity.get("ReplyStatus") is not None:
            reply = Reply(
                int(entity["ReplyStatus"]), json.loads(entity["ReplyBody"]), json.loads(entity["ReplyHeaders"])
            )
        return Record(
            key=key,
            fingerprint=entity["Fingerprint"],
            state=entity["State"],
            owner=entity["Owner"],
            claimed_at=float(entity["ClaimedAt"]),
            expires_at=float(entity["ExpiresAt"]),
            reply=reply,
            etag=entity.metadata["etag"],
            data=json.loads(entity["Data"]) if entity.get("Data") else None,
            due_at=float(entity["DueAt"]) if entity.get("DueAt") is not None else None,
        )

    def replace(self, record: Record) -> Record | None:
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        try:
            written = self._call(
                lambda: self._table.update_entity(
                    self._entity(record),
                    mode=UpdateMode.REPLACE,
                    etag=record.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            )
        except Exception as error:
            if is_lost_race(error):
                return None
            raise
        return replace(record, etag=written["etag"])

    def delete(self, record: Record) -> None:
        from azure.core import MatchConditions

        partition, row = self._address(record.key)
        try:
            self._call(
                lambda: self._table.delete_entity(
                    partition, row, etag=record.etag, match_condition=MatchConditions.IfNotModified
                )
            )
        except Exception as error:
            if not is_lost_race(error):
                raise

    def purge_expired(self, now: float, limit: int, until: float = math.inf) -> int:
        from azure.core import MatchConditions

        def run() -> int:
            expired = self._table.query_entities(
                "ExpiresAt lt @now",
                parameters={"now": now},
                select=["PartitionKey", "RowKey"],
                results_per_page=100,
            )
            removed = 0
            for entity in expired:
                if removed >= limit:
                    break
                try:
                    self._table.delete_entity(
                        entity["PartitionKey"],
                        entity["RowKey"],
                        etag=entity.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                except Exception as error:
                    if not is_lost_race(error):  # rewritten or gone meanwhile: leave it
                        raise
                    continue
                removed += 1
                if time.monotonic() >= until:  # deletes slowed down (throttling): the next run goes on
                    break
            return removed

        return int(self._call(run))

    def overdue(self, state: str, before: float, limit: int) -> list[Record]:
        def run() -> list[Record]:
            late = self._table.query_entities(
                "State eq @state and DueAt lt @before",
                parameters={"state": state, "before": before},
                results_per_page=min(limit, 100),
            )
            # The Key column holds the whole key: keys are at most MAX_KEY_LENGTH plus a prefix of up to 5.
            return [self._record(entity["Key"], entity) for entity in itertools.islice(late, limit)]

        return list(self._call(run))
