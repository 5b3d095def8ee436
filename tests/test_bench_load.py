"""The throughput benchmark's instruments: what they count is what happened.

The load generator writes requests as bytes and reads answers by their Content-Length (bench/throughput.py says
why); a misread answer would make every throughput figure wrong without failing the run. The CPU time per
process comes from /proc, and must agree with the interpreter's own clock.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench import cold_start
from bench.calls import RANGES
from bench.overhead import WARM_UP_CALLS as WARM_UP_OVERHEAD_CALLS
from bench.stack import EmulatedStack, cpu_seconds
from bench.throughput import WARM_UP_CLIENTS, WARM_UP_MAX_SAMPLES, WARM_UP_SECONDS, load, warm_up
from tests.conftest import Stack

FIRST = RANGES["throughput"]


def test_every_call_it_counts_is_a_create_the_genesys_emulator_received(stack: Stack) -> None:
    result = load(stack.host.base_url, 3, 0.5, FIRST)

    assert result["calls"] > 0 and result["failures"] == 0
    assert len(stack.genesys.requests("create_call")) == result["calls"]
    assert len(result["latencies"]) == result["calls"]
    assert result["next_index"] >= FIRST + result["calls"]  # every call dialed a number of its own


def test_a_refused_call_counts_as_a_failure(stack: Stack, configure: Callable[..., None]) -> None:
    configure(ALLOWED_COUNTRIES="GB")  # the benchmark dials New York numbers: 403 destination_not_allowed

    result = load(stack.host.base_url, 2, 0.3, FIRST)

    assert result["calls"] > 0 and result["failures"] == result["calls"]
    assert stack.genesys.requests("create_call") == []


@pytest.fixture
def bench_stack(stack: Stack) -> EmulatedStack:
    """`python -m bench`'s view of this test's stack: its children get the test's settings (Azurite included)."""
    return EmulatedStack(stack.genesys, stack.vault, {}, Path(os.devnull), azurite_pid=0)


def test_a_benchmark_child_places_calls_in_a_dev_container(
    stack: Stack, bench_stack: EmulatedStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dev container sets CONTAINER_NAME, which the app reads as Linux Consumption: a child that inherited it
    refused every call (configuration_error: the emulated vault's challenge), and `python -m bench` failed."""
    monkeypatch.setenv("CONTAINER_NAME", "a-dev-container")

    result = bench_stack.run_child("overhead", "2", storage=False)

    assert result["app_ms"]["n"] == 2 and result["ratio"]["p50"] > 0
    assert len(stack.creates()) == 2 + 2 + 2 * WARM_UP_OVERHEAD_CALLS  # the app's and the floor's, warm-up too


def test_the_cold_start_benchmark_breaks_a_first_call_down(stack: Stack, bench_stack: EmulatedStack) -> None:
    """Its children name do-not-call tables of their own, which must exist (a typo must not be an empty list):
    made as an operator makes them, or every first call was refused and `python -m bench` failed."""
    result = cold_start.run(bench_stack)

    assert result["runs"] == cold_start.RUNS
    assert {"import", "key_vault_read", "genesys_token", "table_creation", "genesys_create"} <= set(result["parts_ms"])
    assert len(stack.creates()) == 2 * cold_start.RUNS  # each fresh process placed its first call and a second


def test_cpu_seconds_from_proc_agree_with_the_interpreters_clock() -> None:
    before, clock_before = cpu_seconds(os.getpid()), time.process_time()
    while time.process_time() - clock_before < 0.3:  # burn 0.3 s of CPU
        pass
    used, clocked = cpu_seconds(os.getpid()) - before, time.process_time() - clock_before

    assert abs(used - clocked) < 0.05  # /proc counts in ticks of 10 ms


class _Rates:
    """Stands in for the load generator: answers each sample with the next rate (calls over one second)."""

    def __init__(self, *rates: float) -> None:
        self.rates = list(rates)
        self.asked: list[tuple[int, float]] = []

    def sample(self, concurrency: int, seconds: float) -> dict[str, float]:
        self.asked.append((concurrency, seconds))
        return {"calls": self.rates.pop(0), "seconds": 1.0}


def test_warm_up_runs_until_two_samples_in_a_row_agree() -> None:
    generator = _Rates(90, 150, 171, 176, 999)

    assert warm_up(generator) == [90, 150, 171, 176]  # 176 is within 5% of 171
    assert generator.asked == [(WARM_UP_CLIENTS, WARM_UP_SECONDS)] * 4


def test_warm_up_that_never_settles_stops_at_its_bound() -> None:
    generator = _Rates(*[100 * 1.5**i for i in range(WARM_UP_MAX_SAMPLES + 5)])

    assert len(warm_up(generator)) == WARM_UP_MAX_SAMPLES
