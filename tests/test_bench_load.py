"""The benchmark's load generator reads the local host's answers right: what it counts is what happened.

It writes requests as bytes and reads answers by their Content-Length (bench/throughput.py says why); a
misread answer would make every throughput figure wrong without failing the run.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.calls import RANGES
from bench.throughput import load
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
