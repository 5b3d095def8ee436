"""Table Storage has no TTL: a timer trigger deletes expired idempotency and request records, in bounded runs."""

from __future__ import annotations

import time

from shared.idempotency import DONE, Record, Store
from shared.services import services
from tests.conftest import Stack, app_store


def table() -> Store:
    return app_store()


def expired_records(store: Store, count: int) -> list[str]:
    """Records that expired more than a retention ago: the timer keeps a record a retention past its expiry."""
    past = time.time() - services().settings.idempotency_retention_seconds - 60
    keys = [f"key:expired-{n}" for n in range(count)]
    for key in keys:
        assert store.create(Record(key, "fp", DONE, "old-request", past - 3600, past))
    return keys


def test_the_timer_deletes_expired_records_and_keeps_live_ones(stack: Stack) -> None:
    live = stack.post("/api/calls", {"to": "+12125550199"}, headers={"Idempotency-Key": "still-live"})
    store = table()
    old = expired_records(store, 5)

    stack.host.timers["purge_expired_records"].fire()

    assert [store.read(key) for key in old] == [None] * 5
    replay = stack.post("/api/calls", {"to": "+12125550199"}, headers={"Idempotency-Key": "still-live"})
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["conversationId"] == live.json()["conversationId"]
    assert len(stack.creates()) == 1


def test_one_run_deletes_at_most_its_limit(stack: Stack) -> None:
    store = table()
    old = expired_records(store, 5)

    removed = store.purge_expired(time.time(), limit=2)

    assert removed == 2
    assert sum(store.read(key) is None for key in old) == 2
    assert store.purge_expired(time.time(), limit=10) == 3


def test_a_run_deletes_batch_after_batch_until_one_is_not_full_or_its_time_is_up(stack: Stack) -> None:
    """One run deleted at most 1,000 records: 144,000 a day, fewer than a busy app with asynchronous jobs and
    callbacks writes (3 or 4 records a call), so the tables grew for ever."""
    store = table()
    old = expired_records(store, 7)

    first = services().idempotency.purge(batch=2, seconds=0)  # its time is up after one batch
    rest = services().idempotency.purge(batch=2)

    assert (first, rest) == (2, 5)
    assert [store.read(key) for key in old] == [None] * 7


def test_a_record_renewed_before_the_run_is_kept(stack: Stack) -> None:
    store = table()
    (key,) = expired_records(store, 1)
    current = store.read(key)
    assert current is not None
    renewed = store.replace(Record(key, "fp", DONE, "new-request", time.time(), time.time() + 3600, etag=current.etag))
    assert renewed is not None

    assert store.purge_expired(time.time(), limit=10) == 0
    assert store.read(key) is not None
