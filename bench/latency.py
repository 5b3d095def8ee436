"""Cold start and per-call overhead of the function app, against the local emulated stack.

Measures (1) importing `function_app` in a fresh interpreter, as a cold worker does, and (2) the latency of
`POST /api/calls` through the local host: the first call (secret, token and DID list loaded) and steady-state
calls (one Genesys request each). The emulators answer in about a millisecond, so the figures are our own
overhead, not Genesys's.

    .venv/bin/python -m bench.latency [--calls 200]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import requests

from emulators.local_host import LocalFunctionHost
from emulators.stack import emulated_stack


def cold_import_seconds(runs: int = 5) -> list[float]:
    code = "import time; t = time.perf_counter(); import function_app; print(time.perf_counter() - t)"
    return [float(subprocess.check_output([sys.executable, "-c", code], text=True)) for _ in range(runs)]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()

    imports = cold_import_seconds()
    print(f"cold import of function_app: median {statistics.median(imports) * 1000:.0f} ms over {len(imports)} runs")

    with emulated_stack() as (genesys, vault):
        import function_app

        with LocalFunctionHost(function_app.app) as host, requests.Session() as session:
            url = f"{host.base_url}/api/calls"
            started = time.perf_counter()
            first = session.post(url, json={"to": "+12125550100"}, timeout=30)
            first_ms = (time.perf_counter() - started) * 1000
            assert first.status_code == 201, first.text

            latencies = []
            for i in range(args.calls):
                started = time.perf_counter()
                answer = session.post(url, json={"to": f"+1212555{2000 + i:04d}"}, timeout=30)
                latencies.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 201, answer.text
            creates = len(genesys.requests("create_call"))
            tokens = len(genesys.requests("token"))

    print(f"first call (vault read, token, DID list, table created): {first_ms:.0f} ms")
    print(
        f"steady state over {args.calls} calls: p50 {percentile(latencies, 0.5):.1f} ms, "
        f"p95 {percentile(latencies, 0.95):.1f} ms, max {max(latencies):.1f} ms"
    )
    print(f"Genesys requests: {creates} creates, {tokens} token; Key Vault reads: {vault.secret_reads()}")


if __name__ == "__main__":
    main()
