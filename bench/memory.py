"""Memory growth of the app over 10,000 calls, in-process against the emulators.

The child holds only the app (the emulators, whose request logs grow by design, live in the parent and in
Azurite), so its growth is the app's. After a warm-up it reads its resident set (RSS, /proc) and the Python
heap traced by tracemalloc every 1,000 calls; tracemalloc slows calls, which does not matter here.

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
WARM_UP_CALLS = 500
SAMPLE_EVERY = 1_000
TOP_SITES = 8  # where the traced heap grew most: the answer to "why", if it grows
MIB = 1024 * 1024


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def child(calls: int) -> dict[str, Any]:
    app = InProcessApp()
    for i in range(WARM_UP_CALLS):
        app.call(MEMORY_RANGE + i)
    gc.collect()
    tracemalloc.start()
    start = tracemalloc.take_snapshot()
    samples = []
    for i in range(calls + 1):
        if i % SAMPLE_EVERY == 0:
            gc.collect()
            traced = tracemalloc.get_traced_memory()[0]
            samples.append({"calls": i, "rss_mib": rss_bytes() / MIB, "traced_mib": traced / MIB})
        if i < calls:
            app.call(MEMORY_RANGE + WARM_UP_CALLS + i)
    first, last = samples[0], samples[-1]
    growth = tracemalloc.take_snapshot().compare_to(start, "lineno")[:TOP_SITES]
    return {
        "calls": calls,
        "rss_growth_mib": round(last["rss_mib"] - first["rss_mib"], 3),
        "traced_growth_mib": round(last["traced_mib"] - first["traced_mib"], 3),
        "samples": [{k: round(v, 3) for k, v in s.items()} for s in samples],
        "top_growth": [{"site": str(d.traceback[0]), "kib": round(d.size_diff / 1024, 1)} for d in growth],
    }


def run(stack: EmulatedStack) -> dict[str, Any]:
    return stack.run_child("memory", str(CALLS))


if __name__ == "__main__":
    print(json.dumps(child(int(sys.argv[1]))))
