"""Narrow unit tests of the idempotency rules where the real store cannot be made to fail on cue."""

from __future__ import annotations

import pytest

from shared.errors import Problem
from shared.idempotency import DONE, SENDING, Idempotency, MemoryStore, Record, Reply


class StoreThatFailsToRecord(MemoryStore):
    """Accepts claims and the `sent` mark, then is unreachable when the outcome is written."""

    def replace(self, record: Record) -> Record | None:
        if record.state == DONE:
            raise Problem("idempotency_store_unavailable", "store went away")
        return super().replace(record)


def test_a_placed_call_is_answered_even_when_its_outcome_cannot_be_recorded() -> None:
    store = StoreThatFailsToRecord()
    guard = Idempotency(store, wait_seconds=0.2, stale_seconds=0.0)
    dials: list[str] = []

    def dial(mark_sent) -> Reply:
        mark_sent()
        dials.append("call")
        return Reply(201, {"conversationId": "c-1"}, {})

    reply, replayed = guard.run("k", "fp", dial, request_id="r-1")

    assert (reply.status, replayed) == (201, False)
    assert store.read("key:k").state == SENDING  # not DONE: a retry must not dial again
    with pytest.raises(Problem) as retry:
        guard.run("k", "fp", dial, request_id="r-2")
    assert retry.value.code == "genesys_timeout"
    assert retry.value.outcome_unknown
    assert dials == ["call"]
