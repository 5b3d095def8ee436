"""The app's call path in-process against its floor, in one child process, samples interleaved.

App and floor alternate call by call (ABBA order), so drift in the machine or the emulators lands on both
alike. Without Table Storage the floor is one raw create; with Azurite it is a raw create plus two raw Table
inserts (see bench/calls.py).

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

    base = RANGES["overhead_table" if table else "overhead_no_store"]
    samples: dict[str, list[float]] = {"app": [], "floor": []}
    for i in range(WARM_UP_CALLS + calls):
        pair: list[tuple[str, Callable[[int], None]]] = [("app", app.call), ("floor", floor)]
        for name, run in pair if i % 2 == 0 else reversed(pair):
            started = time.perf_counter()
            run(base + i)
            if i >= WARM_UP_CALLS:
                samples[name].append(time.perf_counter() - started)
    app_summary, floor_summary = Summary.of(samples["app"]), Summary.of(samples["floor"])
    return {
        "app_ms": app_summary.to_json(),
        "floor_ms": floor_summary.to_json(),
        "ratio": app_summary.ratio_to(floor_summary),
    }


def run(stack: EmulatedStack, calls: int) -> dict[str, Any]:
    """Both comparisons: no store (in-memory idempotency) and Azurite."""
    return {
        name: stack.run_child("overhead", str(calls), *(["--table"] if table else []), storage=table)
        for name, table in (("no_store", False), ("table", True))
    }


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]), "--table" in sys.argv[2:])))
