"""The cap per number when two instances count at the same clock reading."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from shared.errors import Problem
from shared.idempotency import MemoryStore, Record
from shared.policy.call_cap import MAX_LIMIT, MAX_WINDOW_SECONDS, CallCap, Count

NUMBER = "+12125550199"
NOW = 1_780_000_000.123456  # both instances read this clock: a float time is about 0.24 µs fine, so it happens


class RacedStore(MemoryStore):
    """Another instance (`racer`) counts a call to the number just before our first insert lands, which then
    meets its record."""

    def __init__(self) -> None:
        super().__init__()
        self.racer: CallCap | None = None

    def create(self, record: Record) -> Record | None:
        racer, self.racer = self.racer, None
        if racer is not None:
            racer.count(NUMBER)
        return super().create(record)


def test_a_count_another_instance_made_at_the_same_moment_is_not_taken_for_ours() -> None:
    """The loser of the race read the winner's count, at the same time as its own, as its own write landed
    unheard: it went on to dial, a second call to a number with a limit of one."""
    store = RacedStore()
    cap = CallCap(store, limit=1, window_seconds=3600, clock=lambda: NOW)
    store.racer = CallCap(store, limit=1, window_seconds=3600, clock=lambda: NOW)

    with pytest.raises(Problem) as refused:
        cap.count(NUMBER)

    assert refused.value.code == "call_limit_reached"
    stored = store.read("cap:" + NUMBER)
    assert stored is not None and stored.data is not None and len(stored.data["calls"]) == 1


def test_taking_back_a_count_that_never_landed_leaves_another_made_at_the_same_moment() -> None:
    """Ours was refused (the other instance's write won the race) and the call not placed: taking it back by its
    time alone removed the other's count, under a cap that then let one more call through."""
    store = MemoryStore()
    cap = CallCap(store, limit=2, window_seconds=3600, clock=lambda: NOW)
    theirs = cap.count(NUMBER)

    cap.uncount(NUMBER, Count(NOW, "never-landed"))

    stored = store.read("cap:" + NUMBER)
    assert stored is not None and stored.data is not None
    assert stored.data["counts"] == [[theirs.at, theirs.token]]


def test_the_times_are_kept_as_versions_before_tokens_read_them() -> None:
    """During a rolling deploy an instance of the version before reads `calls` as a list of times (a list of pairs
    there would fail its comparison, a 500), and rewrites it without `counts`: its calls still count here."""
    store = MemoryStore()
    cap = CallCap(store, limit=2, window_seconds=3600, clock=lambda: NOW)
    cap.count(NUMBER)
    stored = store.read("cap:" + NUMBER)
    assert stored is not None and stored.data is not None and stored.data["calls"] == [NOW]

    store.replace(replace(stored, data={"calls": [NOW, NOW]}))  # as that version counts a second call

    with pytest.raises(Problem) as refused:
        cap.count(NUMBER)
    assert refused.value.code == "call_limit_reached"


def test_counts_stored_before_tokens_still_count() -> None:
    """Records written before counts had tokens: `calls` alone."""
    store = MemoryStore()
    store.create(Record("cap:" + NUMBER, "", "counting", "cap", NOW, NOW + 3600, data={"calls": [NOW - 10]}))
    cap = CallCap(store, limit=1, window_seconds=3600, clock=lambda: NOW)

    with pytest.raises(Problem) as refused:
        cap.count(NUMBER)

    assert refused.value.code == "call_limit_reached"


def test_a_record_at_the_highest_limit_fits_one_table_property() -> None:
    """A record keeps its latest `limit` counts of a year in one property of at most 32K characters (64 KiB of
    UTF-16): at the old highest limit, 1,000, it held 57,499, and every later write to the number failed."""
    store = MemoryStore()
    now = [NOW - MAX_WINDOW_SECONDS + 3600]
    cap = CallCap(store, limit=MAX_LIMIT, window_seconds=MAX_WINDOW_SECONDS, clock=lambda: now[0])
    for _ in range(MAX_LIMIT):  # every count a time with all its digits, over the year
        cap.count(NUMBER)
        now[0] += 12345.678901

    stored = store.read("cap:" + NUMBER)

    assert stored is not None and stored.data is not None and len(stored.data["counts"]) == MAX_LIMIT
    assert len(json.dumps(stored.data)) < 32 * 1024  # as TableStore writes it
