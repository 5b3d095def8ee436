"""The first call after a cold start, broken down, in fresh processes.

A child imports the app (a cold worker's import), indexes its functions (as the host does at load), then
places one call and one more. Every HTTP exchange of the first call is timed at the `requests` adapter, which
both the app's Genesys client and the Azure SDKs send through, and named by where it went; what is left of the
first call is in-process work (lazy SDK imports, client setup, the app's own code). Each run gets tables of its
own, so creating the idempotency table is part of its first call, as on a new deployment; its do-not-call table
is made beforehand, as an operator makes one (a table a setting names must exist).

    python -m bench.cold_start child     (a child of `python -m bench`: needs the stack's settings)
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the child imports nothing before it times the app's import
    from bench.stack import EmulatedStack

RUNS = 5
PARTS = (
    "import",
    "function_indexing",
    "managed_identity_token",
    "key_vault_read",
    "genesys_token",
    "caller_id_list",
    "table_creation",
    "table_requests",
    "genesys_create",
    "in_process",
)


def _origin(url: str) -> str:
    return "/".join(url.split("/", 3)[:3])


def _part(method: str, url: str) -> str:
    """Which part of the first call one HTTP exchange was."""
    genesys = os.environ["GENESYS_API_BASE_URL"]
    table = next(p.split("=", 1)[1] for p in os.environ["AzureWebJobsStorage"].split(";") if p.startswith("Table"))
    if url.startswith(_origin(os.environ["IDENTITY_ENDPOINT"])):
        return "managed_identity_token"
    if url.startswith(_origin(os.environ["KEY_VAULT_URL"])):
        return "key_vault_read"
    if url.startswith(f"{genesys}/oauth/token"):
        return "genesys_token"
    if url.startswith(f"{genesys}/api/v2/telephony/providers/edges/dids"):
        return "caller_id_list"
    if url.startswith(genesys):
        return "genesys_create"
    if url.startswith(f"{table}/Tables") and method == "POST":
        return "table_creation"
    if url.startswith(_origin(table)):
        return "table_requests"
    return "other_http"


def child() -> dict[str, Any]:
    started = time.perf_counter()
    import function_app  # noqa: F401  (the import is what is timed)

    parts: dict[str, float] = {"import": time.perf_counter() - started}
    exchanges: list[tuple[str, float]] = []

    from requests.adapters import HTTPAdapter

    send = HTTPAdapter.send

    def timed_send(adapter: HTTPAdapter, request: Any, *args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return send(adapter, request, *args, **kwargs)
        finally:
            exchanges.append((_part(request.method, request.url), time.perf_counter() - began))

    HTTPAdapter.send = timed_send  # type: ignore[assignment]
    from bench.calls import RANGES, InProcessApp

    began = time.perf_counter()
    app = InProcessApp()
    parts["function_indexing"] = time.perf_counter() - began
    index = RANGES["cold_start"] + 2 * int(os.environ["BENCH_RUN"])
    began = time.perf_counter()
    app.call(index)
    first = time.perf_counter() - began
    first_exchanges = list(exchanges)
    for part, seconds in first_exchanges:
        parts[part] = parts.get(part, 0.0) + seconds
    parts["in_process"] = first - sum(seconds for _, seconds in first_exchanges)
    began = time.perf_counter()
    app.call(index + 1)
    second = time.perf_counter() - began
    return {
        "parts_ms": {k: round(v * 1000, 2) for k, v in parts.items()},
        "first_call_ms": round(first * 1000, 2),
        "second_call_ms": round(second * 1000, 2),
        "exchanges": [part for part, _ in first_exchanges],
    }


def run(stack: EmulatedStack) -> dict[str, Any]:
    """Median of each part over fresh processes."""
    from shared.storage import StorageAccount

    account = StorageAccount(connection_string=stack.environment()["AzureWebJobsStorage"])
    runs = []
    for n in range(RUNS):
        account.table(f"colddonotcall{n}").create_table()
        runs.append(
            stack.run_child(
                "cold_start",
                "child",
                BENCH_RUN=str(n),
                IDEMPOTENCY_TABLE=f"coldidempotency{n}",
                DO_NOT_CALL_TABLE=f"colddonotcall{n}",
            )
        )
    names = [p for p in PARTS if any(p in r["parts_ms"] for r in runs)]
    names += sorted({p for r in runs for p in r["parts_ms"]} - set(names))
    return {
        "runs": RUNS,
        "parts_ms": {p: round(statistics.median(r["parts_ms"].get(p, 0.0) for r in runs), 2) for p in names},
        "first_call_ms": statistics.median(r["first_call_ms"] for r in runs),
        "second_call_ms": statistics.median(r["second_call_ms"] for r in runs),
        "first_call_exchanges": runs[0]["exchanges"],
    }


if __name__ == "__main__" and sys.argv[1:] == ["child"]:
    import json

    print(json.dumps(child()))
