"""Calls per second and latency against concurrency, through the local host over real HTTP.

Three processes, as in production where Genesys and storage are elsewhere: the emulators (this process and
Azurite), the app behind the local host (`serve`, with the 32 worker threads the azd template sets), and the
load generator (`load`: one keep-alive connection per concurrent client on one asyncio loop, the request
written as bytes and the answer read by its Content-Length). The generator shares the cores with what it
measures, so it is kept lean: a thread and a `requests` session per client cost several times its CPU per
call. Each level shows the CPU time per call of the app's process, Azurite, this process (the other emulators)
and the generator, read from /proc around each sample, and how many cores the app's process and all four kept
busy: where the time goes, and which process saturates first (one interpreter lock lets the app's process use
about one core). Requests per call come from the emulators' logs over exactly the measured samples.

The levels are measured in rounds (1, 2, 4, ... 64, then 64 down to 1, `ROUNDS` times in all) and each
level's figure is the median of its rounds: on a shared 2-core machine one sample of a few seconds varies by
several percent (a round now and then by far more), and drift over the run or within a round (Azurite's
tables grow by thousands of rows a round) would otherwise land on the same levels every time.

    python -m bench.throughput serve        (children of `python -m bench`)
    python -m bench.throughput load URL     (then one "CONCURRENCY SECONDS FIRST_INDEX" line per sample)
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any
from urllib.parse import SplitResult, urlsplit

from bench.calls import RANGES, call_body
from bench.stack import ROOT, Counts, EmulatedStack, cpu_seconds
from bench.stats import Summary
from emulators.local_host import worker_threads

LEVELS = (1, 2, 4, 8, 16, 32, 64)
PROCESSES = ("app", "Azurite", "emulators", "load generator")  # whose CPU time each level shows
TEMPLATE_THREADS = "32"  # infra/app/api.bicep: PYTHON_THREADPOOL_THREAD_COUNT
ROUNDS = 5  # medians of 3 still swung a level 10% between runs of the same code
SECONDS_PER_SAMPLE = 2.0
# A fresh app process and its emulators run slow for a while (one run's first 20 s at up to a third below the rest,
# where a fixed 4 s warm-up had ended): warm up in samples until two in a row agree, within a bound.
WARM_UP_SECONDS = 2.0
WARM_UP_SETTLED = 0.05  # two consecutive warm-up samples within 5% of each other
WARM_UP_MAX_SAMPLES = 15
WARM_UP_CLIENTS = 4
START_TIMEOUT_SECONDS = 60
_REQUEST = (
    "POST /api/calls HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
)


def load(url: str, concurrency: int, seconds: float, first_index: int) -> dict[str, Any]:
    """`concurrency` clients posting distinct calls back to back for `seconds`."""
    return asyncio.run(_load(urlsplit(url), concurrency, seconds, itertools.count(first_index)))


async def _load(url: SplitResult, concurrency: int, seconds: float, indexes: Iterator[int]) -> dict[str, Any]:
    latencies: list[float] = []
    failures: list[int] = []
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        try:
            while time.perf_counter() < deadline:
                body = call_body(next(indexes))
                started = time.perf_counter()
                writer.write(_REQUEST.format(host=url.netloc, length=len(body)).encode() + body)
                status = await _answer_status(reader)
                latencies.append(time.perf_counter() - started)
                if status != 201:
                    failures.append(status)
        finally:
            writer.close()
            await writer.wait_closed()

    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(client() for _ in range(concurrency))), seconds + 60)
    return {
        "calls": len(latencies),
        "failures": len(failures),
        "seconds": time.perf_counter() - started,
        "latencies": latencies,
        "next_index": next(indexes),
    }


async def _answer_status(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 answer of the local host (it always sends Content-Length); its status code."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status_line, *header_lines = head.split("\r\n")
    length = next(int(v) for n, _, v in (h.partition(":") for h in header_lines) if n.lower() == "content-length")
    await reader.readexactly(length)
    return int(status_line.split()[1])


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
def child(*args: str, environment: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """`python -m bench.throughput ARGS`, talking over its stdin and stdout; it ends when its stdin closes."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.throughput", *args],
        env=environment,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        try:
            process.communicate(input="", timeout=START_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def pipes(process: subprocess.Popen[str]) -> tuple[IO[str], IO[str]]:
    """A child's stdin and stdout (`child` always opens both)."""
    assert process.stdin is not None and process.stdout is not None
    return process.stdin, process.stdout


class LoadGenerator:
    """The load child: one sample at a time, numbering calls on from where the last sample stopped."""

    def __init__(self, process: subprocess.Popen[str], first_index: int) -> None:
        self.pid = process.pid
        self._to, self._from = pipes(process)
        self.next_index = first_index

    def sample(self, concurrency: int, seconds: float) -> dict[str, Any]:
        self._to.write(f"{concurrency} {seconds} {self.next_index}\n")
        self._to.flush()
        answer = self._from.readline()
        if not answer:
            raise RuntimeError("the load generator stopped (its traceback is above)")
        result: dict[str, Any] = json.loads(answer)
        self.next_index = result.pop("next_index")
        return result


def sample_with_cpu(generator: LoadGenerator, concurrency: int, processes: dict[str, int]) -> dict[str, Any]:
    """One sample, with the CPU each process used per call while it ran and how many cores were busy, over the
    same window: from before the sample is asked for until its answer is read."""
    before, started = {name: cpu_seconds(pid) for name, pid in processes.items()}, time.perf_counter()
    sample = generator.sample(concurrency, SECONDS_PER_SAMPLE)
    used = {name: cpu_seconds(pid) - before[name] for name, pid in processes.items()}
    window = time.perf_counter() - started
    sample["cpu_ms_per_call"] = {name: seconds * 1000 / max(1, sample["calls"]) for name, seconds in used.items()}
    sample["cores_busy"] = {"app": used["app"] / window, "all": sum(used.values()) / window}
    return sample


def run(stack: EmulatedStack) -> dict[str, Any]:
    """The curve with the template's worker threads."""
    environment = {**stack.environment(), "PYTHON_THREADPOOL_THREAD_COUNT": TEMPLATE_THREADS}
    with child("serve", environment=environment) as server:
        url = pipes(server)[1].readline().strip()  # the child prints its URL once it listens
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the local host did not start: {url!r}")
        with child("load", url, environment=stack.environment()) as loader:
            generator = LoadGenerator(loader, RANGES["throughput"])
            pids = (server.pid, stack.azurite_pid, os.getpid(), generator.pid)
            processes = dict(zip(PROCESSES, pids, strict=True))
            warm_up_rates = warm_up(generator)
            samples: dict[int, list[dict[str, Any]]] = {level: [] for level in LEVELS}
            counts: dict[int, Counts] = {}
            before = stack.counts()  # each sample's count ends where the next one's starts: the log is read once
            for round_number in range(ROUNDS):
                for concurrency in LEVELS if round_number % 2 == 0 else reversed(LEVELS):
                    samples[concurrency].append(sample_with_cpu(generator, concurrency, processes))
                    after = stack.counts()
                    added, before = after - before, after
                    counts[concurrency] = counts[concurrency] + added if concurrency in counts else added
    levels = [summarize(concurrency, samples[concurrency], counts[concurrency]) for concurrency in LEVELS]
    return {
        "rounds": ROUNDS,
        "seconds_per_sample": SECONDS_PER_SAMPLE,
        "worker_threads": worker_threads(environment),
        "warm_up": {
            "clients": WARM_UP_CLIENTS,
            "seconds_per_sample": WARM_UP_SECONDS,
            "settled_within": WARM_UP_SETTLED,
            "calls_per_second": warm_up_rates,
        },
        "levels": levels,
        "knee": knee(levels),
    }


def warm_up(generator: LoadGenerator) -> list[float]:
    """Samples until the rate settles (two in a row within `WARM_UP_SETTLED`), at most `WARM_UP_MAX_SAMPLES`;
    their rates, for the record."""
    rates: list[float] = []
    while len(rates) < WARM_UP_MAX_SAMPLES:
        sample = generator.sample(WARM_UP_CLIENTS, WARM_UP_SECONDS)
        rates.append(round(sample["calls"] / sample["seconds"], 1))
        if len(rates) >= 2 and abs(rates[-1] - rates[-2]) <= WARM_UP_SETTLED * rates[-2]:
            break
    return rates


def summarize(concurrency: int, samples: list[dict[str, Any]], counts: Counts) -> dict[str, Any]:
    """A level's figure is the median of its rounds' rates, and each CPU figure the median of its own (figure by
    figure, so one row's figures may come from different rounds); latency and requests per call pool every
    round."""
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
        "cpu_ms_per_call": _medians([sample["cpu_ms_per_call"] for sample in samples]),
        "cores_busy": _medians([sample["cores_busy"] for sample in samples]),
    }


def _medians(figures: list[dict[str, float]]) -> dict[str, float]:
    return {name: round(statistics.median(figure[name] for figure in figures), 2) for name in figures[0]}


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
