"""Memory growth of the app over 10,000 calls, in-process against the emulators.

The child holds only the app (the emulators, whose request logs grow by design, live in the parent and in
Azurite), so its growth is the app's. Two passes in one process:

1. Resident set (RSS, /proc) every 500 calls, from the first call: a warm-up, then the 10,000 measured calls.
   The warm-up is in the samples, so what it fills (libphonenumber's metadata, `urllib.parse`'s and the SDKs'
   caches, the allocator's arenas) shows on the plot instead of being hidden.
2. The Python heap traced by tracemalloc over further calls, and where it grew. tracemalloc sees only what is
   allocated after it starts: a bounded cache whose older entries predate it (`urllib.parse`'s, for one)
   would show every replacement as growth, so the pass first runs calls traced but unmeasured until those
   entries have turned over. It slows each call about fourfold, so the measured part is shorter and its growth
   is scaled to 10,000 calls (the JSON keeps both).

    python -m bench.memory CALLS     (a child of `python -m bench`: needs the stack's settings)
"""

from __future__ import annotations

import gc
import json
import sys
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.calls import MEMORY_RANGE, InProcessApp

if TYPE_CHECKING:
    from bench.stack import EmulatedStack

CALLS = 10_000
WARM_UP_CALLS = 1_000
TRACED_WARM_UP_CALLS = 500
TRACED_CALLS = 2_000
SAMPLE_EVERY = 500
TOP_SITES = 8  # where the traced heap grew most: the answer to "why", if it grows
MIB = 1024 * 1024


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def child(calls: int) -> dict[str, Any]:
    app = InProcessApp()
    numbers = iter(range(MEMORY_RANGE, MEMORY_RANGE + WARM_UP_CALLS + calls + TRACED_WARM_UP_CALLS + TRACED_CALLS))
    samples = []
    for i in range(WARM_UP_CALLS + calls + 1):
        if i % SAMPLE_EVERY == 0:
            gc.collect()
            samples.append({"calls": i - WARM_UP_CALLS, "rss_mib": round(rss_bytes() / MIB, 3)})
        if i < WARM_UP_CALLS + calls:
            app.call(next(numbers))
    measured = [s for s in samples if s["calls"] >= 0]

    tracemalloc.start()
    for _ in range(TRACED_WARM_UP_CALLS):
        app.call(next(numbers))
    gc.collect()
    start = tracemalloc.take_snapshot()
    traced_before = tracemalloc.get_traced_memory()[0]
    for _ in range(TRACED_CALLS):
        app.call(next(numbers))
    gc.collect()
    traced_growth = tracemalloc.get_traced_memory()[0] - traced_before
    growth = tracemalloc.take_snapshot().compare_to(start, "lineno")[:TOP_SITES]
    tracemalloc.stop()
    return {
        "calls": calls,
        "warm_up_calls": WARM_UP_CALLS,
        "rss_growth_mib": round(measured[-1]["rss_mib"] - measured[0]["rss_mib"], 3),
        "traced_calls": TRACED_CALLS,
        "traced_growth_mib": round(traced_growth / MIB, 4),
        "traced_growth_mib_per_calls": round(traced_growth / MIB * calls / TRACED_CALLS, 4),
        "samples": samples,
        "top_growth": [{"site": str(d.traceback[0]), "kib": round(d.size_diff / 1024, 1)} for d in growth],
    }


def run(stack: EmulatedStack) -> dict[str, Any]:
    return stack.run_child("memory", str(CALLS))


if __name__ == "__main__":
    print(json.dumps(child(int(sys.argv[1]))))
