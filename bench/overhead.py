"""The app's call path in-process against its floor, in one child process, samples interleaved.

App and floors take turns call by call, in an order reversed every other call (ABBA), so drift in the machine
or the emulators lands on all alike. Without Table Storage the floor is one raw create; with Azurite it is a raw
create plus two raw Table inserts, and a second floor adds the do-not-call point read (see bench/calls.py).

    python -m bench.overhead CALLS [--table]   (a child of `python -m bench`: needs the stack's settings)
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.calls import RANGES, InProcessApp, RawGenesys, RawTable
from bench.stack import EmulatedStack
from bench.stats import Summary

WARM_UP_CALLS = 30


def measure(calls: int, table: bool) -> dict[str, Any]:
    app, genesys = InProcessApp(), RawGenesys()
    raw_table = RawTable() if table else None

    def floor(index: int) -> None:
        genesys.create(index)
        if raw_table is not None:
            raw_table.insert_two()

    def floor_with_lookup(index: int) -> None:
        assert raw_table is not None
        raw_table.read_missing()
        floor(index)

    base = RANGES["overhead_table" if table else "overhead_no_store"]
    turns: list[tuple[str, Callable[[int], None]]] = [("app", app.call), ("floor", floor)]
    if table:
        turns.append(("floor_with_lookup", floor_with_lookup))
    samples: dict[str, list[float]] = {name: [] for name, _ in turns}
    for i in range(WARM_UP_CALLS + calls):
        for name, run in turns if i % 2 == 0 else reversed(turns):
            started = time.perf_counter()
            run(base + i)
            if i >= WARM_UP_CALLS:
                samples[name].append(time.perf_counter() - started)
    summaries = {name: Summary.of(values) for name, values in samples.items()}
    result = {
        "app_ms": summaries["app"].to_json(),
        "floor_ms": summaries["floor"].to_json(),
        "ratio": summaries["app"].ratio_to(summaries["floor"]),
    }
    if table:
        result["floor_with_lookup_ms"] = summaries["floor_with_lookup"].to_json()
        result["ratio_with_lookup"] = summaries["app"].ratio_to(summaries["floor_with_lookup"])
    return result


def run(stack: EmulatedStack, calls: int) -> dict[str, Any]:
    """Both comparisons: no store (in-memory idempotency) and Azurite."""
    return {
        name: stack.run_child("overhead", str(calls), *(["--table"] if table else []), storage=table)
        for name, table in (("no_store", False), ("table", True))
    }


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]), "--table" in sys.argv[2:])))
