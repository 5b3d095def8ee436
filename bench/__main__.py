"""`python -m bench`: every measurement in one run, written as JSON and a PNG plot.

Each figure is reported beside the floor measured in the same run (see docs/benchmarks.md for what each
floor is). About 4 minutes on 2 cores; only 127.0.0.1 is used and every process started here ends with it.

    .venv/bin/python -m bench [--only overhead throughput ...] [--json bench/results.json] [--png ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import cold_start, imports, memory, overhead, throughput
from bench.plot import plot
from bench.stack import ROOT, EmulatedStack, emulated_stack

OVERHEAD_CALLS = 1_000
SECTIONS: dict[str, Callable[[EmulatedStack], dict[str, Any]]] = {
    "imports": lambda _stack: imports.run(),
    "cold_start": cold_start.run,
    "overhead": lambda stack: overhead.run(stack, OVERHEAD_CALLS),
    "throughput": throughput.run,
    "memory": memory.run,
}


# The libraries on every measured call's path: a new release moves the figures (requests 2.34's runtime-checked
# Protocols cost Python 3.11 about 10 µs per check, several per request), so a run names them.
MEASURED_PACKAGES = ("requests", "urllib3", "azure-core", "azure-data-tables", "azure-functions", "phonenumbers")


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "packages": {name: metadata.version(name) for name in MEASURED_PACKAGES},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), help="run only these measurements")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--png", type=Path, default=ROOT / "docs" / "benchmarks.png")
    args = parser.parse_args(argv)

    results: dict[str, Any] = {"machine": machine(), "seconds": {}}
    with emulated_stack() as stack:
        for name in args.only or SECTIONS:
            started = time.monotonic()
            print(f"{name} ...", file=sys.stderr, flush=True)
            results[name] = SECTIONS[name](stack)
            results["seconds"][name] = round(time.monotonic() - started, 1)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.png)
    print(f"wrote {args.json} and {args.png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
