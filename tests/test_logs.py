"""Logs carry the request id, the idempotency key and masked numbers, and never secrets."""

from __future__ import annotations

import logging

import pytest

from emulators.genesys import DEMO_QUEUE_ID
from tests.conftest import LogAudit, Stack


def test_call_logs_are_tagged_and_masked(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="shared")

    response = stack.post("/api/calls", {"to": "+12125550199"}, headers={"Idempotency-Key": "log-check"})

    request_id = response.headers["X-Request-Id"]
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("shared.calls")]
    assert any("Placing call to +1212555**** from +1317555****" in line for line in ours)
    assert all(f"request_id={request_id}" in line and "idempotency_key=log-check" in line for line in ours)


def test_caller_supplied_request_id_is_kept(stack: Stack) -> None:
    response = stack.post("/api/calls/validate", {"to": "+12125550199"}, headers={"X-Request-Id": "flow-7.run-3"})

    assert response.headers["X-Request-Id"] == "flow-7.run-3"
    assert response.json()["requestId"] == "flow-7.run-3"


def test_the_audit_catches_a_planted_leak() -> None:
    audit = LogAudit()
    audit.numbers.update({"+12125550199", "12125550199"})
    audit.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("audit-self-test")
    logger.propagate = False  # the planted leak must not reach the session's own audit
    logger.addHandler(audit)
    try:
        logger.warning("dialing +1212555****")
        assert audit.leaks() == []
        logger.warning("dialing 12125550199 with emulator-client-secret")
        assert sorted(audit.leaks()) == ["121255...", "emulat..."]
    finally:
        logger.removeHandler(audit)


def test_the_app_keeps_the_azure_sdk_at_warning() -> None:
    """In a fresh process, as the worker loads it: the SDK's per-request INFO lines never reach App Insights."""
    import subprocess
    import sys
    from pathlib import Path

    probe = "import logging, function_app; print(logging.getLogger('azure').getEffectiveLevel())"
    root = Path(__file__).resolve().parent.parent
    level = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True, cwd=root
    )

    assert int(level.stdout.strip()) == logging.WARNING


def test_a_value_from_the_request_cannot_forge_a_log_line(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    """A route value arrives percent-decoded: a subscription id holding a line break wrote a second, forged line."""
    caplog.set_level(logging.INFO, logger="shared")

    response = stack.session.delete(
        stack.host.base_url + "/api/subscriptions/x%0AERROR%20shared.calls:%20forged%0D", timeout=30
    )

    assert response.status_code == 200, response.text
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("shared")]
    assert any("was not there" in line for line in ours)
    assert not [line for line in ours if "\n" in line or "\r" in line]


def test_a_number_that_could_not_be_read_is_masked_as_much_as_one_that_could(
    stack: Stack, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mask hid the last four digits of the whole text: a queue's caller ID with an extension, refused for it,
    was logged with every digit of the number."""
    caplog.set_level(logging.INFO, logger="shared")
    monkeypatch.setattr(stack.genesys.org.queues[DEMO_QUEUE_ID], "calling_party_number", "+1 317 555 0105 ext 4321")

    response = stack.post("/api/calls/validate", {"to": "+12125550199", "queueId": DEMO_QUEUE_ID})

    assert response.status_code == 200, response.text
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("shared")]
    assert any("outbound caller ID +1317555****" in line for line in ours), "\n".join(ours)
    assert not [line for line in ours if "13175550105" in line]
