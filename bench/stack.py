"""The emulated stack for benchmarks: emulators in this process, the app in child processes.

Genesys is remote in production; running the app in its own process keeps the emulators' threads off the
app's interpreter lock, so what a child measures is the app (and the loopback), not the emulator sharing it.
Requests are counted from the emulators' own logs: the Genesys emulator's request log and Azurite's access log.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulators.azure import KeyVaultEmulator, ManagedIdentityEmulator
from emulators.azurite import Azurite
from emulators.genesys import GenesysEmulator
from emulators.stack import CLIENT_ID, CLIENT_SECRET, off_azure, settings_for

ROOT = Path(__file__).resolve().parent.parent
CHILD_TIMEOUT_SECONDS = 600
FLOOR_TABLE = "benchfloor"
# Calling hours off: a benchmark run at night must still dial (every other setting is the demo stack's).
_BENCH_SETTINGS = {"CALLING_HOURS": "off"}
_ACCESS_LINE = re.compile(r'"([A-Z]+) /[^/\s]+/([^\s?(/]*)(\S*) HTTP/[\d.]+" (\d{3})')


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) a process has used so far, from /proc (Linux; 10 ms resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Counts:
    """Requests the emulators logged: Genesys by route, Table Storage by kind (insert, update, read, ...)."""

    genesys: Counter[str]
    table: Counter[str]

    def __sub__(self, before: Counts) -> Counts:
        return Counts(self.genesys - before.genesys, self.table - before.table)

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.genesys + other.genesys, self.table + other.table)

    def per_call(self, calls: int) -> dict[str, Any]:
        table_writes = sum(n for kind, n in self.table.items() if kind in ("insert", "update", "delete"))
        return {
            "genesys_requests": round(sum(self.genesys.values()) / calls, 4),
            "genesys_by_route": {k: round(v / calls, 4) for k, v in sorted(self.genesys.items())},
            "table_requests": round(sum(self.table.values()) / calls, 4),
            "table_writes": round(table_writes / calls, 4),
            "table_by_kind": {k: round(v / calls, 4) for k, v in sorted(self.table.items())},
        }


def table_kind(method: str, resource: str, rest: str) -> str | None:
    """What one Azurite access-log line did to Table Storage; None for blob and queue requests."""
    if resource == "Tables":
        return "create_table" if method == "POST" else "table_admin"
    if rest.startswith("("):  # an entity address: tbl(PartitionKey='a',RowKey='b')
        return {"GET": "read", "DELETE": "delete"}.get(method, "update")
    if method == "POST" and not rest:
        return "insert"
    if method == "GET" and rest.startswith("()"):
        return "read"
    return None


class EmulatedStack:
    """Running emulators, the app settings pointing at them, and request counters."""

    def __init__(
        self, genesys: GenesysEmulator, vault: KeyVaultEmulator, settings: dict[str, str], log: Path, azurite_pid: int
    ) -> None:
        self.genesys = genesys
        self.vault = vault
        self.settings = settings
        self.azurite_pid = azurite_pid
        self._access_log = log

    def counts(self) -> Counts:
        genesys = Counter(r.route for r in self.genesys.requests())
        return Counts(genesys, self._table_counts())

    def _table_counts(self) -> Counter[str]:
        """Parse Azurite's access log once its reader thread has caught up (bounded wait)."""
        previous, deadline = -1, time.monotonic() + 3
        while time.monotonic() < deadline:
            size = self._access_log.stat().st_size if self._access_log.exists() else 0
            if size == previous:
                break
            previous = size
            time.sleep(0.15)
        counts: Counter[str] = Counter()
        if self._access_log.exists():
            for line in self._access_log.read_text().splitlines():
                match = _ACCESS_LINE.search(line)
                kind = match and table_kind(match.group(1), match.group(2), match.group(3))
                if kind:
                    counts[kind] += 1
        return counts

    def environment(self, *, storage: bool = True, **extra: str) -> dict[str, str]:
        """The environment of an app child: these settings, with or without Table Storage."""
        env = {**os.environ, **self.settings, **_BENCH_SETTINGS, **extra}
        off_azure(env)
        if not storage:
            env.pop("AzureWebJobsStorage")
        return env

    def run_child(self, module: str, *args: str, storage: bool = True, **extra: str) -> dict[str, Any]:
        """Run `python -m bench.<module> args` against the stack; its last stdout line is its JSON result."""
        done = subprocess.run(
            [sys.executable, "-m", f"bench.{module}", *args],
            env=self.environment(storage=storage, **extra),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_SECONDS,
        )
        if done.returncode != 0:
            raise RuntimeError(f"bench.{module} {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])


@contextmanager
def emulated_stack() -> Iterator[EmulatedStack]:
    """Genesys, managed identity, HTTPS Key Vault and a fresh in-memory Azurite, all on 127.0.0.1."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-") as directory,
        GenesysEmulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as genesys,
        ManagedIdentityEmulator() as identity,
        KeyVaultEmulator(identity, {"genesys-client-secret": CLIENT_SECRET}) as vault,
    ):
        log = Path(directory) / "azurite-access.log"
        with Azurite(access_log=log) as azurite:
            yield EmulatedStack(genesys, vault, settings_for(genesys, identity, vault, azurite), log, azurite.pid)
