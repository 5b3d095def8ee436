"""Calls per second and latency against concurrency, through the local host over real HTTP.

Three processes, as in production where Genesys and storage are elsewhere: the emulators (this process and
Azurite), the app behind the local host (`serve`), and the load generator (`load`, one thread and one
keep-alive connection per concurrent client). Each level runs for a fixed time after a warm-up; requests per
call come from the emulators' logs over exactly that level.

Two curves: the app with the worker's thread pool as the azd template sets it (PYTHON_THREADPOOL_THREAD_COUNT
32), which the target is judged on, and with the worker's default, min(32, cores + 4), for comparison: the
threads share one interpreter lock, so on few cores their number shapes the curve past the knee.

    python -m bench.throughput serve                         (children of `python -m bench`)
    python -m bench.throughput load URL CONCURRENCY SECONDS FIRST_INDEX
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from typing import Any

import requests

from bench.calls import RANGES, call_body
from bench.stack import ROOT, EmulatedStack
from bench.stats import Summary
from emulators.local_host import worker_threads

LEVELS = (1, 2, 4, 8, 16, 32, 64)
TEMPLATE_THREADS = "32"  # infra/app/api.bicep: PYTHON_THREADPOOL_THREAD_COUNT
SECONDS_PER_LEVEL = 4.0
WARM_UP_SECONDS = 1.5
START_TIMEOUT_SECONDS = 60


def load(url: str, concurrency: int, seconds: float, first_index: int) -> dict[str, Any]:
    """`concurrency` clients posting distinct calls back to back for `seconds`."""
    indexes = itertools.count(first_index)  # next() on a count is atomic under the GIL
    latencies: list[float] = []
    failures: list[int] = []
    deadline = time.perf_counter() + seconds

    def client() -> None:
        with requests.Session() as session:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                answer = session.post(
                    f"{url}/api/calls",
                    data=call_body(next(indexes)),
                    headers={"Content-Type": "application/json"},
                    timeout=30,
                )
                latencies.append(time.perf_counter() - started)
                if answer.status_code != 201:
                    failures.append(answer.status_code)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    elapsed = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "calls": len(latencies),
        "failures": len(failures),
        "calls_per_second": round(len(latencies) / elapsed, 1),
        "latency_ms": Summary.of(latencies).to_json(),
        "next_index": next(indexes),
    }


def serve() -> None:
    """Serve the app until the parent closes our stdin (so it stops with the parent, whatever happens)."""
    import function_app
    from emulators.local_host import LocalFunctionHost

    with LocalFunctionHost(function_app.app) as host:
        print(host.base_url, flush=True)
        sys.stdin.read()


def run(stack: EmulatedStack) -> dict[str, Any]:
    """The curve with the template's worker threads, and beside it the one with the worker's default."""
    result = curve(stack, RANGES["throughput"], threads=TEMPLATE_THREADS)
    default = curve(stack, result.pop("next_index"), threads=None)
    default.pop("next_index")
    return {**result, "default_threads": default}


def curve(stack: EmulatedStack, index: int, threads: str | None) -> dict[str, Any]:
    """One throughput curve; `threads` is PYTHON_THREADPOOL_THREAD_COUNT (None: unset, the worker's default)."""
    environment = stack.environment()
    environment.pop("PYTHON_THREADPOOL_THREAD_COUNT", None)
    if threads is not None:
        environment["PYTHON_THREADPOOL_THREAD_COUNT"] = threads
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.throughput", "serve"],
        env=environment,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()  # the child prints its URL once it listens
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the local host did not start: {url!r}")
        warm = stack.run_child("throughput", "load", url, "4", str(WARM_UP_SECONDS), str(index))
        index = warm["next_index"]
        levels = []
        for concurrency in LEVELS:
            before = stack.counts()
            level = stack.run_child("throughput", "load", url, str(concurrency), str(SECONDS_PER_LEVEL), str(index))
            index = level.pop("next_index")
            level["requests_per_call"] = (stack.counts() - before).per_call(level["calls"])
            levels.append(level)
        return {
            "seconds_per_level": SECONDS_PER_LEVEL,
            "worker_threads": worker_threads(environment),
            "levels": levels,
            "knee": knee(levels),
            "next_index": index,
        }
    finally:
        server.communicate(input="", timeout=START_TIMEOUT_SECONDS)


def knee(levels: list[dict[str, Any]]) -> int:
    """The last concurrency whose throughput beat every lower level's by at least 10%: past it, more
    clients buy queueing, not calls."""
    best, at = 0.0, levels[0]["concurrency"]
    for level in levels:
        if level["calls_per_second"] >= best * 1.10:
            best, at = level["calls_per_second"], level["concurrency"]
    return at


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve()
    else:
        url, concurrency, seconds, first = sys.argv[2:6]
        print(json.dumps(load(url, int(concurrency), float(seconds), int(first))))
