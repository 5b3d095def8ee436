"""A job another delivery holds is looked at again once that claim is stale, never failed on the way.

A narrow unit test: the rule is about a delivery that died holding the job (a worker process that ended) and
a claim turning stale a minute later, so the store is the in-memory one, the queue records what is sent, and
the clock is a stand-in. The queue's own redelivery is tested through the local host in tests/test_async_*.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from shared.async_requests import DELIVERY, MAX_DELIVERIES, ORPHANED_AFTER_SECONDS, AsyncRequests, record_key
from shared.errors import Problem
from shared.idempotency import CLAIMED, DONE, JOB_DELIVERY, SENDING, SENT, JobAttempt, MemoryStore, Record, Reply
from tests.conftest import Clock

STALE_SECONDS = 60.0
WAIT_SECONDS = 25.0
WINDOW_SECONDS = 60.0


class RecordingQueue:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []

    def send(self, message: str, delay_seconds: int = 0) -> None:
        self.sent.append((message, delay_seconds))


def jobs_on(store: MemoryStore, queue: RecordingQueue, clock: Clock) -> AsyncRequests:
    return AsyncRequests(
        store,
        queue,
        retention_seconds=86_400,
        retry_after_seconds=1,
        stale_seconds=STALE_SECONDS,
        wait_seconds=WAIT_SECONDS,
        duplicate_window_seconds=WINDOW_SECONDS,
        clock=clock,
    )


def accepted_job(key: str | None = None) -> tuple[AsyncRequests, MemoryStore, RecordingQueue, Clock, str, str]:
    """An accepted job, its message queued."""
    store, queue, clock = MemoryStore(), RecordingQueue(), Clock(1_000_000.0)
    jobs = jobs_on(store, queue, clock)
    request_id = jobs.accept({"to": "+12125550199"}, key).body["requestId"]
    return jobs, store, queue, clock, queue.sent[0][0], request_id


def held_job() -> tuple[AsyncRequests, MemoryStore, RecordingQueue, Clock, str, str]:
    """An accepted job whose first delivery claimed it and then died (its claim is left, fresh)."""
    jobs, store, queue, clock, message, request_id = accepted_job()
    record = store.read(record_key(request_id))
    assert record is not None
    store.replace(replace(record, state=CLAIMED, claimed_at=clock.now))
    return jobs, store, queue, clock, message, request_id


def placed(placements: list[str]) -> Any:
    def answer(body: Any, key: str | None, request_id: str, **_: Any) -> tuple[Reply, bool]:
        placements.append(request_id)
        return Reply(201, {"conversationId": "c-1"}, {}), False

    return answer


def test_a_redelivery_of_a_held_job_looks_again_when_the_claim_is_stale_and_then_runs_it() -> None:
    jobs, store, queue, clock, message, request_id = held_job()
    placements: list[str] = []
    clock.now += 5

    for attempt in range(1, 6):  # the queue's five tries, seconds apart: none may end the job
        jobs.process(message, attempt, placed(placements))
    looked_again = queue.sent[1:]
    clock.now += looked_again[0][1]
    jobs.process(message, 1, placed(placements))

    assert placements == [request_id]
    assert all(delay == STALE_SECONDS + WAIT_SECONDS - 5 + 1 for _, delay in looked_again)
    record = store.read(record_key(request_id))
    assert record is not None and record.state == DONE


def test_a_poisoned_copy_does_not_overwrite_a_job_its_holder_may_still_answer() -> None:
    jobs, store, queue, _, message, request_id = held_job()

    jobs.fail(message)

    record = store.read(record_key(request_id))
    assert record is not None and record.state == CLAIMED  # not completed as a failure
    assert queue.sent[-1][0] == message  # looked at again once the claim is stale


def rate_limited(retry_after: int, attempts: list[int]) -> Any:
    """A create Genesys refused with 429: sent after the job's mark, and provably not acted on."""

    def answer(body: Any, key: str | None, request_id: str, *, job: JobAttempt) -> tuple[Reply, bool]:
        job.mark_sent(None)
        attempts.append(job.delivery)
        problem = Problem("genesys_rate_limited", "Genesys Cloud answered 429.", retry_after=retry_after)
        return Reply.of_problem(problem, request_id), False

    return answer


@pytest.mark.parametrize("key", ["a-key", None])
def test_a_refused_create_is_tried_again_when_genesys_asked_and_at_most_five_times(key: str | None) -> None:
    jobs, store, queue, _, message, request_id = accepted_job(key)
    attempts: list[int] = []

    for _ in range(5):
        jobs.process(queue.sent[-1][0], 1, rate_limited(30, attempts))  # each queued copy is a first delivery

    assert attempts == [1, 2, 3, 4, 5]
    assert [delay for _, delay in queue.sent[1:]] == [30, 30, 30, 30]  # Genesys's wait, not the queue's 2 s
    assert {text for text, _ in queue.sent} == {message}
    record = store.read(record_key(request_id))
    assert record is not None and record.state == DONE and record.reply is not None
    assert record.reply.status == 429


@pytest.mark.parametrize(("key", "retry_after"), [(None, int(WINDOW_SECONDS) + 1), ("a-key", 86_400)])
def test_a_refused_create_is_answered_when_its_wait_would_outlast_the_guards(key: str | None, retry_after: int) -> None:
    """Without a key an identical request placed meanwhile is answered from its record only for the window;
    any job's own record is kept for the retention from acceptance."""
    jobs, store, queue, _, message, request_id = accepted_job(key)
    attempts: list[int] = []

    jobs.process(message, 1, rate_limited(retry_after, attempts))

    assert attempts == [1]
    assert len(queue.sent) == 1  # only the accepted message: nothing queued again
    record = store.read(record_key(request_id))
    assert record is not None and record.state == DONE and record.reply is not None
    assert record.reply.status == 429


def test_a_job_whose_worker_dies_on_every_delivery_ends_with_no_call_sent() -> None:
    """Each death leaves the job claimed; the poison handler looks again once the claim is stale, and that copy is
    taken again. The number of takers ends it."""
    jobs, store, _, clock, message, request_id = held_job()
    for taker in range(1, MAX_DELIVERIES + 1):  # every delivery so far took the job and died holding it
        record = store.read(record_key(request_id))
        assert record is not None
        store.replace(replace(record, claimed_at=clock.now, data={DELIVERY: taker}))
    clock.now += STALE_SECONDS + WAIT_SECONDS + 1
    placements: list[str] = []

    jobs.process(message, 1, placed(placements))

    assert placements == []
    record = store.read(record_key(request_id))
    assert record is not None and record.state == DONE and record.reply is not None
    assert (record.reply.status, record.reply.body["code"]) == (500, "internal_error")
    assert "no call was sent" in record.reply.body["detail"]


@pytest.mark.parametrize("end", ["every-delivery-died", "poison-message"])
def test_a_keyed_job_that_ends_having_sent_nothing_frees_its_key(end: str) -> None:
    """Its last delivery died after writing the call's claim and before the job's record said sent: the job ended
    "no call was sent", and its key answered "it may have been placed" for 8 days, a retry placing nothing."""
    jobs, store, _, clock, message, request_id = accepted_job("flow-run-7")
    record = store.read(record_key(request_id))
    assert record is not None
    store.replace(replace(record, state=CLAIMED, claimed_at=clock.now, data={DELIVERY: MAX_DELIVERIES}))
    claim = Record("key:flow-run-7", "fp", SENDING, request_id, clock.now, clock.now + 86_400)
    store.create(replace(claim, data={JOB_DELIVERY: MAX_DELIVERIES}))
    store.create(replace(claim, key="key:another-job", owner="another-request"))  # not this job's: left alone
    clock.now += STALE_SECONDS + WAIT_SECONDS + 1
    placements: list[str] = []

    if end == "poison-message":
        jobs.fail(message)
    else:
        jobs.process(message, 1, placed(placements))

    record = store.read(record_key(request_id))
    assert record is not None and record.reply is not None and "no call was sent" in record.reply.body["detail"]
    assert store.read("key:flow-run-7") is None
    assert store.read("key:another-job") is not None
    assert placements == []


def test_a_copy_arriving_while_the_job_waits_behind_its_key_leaves_the_job_to_its_holder() -> None:
    """A delivery takes the job, then the call waits up to IDEMPOTENCY_WAIT_SECONDS for another attempt with the
    same key before its own deadline starts. A copy of the message arriving a stale limit after the take (a minute)
    took a live job over, or, had it been sent, answered it "may have been placed" while its call went through."""
    jobs, store, queue, clock, message, request_id = accepted_job("a-key")
    copies: list[str] = []

    def waits_then_places(body: Any, key: str | None, request_id: str, *, job: JobAttempt) -> tuple[Reply, bool]:
        clock.now += STALE_SECONDS + WAIT_SECONDS - 10  # the wait behind the key, and most of the deadline
        job.mark_sent("key:a-key")
        copies.append("processed")
        jobs.process(message, 1, placed([]))  # the copy, run while this delivery still places the call
        return Reply(201, {"conversationId": "c-1", "requestId": request_id}, {}), False

    jobs.process(message, 1, waits_then_places)

    assert copies == ["processed"]
    record = store.read(record_key(request_id))
    assert record is not None and record.state == DONE and record.reply is not None
    assert record.reply.status == 201  # the holder's answer, not "outcome unknown" from the copy
    assert queue.sent[-1][0] == message  # the copy looks again later instead


def test_a_job_whose_message_was_lost_is_settled_at_its_poll_and_never_dialed_after() -> None:
    """No message will ever run it (its send failed and storage could not confirm the withdrawal): it read
    "pending" until its record expired a day later. Half an hour past when its message was due, the caller's poll
    ends it, and a message turning up after all dials nothing."""
    jobs, store, _, clock, message, request_id = accepted_job()
    placements: list[str] = []
    clock.now += ORPHANED_AFTER_SECONDS - 1
    waiting = jobs.result(request_id)
    clock.now += 2

    settled = jobs.result(request_id)
    jobs.process(message, 1, placed(placements))

    assert waiting.status == 202
    assert (settled.status, settled.body["code"]) == (500, "internal_error")
    assert "No call was sent" in settled.body["detail"]
    assert placements == []
    record = store.read(record_key(request_id))
    assert record is not None and record.state == DONE


def test_a_job_put_back_for_a_long_retry_after_is_not_taken_for_lost() -> None:
    """Queued again for when Genesys asked (a 429's Retry-After): its message is due then, not at its last claim."""
    jobs, _, queue, clock, message, request_id = accepted_job("a-key")
    jobs.process(message, 1, rate_limited(3600, []))
    assert queue.sent[-1][1] == 3600
    clock.now += ORPHANED_AFTER_SECONDS + 60

    assert jobs.result(request_id).status == 202


def test_a_sent_job_held_by_a_dead_delivery_whose_messages_were_lost_answers_outcome_unknown() -> None:
    jobs, store, _, clock, _, request_id = accepted_job()
    record = store.read(record_key(request_id))
    assert record is not None
    store.replace(replace(record, state=SENT, claimed_at=clock.now))
    clock.now += STALE_SECONDS + WAIT_SECONDS + ORPHANED_AFTER_SECONDS + 1

    settled = jobs.result(request_id)

    assert (settled.status, settled.body["code"]) == (504, "genesys_timeout")  # it may have been placed


class StoreThatCannotWrite(MemoryStore):
    def replace(self, record: Record) -> Record | None:
        raise Problem("idempotency_store_unavailable", "store went away")


def test_a_poll_that_cannot_settle_a_lost_job_still_answers_pending() -> None:
    """The settling write failed and the poll answered 503 "nothing was dialed": a poller that reads any answer
    but 202 as final could send the request again."""
    _, store, _, clock, _, request_id = accepted_job()
    record = store.read(record_key(request_id))
    assert record is not None
    failing = StoreThatCannotWrite()
    failing.create(record)
    jobs_on_failing = jobs_on(failing, RecordingQueue(), clock)
    clock.now += ORPHANED_AFTER_SECONDS + 1

    assert jobs_on_failing.result(request_id).status == 202
