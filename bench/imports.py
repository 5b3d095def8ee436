"""Cold import of the app against the card's dependencies alone and the official Genesys SDK.

Each import runs in a fresh interpreter (nothing cached in memory; the OS file cache is warm for all three
alike), in rotation, and the median is kept. "Dependencies alone" imports every package of requirements.txt
as the app imports it, eagerly, and nothing of ours. The official SDK, `PureCloudPlatformClientV2`, is never
a dependency of this project: it is imported from a throwaway virtual environment when one exists
(`GENESYS_SDK_PYTHON`, default /tmp/purecloud-venv/bin/python) and skipped with a note otherwise.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.stack import ROOT

RUNS = 7
DEPENDENCIES = (
    "azure.functions",
    "azure.identity",
    "azure.keyvault.secrets",
    "azure.data.tables",
    "azure.storage.queue",
    "phonenumbers",
    "phonenumbers.timezone",
    "requests",
    "cryptography.x509",
    "cryptography.hazmat.primitives.asymmetric.rsa",
    "jwt",
    "tzdata",
)
SDK_PYTHON = Path(os.environ.get("GENESYS_SDK_PYTHON", "/tmp/purecloud-venv/bin/python"))
SDK_SETUP = "python -m venv /tmp/purecloud-venv && /tmp/purecloud-venv/bin/pip install PureCloudPlatformClientV2"


def import_seconds(python: Path | str, modules: tuple[str, ...]) -> float:
    """Seconds to import `modules` in a fresh interpreter (timed inside it: interpreter start-up excluded)."""
    code = (
        "import time; t = time.perf_counter()\n"
        + "".join(f"import {m}\n" for m in modules)
        + "print(time.perf_counter() - t)"
    )
    # -E -s: no PYTHON* variables, no user site; -c puts ROOT (the cwd) on the path for `function_app`.
    out = subprocess.run([str(python), "-E", "-s", "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"importing {modules} failed: {out.stderr[-2000:]}")
    return float(out.stdout)


def run() -> dict[str, Any]:
    cases: dict[str, tuple[Path | str, tuple[str, ...]]] = {
        "app": (sys.executable, ("function_app",)),
        "dependencies": (sys.executable, DEPENDENCIES),
    }
    if SDK_PYTHON.exists():
        cases["genesys_sdk"] = (SDK_PYTHON, ("PureCloudPlatformClientV2",))
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(RUNS):
        for name, (python, modules) in cases.items():
            samples[name].append(import_seconds(python, modules))
    result: dict[str, Any] = {
        "runs": RUNS,
        "median_ms": {name: round(statistics.median(s) * 1000, 1) for name, s in samples.items()},
        "dependencies": list(DEPENDENCIES),
    }
    result["app_to_dependencies"] = round(result["median_ms"]["app"] / result["median_ms"]["dependencies"], 3)
    if "genesys_sdk" not in cases:
        result["genesys_sdk_skipped"] = f"{SDK_PYTHON} not found; to include it: {SDK_SETUP}"
    return result
