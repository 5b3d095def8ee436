"""`/api/health/ready`: is this deployment able to place a call, and if not, what to fix.

Each check runs the real path (settings, Key Vault, Genesys token, call user, caller IDs, webhook secret,
SNS and Pub/Sub senders, idempotency store), using the same caches as calls do, so a ready probe in steady
state costs no remote request.
A check that does not apply to this deployment is `skipped`, which does not make it unready.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.config import Settings
from shared.deadline import Deadline
from shared.errors import Problem
from shared.logs import get_logger
from shared.services import WEBHOOK_REMEDIATION, Services, services, status_callback_secret

log = get_logger(__name__)
READY_TOKEN_SECONDS = 10.0  # a probe waits no longer for Genesys's token than this
NOT_READY_RETRY_AFTER_SECONDS = 30  # a probe or operator asking again sooner finds the same fault


@dataclass(frozen=True)
class Skipped:
    """A check that does not apply to this deployment, and why."""

    detail: str


# The catalog's hints for outages tell a caller when to send its request again; a probe's reader is an operator
_OPERATOR_REMEDIATIONS = {
    "idempotency_store_unavailable": "Check that the storage account answers the app: AzureWebJobsStorage (or its "
    "__tableServiceUri and __queueServiceUri), the account's firewall, private endpoints and private DNS zones, and "
    "the storage service's health in the region.",
    "genesys_unavailable": "Check Genesys Cloud's status for the org's region (GENESYS_REGION or the base URLs) and "
    "the app's outbound network (a proxy, a firewall, DNS).",
    "genesys_timeout": "Genesys Cloud did not answer in time: check its status for the org's region (GENESYS_REGION) "
    "and the app's outbound network (a proxy, a firewall, DNS).",
    "genesys_rate_limited": "The OAuth client is at its Genesys rate limit: the calls share it; look for a burst or "
    "another integration using the same client (GENESYS_CLIENT_ID).",
    "internal_error": "Read the app's log line 'Readiness check ... failed unexpectedly' at this time, and report it.",
}


def _failed(name: str, problem: Problem) -> dict[str, Any]:
    return {
        "name": name,
        "status": "failed",
        "code": problem.code,
        "detail": problem.detail,
        "remediation": problem.hint or _OPERATOR_REMEDIATIONS.get(problem.code) or problem.entry.hint,
    }


def _check(name: str, probe: Callable[[], str | Skipped]) -> dict[str, Any]:
    try:
        result = probe()
    except Problem as problem:
        return _failed(name, problem)
    except Exception as error:  # noqa: BLE001 - one check's surprise must not hide the others' results
        log.error("Readiness check %s failed unexpectedly: %s", name, type(error).__name__)  # no message: secrets
        return _failed(name, Problem("internal_error", f"The check failed unexpectedly ({type(error).__name__})."))
    if isinstance(result, Skipped):
        return {"name": name, "status": "skipped", "detail": result.detail}
    return {"name": name, "status": "ok", "detail": result}


def _unless(blocked: bool, blocker: str, name: str, probe: Callable[[], str | Skipped]) -> dict[str, Any]:
    """The check, unless what it needs failed above: trying again would only wait out the same fault (a vault or
    Genesys that hangs held the probe a minute and more, each check waiting its own timeouts)."""
    if blocked:
        return {"name": name, "status": "skipped", "detail": f"not checked: it needs {blocker}, which failed"}
    return _check(name, probe)


def _vault(app: Services) -> str:
    if not app.settings.key_vault_url:
        return "not used: the secret comes from GENESYS_CLIENT_SECRET"
    app.secrets.get(app.settings.client_secret_name)
    return f"secret {app.settings.client_secret_name!r} readable"


def _token(app: Services) -> str:
    app.genesys.token(Deadline(min(app.settings.call_deadline_seconds, READY_TOKEN_SECONDS)))
    return "client-credentials token available"


def _no_active_user(why: str) -> Problem:
    return Problem(
        "configuration_error",
        f"Setting GENESYS_CALL_USER_ID names no active user of the organization ({why}).",
        hint="Set GENESYS_CALL_USER_ID to the id of an active Genesys user with a station.",
    )


def _call_user(app: Services) -> str | Skipped:
    if app.call_user_state is None:
        nothing: frozenset[str] = frozenset()  # None is "*": any user or queue
        if app.settings.allowed_user_ids == nothing and app.settings.allowed_queue_ids == nothing:
            raise Problem(
                "configuration_error",
                "No call can be placed: GENESYS_CALL_USER_ID is not set, and ALLOWED_USER_IDS and "
                "ALLOWED_QUEUE_IDS allow no user and no queue.",
                hint="Set GENESYS_CALL_USER_ID (the user calls are placed for), or ALLOWED_USER_IDS or "
                "ALLOWED_QUEUE_IDS.",
            )
        return Skipped("GENESYS_CALL_USER_ID is not set: every call request must name its userId")
    try:
        found = app.call_user_state.get()
    except Problem as problem:
        if problem.code == "genesys_not_found":
            raise _no_active_user("Genesys has no such user") from None
        raise
    if found != "active":
        raise _no_active_user(f"the user is {str(found)[:20]}")
    return "GENESYS_CALL_USER_ID is an active user"


def _webhook_secret(app: Services) -> str | Skipped:
    """Readable when the webhook route is in use: WEBHOOK_SECRET, WEBHOOK_SECRET_NAME, or the default secret."""
    settings = app.settings
    if settings.webhook_secrets:
        return "WEBHOOK_SECRET is set"
    not_configured = Skipped(
        "/api/webhooks/calls is not configured (no WEBHOOK_SECRET, WEBHOOK_SECRET_NAME or Key Vault "
        "webhook-secret): it refuses every delivery"
    )
    name = settings.webhook_secret_name
    if not settings.key_vault_url:
        if not settings.webhook_secret_name_set:
            return not_configured
        raise Problem(
            "configuration_error",
            "Setting WEBHOOK_SECRET_NAME names a Key Vault secret, but KEY_VAULT_URL is not set.",
            hint=WEBHOOK_REMEDIATION,
        )
    try:
        value = app.secrets.get(name) if settings.webhook_secret_name_set else app.secrets.get_optional(name)
    except Problem as problem:
        if problem.code in ("secret_not_found", "configuration_error"):
            problem.hint = WEBHOOK_REMEDIATION
        raise
    if value is None:
        return not_configured
    return f"Key Vault secret {name!r} readable"


def _status_callback_secret(app: Services) -> str | Skipped:
    """Readable when set apart from the webhook secret (STATUS_CALLBACK_SECRET or STATUS_CALLBACK_SECRET_NAME);
    else, when callbacks may be asked for, the webhook secret they are signed with."""
    settings = app.settings
    if settings.status_callback_secret:
        return "STATUS_CALLBACK_SECRET is set"
    if settings.status_callback_secret_name:
        status_callback_secret(settings, app.secrets)
        return f"Key Vault secret {settings.status_callback_secret_name!r} readable"
    if not settings.status_callback_allowed_hosts:
        if settings.allow_loopback_callbacks:  # a local run's, not a deployment's: not checked
            return Skipped(
                "status callbacks go only to plain-HTTP loopback URLs (GENESYS_ALLOW_INSECURE_HTTP, off Azure): "
                "STATUS_CALLBACK_ALLOWED_HOSTS is not set"
            )
        return Skipped("status callbacks are off: STATUS_CALLBACK_ALLOWED_HOSTS is not set")
    app.status_watcher.check_signing()  # every statusCallbackUrl is refused without it
    return "status callbacks are signed with the webhook secret (no STATUS_CALLBACK_SECRET(_NAME)), readable"


def _callback_signing_reads_the_vault(settings: Settings) -> bool:
    """Whether the status_callback_secret check reads Key Vault."""
    if settings.status_callback_secret or not settings.key_vault_url:
        return False
    return settings.status_callback_secret_name is not None or (
        bool(settings.status_callback_allowed_hosts) and not settings.webhook_secrets
    )


def _sns(app: Services) -> str | Skipped:
    """AWS SNS is configured by the topics it may deliver."""
    topics = app.settings.sns_topic_arns
    if not topics:
        return Skipped("SNS_TOPIC_ARNS is not set: /api/webhooks/sns refuses every message")
    return f"{len(topics)} SNS topic(s) trusted by /api/webhooks/sns"


def _pubsub(app: Services) -> str | Skipped:
    """Google Pub/Sub push needs both the audience and the service accounts; one without the other is a mistake."""
    audience, accounts = app.settings.pubsub_audience, app.settings.pubsub_service_accounts
    if not audience and not accounts:
        return Skipped(
            "PUBSUB_AUDIENCE and PUBSUB_SERVICE_ACCOUNTS are not set: /api/webhooks/pubsub refuses every push"
        )
    if not audience or not accounts:
        given, missing = (
            ("PUBSUB_SERVICE_ACCOUNTS", "PUBSUB_AUDIENCE")
            if accounts
            else ("PUBSUB_AUDIENCE", "PUBSUB_SERVICE_ACCOUNTS")
        )
        raise Problem(
            "configuration_error",
            f"Setting {missing} is required with {given}: /api/webhooks/pubsub refuses every push.",
            hint="Set PUBSUB_AUDIENCE to the subscription's push-auth-token-audience and PUBSUB_SERVICE_ACCOUNTS "
            "to its push-auth-service-account (docs/webhooks.md).",
        )
    return f"pushes for PUBSUB_AUDIENCE from {len(accounts)} service account(s) trusted by /api/webhooks/pubsub"


def _caller_ids(app: Services) -> str:
    allowed = app.caller_ids.allowed()
    if not allowed:
        raise Problem(
            "configuration_error",
            "No caller ID is allowed: every call without a queue caller ID would be refused.",
            hint="Set ALLOWED_CALLER_IDS or DEFAULT_CALLER_ID, or CALLER_ID_SOURCE=genesys.",
        )
    app.caller_ids.default()  # every call without `from` would use it: refused there, refused here
    return f"{len(allowed)} allowed (CALLER_ID_SOURCE={app.settings.caller_id_source})"


def _store(app: Services) -> str:
    storage = app.settings.storage
    if storage is None:  # only off App Service (see the setting)
        if app.settings.in_azure:  # Linux Consumption, or a dev container: calls are placed, never twice only here
            raise Problem(
                "configuration_error",
                "Duplicate protection is in memory: it covers this instance only, and Azure runs several.",
                hint="Set AzureWebJobsStorage (a connection string, __accountName, or __tableServiceUri and "
                "__queueServiceUri with the identity).",
            )
        return "in memory: duplicate protection covers this instance only (set AzureWebJobsStorage)"
    app.idempotency_store.read("ready-probe")
    app.do_not_call.check_reachable()  # every call reads it too: a table the identity cannot read refuses them all
    return f"Table Storage reachable (the idempotency and do-not-call tables), connected by {storage.mode}"


def _queues(app: Services) -> str | Skipped:
    """Asynchronous requests and status callbacks each send to a queue of the same storage account."""
    if not app.queues:
        return Skipped("AzureWebJobsStorage is not set: asynchronous requests and status callbacks are refused")
    for queue in app.queues:
        queue.check_reachable()
    return f"the {' and '.join(queue.name for queue in app.queues)} queues answer"


def report() -> tuple[int, dict[str, Any], dict[str, str]]:
    """200 with every check ok, else 503 with `Retry-After` (as every 503 here); each failed check names its
    remediation. Status, body and headers."""
    try:
        app = services()
    except Problem as problem:
        checks = [_failed("configuration", problem)]
    else:
        settings = app.settings
        vault = _check("key_vault", lambda: _vault(app))
        vault_failed = vault["status"] == "failed"
        token = _unless(vault_failed, "key_vault", "genesys_token", lambda: _token(app))
        genesys_failed = vault_failed or token["status"] == "failed"
        genesys_blocker = "key_vault" if vault_failed else "genesys_token"  # the failure itself, not a skip
        checks = [
            {"name": "configuration", "status": "ok", "detail": "all settings valid"},
            vault,
            token,
            _unless(
                genesys_failed and settings.call_user_id is not None,
                genesys_blocker,
                "call_user",
                lambda: _call_user(app),
            ),
            _unless(
                genesys_failed and settings.uses_genesys_caller_ids,
                genesys_blocker,
                "caller_ids",
                lambda: _caller_ids(app),
            ),
            _unless(
                vault_failed and not settings.webhook_secrets,
                "key_vault",
                "webhook_secret",
                lambda: _webhook_secret(app),
            ),
            _unless(
                vault_failed and _callback_signing_reads_the_vault(settings),
                "key_vault",
                "status_callback_secret",
                lambda: _status_callback_secret(app),
            ),
            _check("sns", lambda: _sns(app)),
            _check("pubsub", lambda: _pubsub(app)),
            _check("idempotency_store", lambda: _store(app)),
            _check("queues", lambda: _queues(app)),
        ]
    ready = all(check["status"] != "failed" for check in checks)
    body = {"status": "ready" if ready else "not_ready", "checks": checks}
    return (200, body, {}) if ready else (503, body, {"Retry-After": str(NOT_READY_RETRY_AFTER_SECONDS)})
