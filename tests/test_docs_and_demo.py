"""The error catalog, its documentation and the design agree; the README's local run works."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from shared.call_status import OUTCOME_CODES
from shared.errors import CATALOG

ROOT = Path(__file__).resolve().parent.parent
DESIGN = ROOT.parent / "shared" / "design.md"


def test_every_catalog_code_is_documented_with_its_status() -> None:
    docs = (ROOT / "docs" / "errors.md").read_text()

    for code, entry in CATALOG.items():
        assert f"### `{code}`" in docs, code
        assert re.search(rf"\| `{code}` \| {entry.status} \|", docs), f"{code} row with status {entry.status}"


def test_every_code_the_design_requires_is_in_the_catalog() -> None:
    if not DESIGN.exists():  # the design lives beside the repository, not in it
        return
    section = DESIGN.read_text().split("Catalog codes that must exist", 1)[1].split("Client faults", 1)[0]
    required = set(re.findall(r"`([a-z_]+)`", section))

    assert len(required) >= 27
    assert required <= set(CATALOG)


def test_client_faults_are_4xx_and_upstream_faults_are_not() -> None:
    for code, entry in CATALOG.items():
        if code in OUTCOME_CODES:  # call outcomes inside a 200 status document, not HTTP answers
            continue
        if entry.retryable:
            assert entry.status in (409, 429, 500, 503, 504), code
        if code.startswith("genesys_") and code not in ("genesys_not_found", "genesys_no_station"):
            assert entry.status >= 422, code


def test_local_run_places_a_demo_call_and_shows_a_rejection() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "emulators.stack", "--port", "0", "--exit-after-demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )

    assert finished.returncode == 0, finished.stdout + finished.stderr
    out = finished.stdout
    assert "== Sent to Genesys: POST /api/v2/conversations/calls/user/" in out
    assert '"phoneNumber": "+12125550199"' in out
    assert re.search(r"Conversation id: [0-9a-f-]{36}", out)
    assert '"code": "caller_id_not_allowed"' in out
    assert "Demo succeeded." in out
    assert "emulator-client-secret" not in out + finished.stderr
    assert "2125550199" not in finished.stderr  # logs mask numbers
