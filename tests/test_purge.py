"""Table Storage has no TTL: a timer trigger deletes expired idempotency and request records, in bounded runs."""

from __future__ import annotations

import time

from shared.idempotency import DONE, Record, Store
from shared.services import services
from tests.conftest import Stack, app_store
from tests.table_front import table_front, through_front


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

    first = services().idempotency.purge(batch=2, seconds=0)  # its time is up after one delete
    rest = services().idempotency.purge(batch=2)

    assert (first, rest) == (1, 6)
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


def test_a_run_whose_deletes_slow_down_ends_at_its_time_inside_a_batch(stack: Stack, configure, azurite) -> None:
    """The time was looked at between batches only: deletes throttled to a second or two each made one batch of
    1,000 last up to half an hour, past the platform's limit on a function's run."""
    with table_front(azurite.ports["Table"]) as front:
        configure(AzureWebJobsStorage=through_front(azurite, front))
        store = table()
        old = expired_records(store, 20)
        front.delete_delay = 0.2

        started = time.monotonic()
        removed = services().idempotency.purge(batch=20, seconds=0.5)
        took = time.monotonic() - started
        front.delete_delay = 0.0
        gone = sum(store.read(key) is None for key in old)

    assert 1 <= removed < 20
    assert took < 2.0, took  # its half second, and the delete under way then
    assert gone == removed
