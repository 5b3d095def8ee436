"""Narrow unit tests of the idempotency rules where the real store cannot be made to fail on cue."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shared.errors import Problem
from shared.idempotency import (
    DONE,
    KEYLESS_PREFIX,
    KEYLESS_UNKNOWN_OUTCOME_SECONDS,
    SENDING,
    Idempotency,
    JobAttempt,
    LateWrites,
    MemoryStore,
    Record,
    Reply,
)
from tests.conftest import Clock


class StoreThatFailsToRecord(MemoryStore):
    """Accepts claims and the `sent` mark, then is unreachable when the outcome is written."""

    def replace(self, record: Record) -> Record | None:
        if record.state == DONE:
            raise Problem("idempotency_store_unavailable", "store went away")
        return super().replace(record)


def placed(dials: list[str], name: str):
    def dial(mark_sent) -> Reply:
        mark_sent()
        dials.append(name)
        return Reply(201, {"conversationId": "c-1"}, {})

    return dial


def test_a_placed_call_is_answered_even_when_its_outcome_cannot_be_recorded() -> None:
    store = StoreThatFailsToRecord()
    guard = Idempotency(store, wait_seconds=0.2, stale_seconds=0.0)
    dials: list[str] = []
    dial = placed(dials, "call")

    reply, replayed = guard.run("k", "fp", dial, request_id="r-1")

    assert (reply.status, replayed) == (201, False)
    assert store.read("key:k").state == SENDING  # not DONE: a retry must not dial again
    with pytest.raises(Problem) as retry:
        guard.run("k", "fp", dial, request_id="r-2")
    assert retry.value.code == "genesys_timeout"
    assert retry.value.outcome_unknown
    assert dials == ["call"]


START = 1_000_000.0


def test_a_keyless_outcome_unknown_outlives_a_clients_whole_retry_run() -> None:
    """Power Automate's default policy retries a 504 4 times; the last can come past 2 minutes. Each must
    replay the outcome-unknown answer: the first call may exist."""
    clock = Clock(START)
    guard = Idempotency(MemoryStore(), wait_seconds=0.2, stale_seconds=60.0, duplicate_window_seconds=60.0, clock=clock)
    dials: list[float] = []

    def dial(mark_sent) -> Reply:
        mark_sent()
        dials.append(clock.now)
        raise Problem("genesys_timeout", "no answer in time", outcome_unknown=True)

    with pytest.raises(Problem):
        guard.run(None, "fp", dial, request_id="r-1")
    for seconds in (7.5, 22.5, 52.5, 124.5, 14 * 60):
        clock.now = START + seconds
        reply, replayed = guard.run(None, "fp", dial, request_id="r-retry")
        assert (reply.status, replayed) == (504, True), seconds

    clock.now = START + 16 * 60  # long after: an identical request is a new one
    with pytest.raises(Problem):
        guard.run(None, "fp", dial, request_id="r-new")
    assert len(dials) == 2


def test_a_keyless_claim_past_its_window_is_not_taken_over_while_it_may_still_send() -> None:
    """Its owner stalled (a slow secret read): a retry after the window answers outcome unknown, not a dial."""
    clock = Clock(START)
    store = MemoryStore()
    guard = Idempotency(store, wait_seconds=0.2, stale_seconds=60.0, duplicate_window_seconds=60.0, clock=clock)
    lifetime = 60.0 + KEYLESS_UNKNOWN_OUTCOME_SECONDS  # what `run` gives a keyless claim: stale limit and retries
    store.create(Record(KEYLESS_PREFIX + "fp", "fp", SENDING, "r-stalled", clock.now, clock.now + lifetime))
    clock.now += 130.0  # past the window
    dials: list[str] = []
    dial = placed(dials, "retry")

    with pytest.raises(Problem) as retry:
        guard.run(None, "fp", dial, request_id="r-retry")
    assert retry.value.outcome_unknown
    assert dials == []


def test_a_keyless_claim_whose_owner_sent_and_never_recorded_outlives_the_purge_and_the_retries() -> None:
    """The owner sent the call and could not record Genesys's answer. The purge (every 10 minutes) must not
    free the claim while the client still retries: each retry answers "outcome unknown"."""
    clock = Clock(START)
    store = StoreThatFailsToRecord()
    guard = Idempotency(store, wait_seconds=0.2, stale_seconds=60.0, duplicate_window_seconds=60.0, clock=clock)
    dials: list[str] = []
    dial = placed(dials, "call")

    guard.run(None, "fp", dial, request_id="r-1")
    clock.now = START + 10 * 60
    guard.purge()

    with pytest.raises(Problem) as retry:
        guard.run(None, "fp", dial, request_id="r-retry")
    assert retry.value.outcome_unknown
    assert dials == ["call"]


def test_a_keyless_claim_that_never_recorded_an_answer_frees_the_call_once_its_lifetime_is_over() -> None:
    """Past the stale limit and the clients' retry runs the identical call is a new one, as when the purge
    deleted the claim at its expiry: the purge now comes a retention later, and must not hold the call a day."""
    clock = Clock(START)
    store = StoreThatFailsToRecord()
    guard = Idempotency(store, wait_seconds=0.2, stale_seconds=60.0, duplicate_window_seconds=60.0, clock=clock)
    dials: list[str] = []

    guard.run(None, "fp", placed(dials, "first"), request_id="r-1")
    clock.now = START + 60 + KEYLESS_UNKNOWN_OUTCOME_SECONDS + 1
    reply, replayed = guard.run(None, "fp", placed(dials, "later"), request_id="r-2")

    assert (reply.status, replayed) == (201, False)
    assert dials == ["first", "later"]


class StoreThatCannotRelease(MemoryStore):
    """Unreachable for deletes: a claim whose attempt failed before sending stays "sending"."""

    def delete(self, record: Record) -> None:
        raise Problem("idempotency_store_unavailable", "store went away")


def delivery(number: int) -> JobAttempt:
    return JobAttempt(START, lambda call_key: None, number)


def left_sending(store: MemoryStore, guard: Idempotency, request_id: str, job: JobAttempt | None) -> None:
    """An attempt claims, fails before its create (its token fetch), and cannot release the claim."""

    def fails_before_sending(mark_sent) -> Reply:
        raise Problem("genesys_unavailable", "no token")

    with pytest.raises(Problem):
        guard.run("k", "fp", fails_before_sending, request_id=request_id, job=job)
    assert store.read("key:k").state == SENDING


def test_a_later_delivery_of_the_same_job_resumes_the_claim_an_earlier_one_left_before_sending() -> None:
    store = StoreThatCannotRelease()
    guard = Idempotency(store, wait_seconds=0.2, stale_seconds=60.0)
    left_sending(store, guard, "job-1", delivery(1))
    dials: list[str] = []

    reply, replayed = guard.run("k", "fp", placed(dials, "second"), request_id="job-1", job=delivery(2))

    assert (reply.status, replayed, dials) == (201, False, ["second"])


@pytest.mark.parametrize(
    ("left_by", "retried_by", "retry"),
    [
        (None, "job-1", delivery(2)),  # a request over HTTP chose the job's id as its X-Request-Id: it may have sent
        (delivery(1), "job-1", None),  # and the other way round
        (delivery(1), "job-2", delivery(2)),  # another job with the same key
        (delivery(2), "job-1", delivery(2)),  # a delivery never resumes a claim of its own number
    ],
    ids=["http-then-job", "job-then-http", "other-job", "same-delivery"],
)
def test_no_other_request_resumes_a_claim_left_sending(
    left_by: JobAttempt | None, retried_by: str, retry: JobAttempt | None
) -> None:
    store = StoreThatCannotRelease()
    guard = Idempotency(store, wait_seconds=0.2, stale_seconds=0.0)
    left_sending(store, guard, "job-1", left_by)
    dials: list[str] = []

    with pytest.raises(Problem) as answered:
        guard.run("k", "fp", placed(dials, "retry"), request_id=retried_by, job=retry)

    assert answered.value.outcome_unknown  # it may have sent: never dialed again
    assert dials == []


def test_a_delivery_that_lost_the_job_never_takes_the_claim_of_the_one_that_holds_it() -> None:
    """Delivery 1 stalled past the stale limit; delivery 2 took the job and is placing the call. Had 1 taken 2's
    claim, its own mark would fail (the job is 2's), its failure would delete the claim, and the key would be free
    for another request to dial again."""
    store = MemoryStore()
    guard = Idempotency(store, wait_seconds=0.2, stale_seconds=0.0)
    dials: list[str] = []

    def lost_the_job(mark_sent) -> Reply:
        raise Problem("request_in_progress", "Another attempt took over this request; nothing was dialed by this one.")

    def holder(mark_sent) -> Reply:
        with pytest.raises(Problem) as late:  # delivery 1 arrives while 2 holds the claim
            guard.run("k", "fp", lost_the_job, request_id="job-1", job=delivery(1))
        assert late.value.code == "genesys_timeout"  # "outcome unknown": it neither took the claim nor dialed
        return placed(dials, "holder")(mark_sent)

    guard.run("k", "fp", holder, request_id="job-1", job=delivery(2))
    reply, replayed = guard.run("k", "fp", placed(dials, "http"), request_id="http-1")

    assert (reply.body, replayed, dials) == ({"conversationId": "c-1"}, True, ["holder"])


def test_a_job_never_resumes_a_claim_that_holds_an_answer() -> None:
    store = MemoryStore()
    guard = Idempotency(store, wait_seconds=0.2, stale_seconds=0.0)
    dials: list[str] = []

    guard.run("k", "fp", placed(dials, "first"), request_id="job-1", job=delivery(1))
    reply, replayed = guard.run("k", "fp", placed(dials, "second"), request_id="job-1", job=delivery(2))

    assert (reply.body, replayed, dials) == ({"conversationId": "c-1"}, True, ["first"])


# ---- claims let go of later (LateReleases) --------------------------------------------------------------------

WAIT = 5.0  # bound on each wait for the background thread; it retries every 10 ms here


class StoreThatRefusesDeletes(MemoryStore):
    """Refuses the first `refusals` deletes, as storage during a blip; then deletes as the memory store does."""

    def __init__(self, refusals: int) -> None:
        super().__init__()
        self.refusals = refusals
        self.tries = 0

    def delete(self, record: Record) -> None:
        self.tries += 1
        if self.tries <= self.refusals:
            raise Problem("idempotency_store_unavailable", "store went away")
        super().delete(record)


def sending_claim(store: MemoryStore, key: str = "key:k") -> Record:
    claim = store.create(Record(key, "fp", SENDING, "r-1", START, START + 60))
    assert claim is not None
    return claim


def late_writes(store: MemoryStore, clock: Clock) -> LateWrites:
    return LateWrites(store, clock, first_wait=0.01)


def test_a_claim_storage_refused_to_let_go_of_is_let_go_once_it_answers() -> None:
    store, clock = StoreThatRefusesDeletes(refusals=3), Clock(START)
    releases = late_writes(store, clock)
    first, second = sending_claim(store, "key:a"), sending_claim(store, "key:b")

    releases.release(first, START + 60)
    releases.release(second, START + 60)  # while the thread runs: tried too

    assert releases.idle.wait(WAIT)
    assert (store.read("key:a"), store.read("key:b")) == (None, None)


def test_a_claim_written_since_is_left_alone() -> None:
    store, clock = StoreThatRefusesDeletes(refusals=1), Clock(START)
    releases = late_writes(store, clock)
    claim = sending_claim(store)
    taken = store.replace(replace(claim, owner="job-1"))  # a later delivery of the job took it meanwhile

    releases.release(claim, START + 60)

    assert releases.idle.wait(WAIT)
    assert store.read("key:k") == taken


def test_a_claim_is_given_up_once_its_time_is_past() -> None:
    store, clock = StoreThatRefusesDeletes(refusals=10**9), Clock(START)
    releases = late_writes(store, clock)
    claim = sending_claim(store)
    releases.release(claim, START + 60)
    assert not releases.idle.wait(0.1)  # still trying

    clock.now = START + 61

    assert releases.idle.wait(WAIT)
    assert store.read("key:k") == claim


def test_closed_it_stops_trying() -> None:
    store = StoreThatRefusesDeletes(refusals=10**9)
    releases = late_writes(store, Clock(START))
    releases.release(sending_claim(store), START + 60)

    releases.close()

    assert releases.idle.wait(WAIT)
    tries = store.tries
    releases.release(sending_claim(store, "key:later"), START + 60)  # closed: not tried
    assert releases.idle.is_set() and store.tries == tries


class StoreThatRefusesAnswers(MemoryStore):
    """Refuses the first `refusals` writes of an answer, as storage during a blip; then writes as the memory store
    does."""

    def __init__(self, refusals: int) -> None:
        super().__init__()
        self.refusals = refusals

    def replace(self, record: Record) -> Record | None:
        if record.state == DONE and self.refusals > 0:
            self.refusals -= 1
            raise Problem("idempotency_store_unavailable", "store went away")
        return super().replace(record)


def test_an_answer_storage_refused_is_recorded_once_it_answers_and_replayed() -> None:
    """The call was placed and storage refused its answer: retries waited on the claim, then answered "outcome
    unknown", though the instance knew the conversation id."""
    store = StoreThatRefusesAnswers(refusals=3)
    guard = Idempotency(store, wait_seconds=0.2, stale_seconds=60.0)
    guard.late_writes = late_writes(store, Clock(START))
    dials: list[str] = []

    reply, _ = guard.run("k", "fp", placed(dials, "first"), request_id="r-1")
    assert guard.late_writes.idle.wait(WAIT)
    retried, replayed = guard.run("k", "fp", placed(dials, "second"), request_id="r-2")

    assert store.refusals == 0  # the fault did happen
    assert (reply.body, retried.body) == ({"conversationId": "c-1"}, {"conversationId": "c-1"})
    assert (replayed, dials) == (True, ["first"])


def test_an_answer_over_a_claim_written_since_is_left_alone() -> None:
    store, clock = MemoryStore(), Clock(START)
    writes = late_writes(store, clock)
    claim = sending_claim(store)
    taken = store.replace(replace(claim, owner="job-1"))  # a later delivery of the job took it meanwhile

    writes.record(claim, replace(claim, state=DONE, reply=Reply(201, {"conversationId": "c-1"}, {})), START + 60)

    assert writes.idle.wait(WAIT)
    assert store.read("key:k") == taken


class StoreThatFailsFromTheFirstAnswer(MemoryStore):
    """Every request fails from the first answer's write until `down` is cleared: an outage that begins as a call
    is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.down, self.began = False, False

    def _check(self) -> None:
        if self.down:
            raise Problem("idempotency_store_unavailable", "store went away")

    def create(self, record: Record) -> Record | None:
        self._check()
        return super().create(record)

    def read(self, key: str) -> Record | None:
        self._check()
        return super().read(key)

    def replace(self, record: Record) -> Record | None:
        if record.state == DONE and not self.began:
            self.down = self.began = True
        self._check()
        return super().replace(record)

    def delete(self, record: Record) -> None:
        self._check()
        super().delete(record)


def test_a_retry_refused_in_the_same_outage_does_not_drop_the_answer_to_record() -> None:
    """The retry's claim could not be written or read back, so its release was queued too, under the same key: it
    took the place of the first request's answer, which was never recorded, and a later retry was answered
    "outcome unknown" (for days, with a key) of a call whose conversation id the instance had known."""
    store, clock = StoreThatFailsFromTheFirstAnswer(), Clock(START)
    guard = Idempotency(store, wait_seconds=0.2, stale_seconds=60.0, clock=clock)
    guard.late_writes = late_writes(store, clock)
    dials: list[str] = []

    guard.run("k", "fp", placed(dials, "first"), request_id="r-1")
    with pytest.raises(Problem):
        guard.run("k", "fp", placed(dials, "second"), request_id="r-2")  # the client's retry, in the outage
    store.down = False
    assert guard.late_writes.idle.wait(WAIT)
    clock.now += 61  # past the stale limit: an unrecorded claim would be "outcome unknown" now
    later, replayed = guard.run("k", "fp", placed(dials, "third"), request_id="r-3")

    assert (later.body, replayed, dials) == ({"conversationId": "c-1"}, True, ["first"])


def test_a_keyless_answer_recorded_late_is_kept_its_window_from_then() -> None:
    """Without a key the window runs from the answer: recorded late, it was already past, and an identical request
    that had waited on the claim through the outage, or came right after it, was a new one and dialed again."""
    store, clock = StoreThatRefusesAnswers(refusals=10**9), Clock(START)
    guard = Idempotency(store, wait_seconds=0.2, stale_seconds=60.0, duplicate_window_seconds=30.0, clock=clock)
    guard.late_writes = late_writes(store, clock)
    dials: list[str] = []

    guard.run(None, "fp", placed(dials, "first"), request_id="r-1")
    clock.now += 40
    store.refusals = 0  # storage answers again 40 s later: the answer lands then
    assert guard.late_writes.idle.wait(WAIT)
    clock.now += 5
    retried, replayed = guard.run(None, "fp", placed(dials, "second"), request_id="r-2")

    assert (retried.body, replayed, dials) == ({"conversationId": "c-1"}, True, ["first"])


class StoreThatLosesTheClaimsAnswer(MemoryStore):
    """The claim's insert lands and its answer is lost; the reads that would find it fail for a while."""

    def __init__(self, failed_reads: int) -> None:
        super().__init__()
        self.failed_reads = failed_reads

    def create(self, record: Record) -> Record | None:
        super().create(record)
        raise Problem("idempotency_store_unavailable", "the answer was lost")

    def read(self, key: str) -> Record | None:
        if self.failed_reads > 0:
            self.failed_reads -= 1
            raise Problem("idempotency_store_unavailable", "store went away")
        return super().read(key)


def test_a_landed_claim_that_could_not_be_taken_back_at_once_is_taken_back_later() -> None:
    """The insert landed unheard and the read that would take it back failed too: the request answered "nothing
    was dialed, retry", and the claim stayed "sending", answering that retry "outcome unknown"."""
    store = StoreThatLosesTheClaimsAnswer(failed_reads=2)
    guard = Idempotency(store, wait_seconds=0.2, stale_seconds=60.0)
    dials: list[str] = []

    with pytest.raises(Problem) as failed:
        guard.run("k", "fp", placed(dials, "first"), request_id="r-1")

    assert failed.value.code == "idempotency_store_unavailable" and dials == []
    assert guard.late_writes.idle.wait(WAIT)
    assert MemoryStore.read(store, "key:k") is None


# Keyless requests with a queued job among them, a job judged by when it was accepted, with a 60 s window. A step is
# (at, name, accepted_at): a request over HTTP when accepted_at is None, else a job's run.
ARRIVALS = {
    # a sync call inside the window of a late job's answer replays it, and so does the job's duplicate run after
    "late-job-then-its-duplicates": ([(105, "J1", 0), (110, "R", None), (111, "J2", 30)], ["J1"]),
    # two jobs accepted 30 s apart, the later one run first: one call
    "duplicate-jobs-run-in-reverse": ([(100, "J2", 30), (101, "J1", 0)], ["J2"]),
    # a job run late finds the live answer of an identical request that arrived after it, even a window after, and
    # replays it: once for both, never twice (a job's claim is written only when it runs)
    "call-a-window-after-the-job": ([(100, "R", None), (105, "J", 0), (110, "R-retry", None)], ["R"]),
    "jobs-a-window-apart": ([(600, "J1", 0), (610, "J2", 300)], ["J1"]),
}


@pytest.mark.parametrize(("steps", "dialed"), ARRIVALS.values(), ids=ARRIVALS.keys())
def test_keyless_requests_and_queued_jobs_inside_a_window_are_one(
    steps: list[tuple[float, str, float | None]], dialed: list[str]
) -> None:
    clock = Clock()
    guard = Idempotency(MemoryStore(), wait_seconds=0.2, stale_seconds=60.0, clock=clock)
    dials: list[str] = []
    for at, name, accepted_at in steps:
        clock.now = at
        job = None if accepted_at is None else JobAttempt(accepted_at, lambda call_key: None, 1)
        guard.run(None, "fp", placed(dials, name), request_id=name, job=job)

    assert dials == dialed
