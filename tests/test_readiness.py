"""GET /api/health/ready: every dependency checked, each failure with its remediation."""

from __future__ import annotations

from emulators.azure import VaultFault
from emulators.genesys import Fault
from tests.conftest import Stack


def checks(response) -> dict[str, dict]:
    return {check["name"]: check for check in response.json()["checks"]}


def test_ready_when_everything_works(stack: Stack) -> None:
    response = stack.get("/api/health/ready")

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ready"
    assert {name: c["status"] for name, c in checks(response).items()} == {
        "configuration": "ok",
        "key_vault": "ok",
        "genesys_token": "ok",
        "caller_ids": "ok",
        "idempotency_store": "ok",
    }


def test_steady_state_probe_costs_no_remote_request(stack: Stack) -> None:
    stack.get("/api/health/ready")
    reads, tokens = stack.vault.secret_reads(), len(stack.genesys.requests("token"))

    stack.get("/api/health/ready")

    assert (stack.vault.secret_reads(), len(stack.genesys.requests("token"))) == (reads, tokens)


def test_each_failure_names_its_remediation(stack: Stack) -> None:
    stack.vault.inject(VaultFault(status=403))

    response = stack.get("/api/health/ready")

    assert response.status_code == 503
    vault = checks(response)["key_vault"]
    assert vault["code"] == "key_vault_forbidden"
    assert "Key Vault Secrets User" in vault["remediation"]
    assert len(checks(response)) == 5  # one failure does not hide the other checks


def test_genesys_down_is_reported(stack: Stack) -> None:
    stack.genesys.inject("token", *[Fault(status=503)] * 3)

    response = stack.get("/api/health/ready")

    assert response.status_code == 503
    assert checks(response)["genesys_token"]["code"] == "genesys_unavailable"


def test_bad_configuration_is_reported(stack: Stack, configure) -> None:
    configure(CALLER_ID_SOURCE="sometimes")

    response = stack.get("/api/health/ready")

    assert response.status_code == 503
    assert checks(response)["configuration"]["code"] == "configuration_error"
    assert "CALLER_ID_SOURCE" in checks(response)["configuration"]["detail"]
