"""A job another delivery holds is looked at again once that claim is stale, never failed on the way.

A narrow unit test: the rule is about a delivery that died holding the job (a worker process that ended) and
a claim turning stale a minute later, so the store is the in-memory one, the queue records what is sent, and
the clock is a stand-in. The queue's own redelivery is tested through the local host in tests/test_async_*.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from shared.async_requests import AsyncRequests, record_key
from shared.idempotency import CLAIMED, DONE, MemoryStore, Reply
from tests.conftest import Clock

STALE_SECONDS = 60.0


class RecordingQueue:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []

    def send(self, message: str, delay_seconds: int = 0) -> None:
        self.sent.append((message, delay_seconds))


def held_job() -> tuple[AsyncRequests, MemoryStore, RecordingQueue, Clock, str, str]:
    """An accepted job whose first delivery claimed it and then died (its claim is left, fresh)."""
    store, queue, clock = MemoryStore(), RecordingQueue(), Clock(1_000_000.0)
    jobs = AsyncRequests(
        store, queue, retention_seconds=86_400, retry_after_seconds=1, stale_seconds=STALE_SECONDS, clock=clock
    )
    request_id = jobs.accept({"to": "+12125550199"}, None).body["requestId"]
    message = queue.sent[0][0]
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
    assert all(delay == STALE_SECONDS - 5 + 1 for _, delay in looked_again)
    record = store.read(record_key(request_id))
    assert record is not None and record.state == DONE


def test_a_poisoned_copy_does_not_overwrite_a_job_its_holder_may_still_answer() -> None:
    jobs, store, queue, _, message, request_id = held_job()

    jobs.fail(message)

    record = store.read(record_key(request_id))
    assert record is not None and record.state == CLAIMED  # not completed as a failure
    assert queue.sent[-1][0] == message  # looked at again once the claim is stale
