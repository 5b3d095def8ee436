"""Calls per second and latency against concurrency, through the local host over real HTTP.

Three processes, as in production where Genesys and storage are elsewhere: the emulators (this process and
Azurite), the app behind the local host (`serve`), and the load generator (`load`, one thread and one
keep-alive connection per concurrent client). Requests per call come from the emulators' logs over exactly
the measured samples.

The levels are measured in rounds (1, 2, 4, ... 64, then again, `ROUNDS` times) and each level's figure is
the median of its rounds: on a shared 2-core machine one sample of a few seconds varies by about 10%, and
drift over the run (Azurite's tables grow by thousands of rows) would otherwise land on the higher levels.

Two curves: the app with the worker's thread pool as the azd template sets it (PYTHON_THREADPOOL_THREAD_COUNT
32), which the target is judged on, and with the worker's default, min(32, cores + 4), for comparison: the
threads share one interpreter lock, so on few cores their number shapes the curve past the knee.

    python -m bench.throughput serve        (children of `python -m bench`)
    python -m bench.throughput load URL     (then one "CONCURRENCY SECONDS FIRST_INDEX" line per sample)
"""

from __future__ import annotations

import itertools
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import requests

from bench.calls import RANGES, call_body
from bench.stack import ROOT, Counts, EmulatedStack
from bench.stats import Summary
from emulators.local_host import worker_threads

LEVELS = (1, 2, 4, 8, 16, 32, 64)
TEMPLATE_THREADS = "32"  # infra/app/api.bicep: PYTHON_THREADPOOL_THREAD_COUNT
ROUNDS = 3
SECONDS_PER_SAMPLE = 2.0
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
        "calls": len(latencies),
        "failures": len(failures),
        "seconds": elapsed,
        "latencies": latencies,
        "next_index": next(indexes),
    }


def serve_load(url: str) -> None:
    """Run one sample per line of stdin ("CONCURRENCY SECONDS FIRST_INDEX"), answering a JSON line each."""
    for line in sys.stdin:
        concurrency, seconds, first = line.split()
        print(json.dumps(load(url, int(concurrency), float(seconds), int(first))), flush=True)


def serve() -> None:
    """Serve the app until the parent closes our stdin (so it stops with the parent, whatever happens)."""
    import function_app
    from emulators.local_host import LocalFunctionHost

    with LocalFunctionHost(function_app.app) as host:
        print(host.base_url, flush=True)
        sys.stdin.read()


@contextmanager
def child(*args: str, environment: dict[str, str]) -> Iterator[tuple[IO[str], IO[str]]]:
    """`python -m bench.throughput ARGS`, talking over its stdin and stdout; it ends when its stdin closes."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.throughput", *args],
        env=environment,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        yield process.stdin, process.stdout
    finally:
        process.communicate(input="", timeout=START_TIMEOUT_SECONDS)


class LoadGenerator:
    """The load child: one sample at a time, numbering calls on from where the last sample stopped."""

    def __init__(self, pipes: tuple[IO[str], IO[str]], first_index: int) -> None:
        self._to, self._from = pipes
        self.next_index = first_index

    def sample(self, concurrency: int, seconds: float) -> dict[str, Any]:
        self._to.write(f"{concurrency} {seconds} {self.next_index}\n")
        self._to.flush()
        result: dict[str, Any] = json.loads(self._from.readline())
        self.next_index = result.pop("next_index")
        return result


def run(stack: EmulatedStack) -> dict[str, Any]:
    """The curve with the template's worker threads, and beside it the one with the worker's default."""
    result = curve(stack, RANGES["throughput"], threads=TEMPLATE_THREADS)
    default = curve(stack, result.pop("next_index"), threads=None)
    default.pop("next_index")
    return {**result, "default_threads": default}


def curve(stack: EmulatedStack, first_index: int, threads: str | None) -> dict[str, Any]:
    """One throughput curve; `threads` is PYTHON_THREADPOOL_THREAD_COUNT (None: unset, the worker's default)."""
    environment = stack.environment()
    environment.pop("PYTHON_THREADPOOL_THREAD_COUNT", None)
    if threads is not None:
        environment["PYTHON_THREADPOOL_THREAD_COUNT"] = threads
    with child("serve", environment=environment) as (_, server_out):
        url = server_out.readline().strip()  # the child prints its URL once it listens
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the local host did not start: {url!r}")
        with child("load", url, environment=stack.environment()) as pipes:
            generator = LoadGenerator(pipes, first_index)
            generator.sample(4, WARM_UP_SECONDS)
            samples: dict[int, list[dict[str, Any]]] = {level: [] for level in LEVELS}
            counts: dict[int, Counts] = {}
            for _round in range(ROUNDS):
                for concurrency in LEVELS:
                    before = stack.counts()
                    samples[concurrency].append(generator.sample(concurrency, SECONDS_PER_SAMPLE))
                    added = stack.counts() - before
                    counts[concurrency] = counts[concurrency] + added if concurrency in counts else added
    levels = [summarize(concurrency, samples[concurrency], counts[concurrency]) for concurrency in LEVELS]
    return {
        "rounds": ROUNDS,
        "seconds_per_sample": SECONDS_PER_SAMPLE,
        "worker_threads": worker_threads(environment),
        "levels": levels,
        "knee": knee(levels),
        "next_index": generator.next_index,
    }


def summarize(concurrency: int, samples: list[dict[str, Any]], counts: Counts) -> dict[str, Any]:
    """A level's figure is the median of its rounds' rates; latency and requests per call pool every round."""
    calls = sum(sample["calls"] for sample in samples)
    rates = [sample["calls"] / sample["seconds"] for sample in samples]
    return {
        "concurrency": concurrency,
        "calls": calls,
        "failures": sum(sample["failures"] for sample in samples),
        "calls_per_second": round(statistics.median(rates), 1),
        "rounds_calls_per_second": [round(rate, 1) for rate in rates],
        "latency_ms": Summary.of([s for sample in samples for s in sample["latencies"]]).to_json(),
        "requests_per_call": counts.per_call(calls),
    }


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
        serve_load(sys.argv[2])
