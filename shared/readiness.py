"""`/api/health/ready`: is this deployment able to place a call, and if not, what to fix.

Each check runs the real path (settings, Key Vault, Genesys token, caller IDs, idempotency store), using the
same caches as calls do, so a ready probe in steady state costs no remote request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.deadline import Deadline
from shared.errors import Problem
from shared.services import Services, services


def _failed(name: str, problem: Problem) -> dict[str, Any]:
    return {
        "name": name,
        "status": "failed",
        "code": problem.code,
        "detail": problem.detail,
        "remediation": problem.hint or problem.entry.hint,
    }


def _check(name: str, probe: Callable[[], str]) -> dict[str, Any]:
    try:
        return {"name": name, "status": "ok", "detail": probe()}
    except Problem as problem:
        return _failed(name, problem)


def _vault(app: Services) -> str:
    if not app.settings.key_vault_url:
        return "not used: the secret comes from GENESYS_CLIENT_SECRET"
    app.secrets.get(app.settings.client_secret_name)
    return f"secret {app.settings.client_secret_name!r} readable"


def _token(app: Services) -> str:
    app.genesys.token(Deadline(app.settings.call_deadline_seconds))
    return "client-credentials token available"


def _caller_ids(app: Services) -> str:
    allowed = app.caller_ids.allowed()
    if not allowed:
        raise Problem(
            "configuration_error",
            "No caller ID is allowed: every call without a queue caller ID would be refused.",
            hint="Set ALLOWED_CALLER_IDS or DEFAULT_CALLER_ID, or CALLER_ID_SOURCE=genesys.",
        )
    return f"{len(allowed)} allowed (CALLER_ID_SOURCE={app.settings.caller_id_source})"


def _store(app: Services) -> str:
    app.idempotency_store.read("ready-probe")
    return "reachable"


def report() -> tuple[int, dict[str, Any]]:
    """200 with every check ok, else 503; each failed check names its remediation."""
    try:
        app = services()
    except Problem as problem:
        checks = [_failed("configuration", problem)]
    else:
        checks = [
            {"name": "configuration", "status": "ok", "detail": "all settings valid"},
            _check("key_vault", lambda: _vault(app)),
            _check("genesys_token", lambda: _token(app)),
            _check("caller_ids", lambda: _caller_ids(app)),
            _check("idempotency_store", lambda: _store(app)),
        ]
    ready = all(check["status"] == "ok" for check in checks)
    return (200 if ready else 503), {"status": "ready" if ready else "not_ready", "checks": checks}
