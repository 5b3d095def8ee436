"""GET /api/health/ready: every dependency checked, each failure with its remediation."""

from __future__ import annotations

import uuid

import pytest

from emulators.azure import VaultFault
from emulators.azurite import Azurite
from emulators.genesys import DEMO_USER_ID, Fault
from emulators.stack import CLIENT_SECRET
from shared.services import services
from tests.conftest import Stack
from tests.table_front import table_front, through_front


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
        "call_user": "ok",
        "caller_ids": "ok",
        "webhook_secret": "skipped",
        "status_callback_secret": "skipped",
        "sns": "skipped",
        "pubsub": "skipped",
        "idempotency_store": "ok",
        "queues": "ok",
    }
    assert "/api/webhooks/calls is not configured" in checks(response)["webhook_secret"]["detail"]


def test_steady_state_probe_costs_no_remote_request(stack: Stack) -> None:
    stack.get("/api/health/ready")
    reads, genesys_requests = stack.vault.secret_reads(), len(stack.genesys.requests())

    stack.get("/api/health/ready")

    assert (stack.vault.secret_reads(), len(stack.genesys.requests())) == (reads, genesys_requests)
    assert len(stack.genesys.requests("user")) == 1


def test_each_failure_names_its_remediation(stack: Stack) -> None:
    stack.vault.inject(VaultFault(status=403))

    response = stack.get("/api/health/ready")

    assert response.status_code == 503
    vault = checks(response)["key_vault"]
    assert vault["code"] == "key_vault_forbidden"
    assert "Key Vault Secrets User" in vault["remediation"]
    assert len(checks(response)) == 11  # one failure does not hide the other checks


def test_genesys_down_is_reported(stack: Stack) -> None:
    stack.genesys.inject("token", *[Fault(status=503)] * 3)

    response = stack.get("/api/health/ready")

    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0  # design.md: every 503 carries Retry-After
    token = checks(response)["genesys_token"]
    assert token["code"] == "genesys_unavailable"
    # an operator's remediation, not a caller's "retry with the same Idempotency-Key" (a probe has none)
    assert "GENESYS_REGION" in token["remediation"] and "Idempotency-Key" not in token["remediation"]


def test_bad_configuration_is_reported(stack: Stack, configure) -> None:
    configure(CALLER_ID_SOURCE="sometimes")

    response = stack.get("/api/health/ready")

    assert response.status_code == 503
    assert checks(response)["configuration"]["code"] == "configuration_error"
    assert "CALLER_ID_SOURCE" in checks(response)["configuration"]["detail"]


def test_unknown_call_user_is_not_ready_and_its_id_is_not_echoed(stack: Stack, configure) -> None:
    unknown = str(uuid.uuid4())
    configure(GENESYS_CALL_USER_ID=unknown, ALLOWED_USER_IDS=None)

    response = stack.get("/api/health/ready")

    assert response.status_code == 503
    user = checks(response)["call_user"]
    assert (user["status"], user["code"]) == ("failed", "configuration_error")
    assert "GENESYS_CALL_USER_ID" in user["detail"]
    assert unknown not in response.text
    assert stack.genesys.requests("user")[0].path == f"/api/v2/users/{unknown}"


def test_inactive_call_user_is_not_ready(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack.genesys.org.users[DEMO_USER_ID], "state", "inactive")

    response = stack.get("/api/health/ready")

    assert response.status_code == 503
    assert "inactive" in checks(response)["call_user"]["detail"]


@pytest.mark.parametrize(
    "allowed",
    [{"ALLOWED_USER_IDS": "*", "ALLOWED_QUEUE_IDS": None}, {"ALLOWED_QUEUE_IDS": "*"}],
    ids=["users", "queues"],
)
def test_without_a_call_user_the_check_is_skipped(stack: Stack, configure, allowed: dict[str, str | None]) -> None:
    """`*` allows any user (or queue): every request then names its own, and readiness has no user to check."""
    configure(GENESYS_CALL_USER_ID=None, **allowed)

    response = stack.get("/api/health/ready")

    assert response.status_code == 200, response.text
    assert checks(response)["call_user"]["status"] == "skipped"
    assert stack.genesys.requests("user") == []


def test_without_a_call_user_and_any_allowed_user_or_queue_nothing_can_be_placed(stack: Stack, configure) -> None:
    configure(GENESYS_CALL_USER_ID=None, ALLOWED_USER_IDS=None, ALLOWED_QUEUE_IDS=None)

    ready = stack.get("/api/health/ready")
    call = stack.post("/api/calls", {"to": "+12125550199", "userId": DEMO_USER_ID})

    assert ready.status_code == 503, ready.text
    assert checks(ready)["call_user"]["status"] == "failed"
    assert "ALLOWED_USER_IDS" in checks(ready)["call_user"]["remediation"]
    assert call.json()["code"] == "user_not_allowed"  # what readiness now says before the first call


def test_a_check_that_needs_nothing_that_failed_still_reports(stack: Stack, configure) -> None:
    """Without a call user the call_user check reads nothing from Genesys: a failed token must not hide it."""
    configure(GENESYS_CALL_USER_ID=None, ALLOWED_USER_IDS=None, ALLOWED_QUEUE_IDS=None)
    stack.genesys.inject("token", *[Fault(status=503)] * 3)

    ready = stack.get("/api/health/ready")

    assert checks(ready)["genesys_token"]["status"] == "failed"
    assert checks(ready)["call_user"]["status"] == "failed", checks(ready)["call_user"]
    assert checks(ready)["caller_ids"]["detail"] == "not checked: it needs genesys_token, which failed"
    assert checks(ready)["status_callback_secret"]["status"] == "skipped"
    assert "STATUS_CALLBACK_ALLOWED_HOSTS is not set" in checks(ready)["status_callback_secret"]["detail"]
    # the emulated stack's GENESYS_ALLOW_INSECURE_HTTP lets callbacks go to loopback: it said "callbacks are off"
    assert "go only to plain-HTTP loopback URLs" in checks(ready)["status_callback_secret"]["detail"]


def test_a_default_caller_id_the_org_does_not_own_is_not_ready(stack: Stack, configure) -> None:
    """With CALLER_ID_SOURCE=genesys every call without `from` uses DEFAULT_CALLER_ID, refused when it is no DID."""
    configure(DEFAULT_CALLER_ID="+13175550999")

    ready = stack.get("/api/health/ready")
    call = stack.post("/api/calls", {"to": "+12125550199"})

    assert ready.status_code == 503, ready.text
    assert checks(ready)["caller_ids"]["status"] == "failed"
    assert "DEFAULT_CALLER_ID" in checks(ready)["caller_ids"]["detail"]
    assert call.json()["code"] == "configuration_error"
    assert stack.creates() == []


def test_webhook_secret_setting_is_ok(stack: Stack, configure) -> None:
    configure(WEBHOOK_SECRET="readiness-webhook-secret")

    response = stack.get("/api/health/ready")

    assert checks(response)["webhook_secret"]["status"] == "ok"
    assert "readiness-webhook-secret" not in response.text


@pytest.mark.parametrize("value", [None, " \t "])
def test_named_webhook_secret_missing_or_blank_in_the_vault_fails(stack: Stack, configure, value) -> None:
    configure(WEBHOOK_SECRET_NAME="hooks-secret")
    if value is not None:
        stack.vault.set_secret("hooks-secret", value)
    try:
        response = stack.get("/api/health/ready")
    finally:
        stack.vault.delete_secret("hooks-secret")

    assert response.status_code == 503
    webhook = checks(response)["webhook_secret"]
    assert webhook["status"] == "failed"
    assert "hooks-secret" in webhook["detail"]
    assert "WEBHOOK_SECRET_NAME" in webhook["remediation"]
    assert "GENESYS_CLIENT_SECRET_NAME" not in webhook["remediation"]


def test_a_named_status_callback_secret_must_be_readable(stack: Stack, configure) -> None:
    configure(STATUS_CALLBACK_SECRET_NAME="callbacks-secret")
    stack.vault.set_secret("callbacks-secret", "vault-callback-secret")
    try:
        present = stack.get("/api/health/ready")
    finally:
        stack.vault.delete_secret("callbacks-secret")
    configure(STATUS_CALLBACK_SECRET_NAME="no-such-secret")
    missing = stack.get("/api/health/ready")

    assert present.status_code == 200, present.text
    assert checks(present)["status_callback_secret"]["status"] == "ok"
    assert "vault-callback-secret" not in present.text
    assert missing.status_code == 503
    failed = checks(missing)["status_callback_secret"]
    assert (failed["status"], failed["code"]) == ("failed", "secret_not_found")
    assert "STATUS_CALLBACK_SECRET_NAME" in failed["remediation"]


def test_callbacks_signed_with_a_webhook_secret_there_is_not_are_not_ready(stack: Stack, configure) -> None:
    """With callbacks allowed and nothing to sign them with, readiness said "signed with the webhook secret" and
    skipped the check, while every callback asked for would fail."""
    configure(STATUS_CALLBACK_ALLOWED_HOSTS="callbacks.example.com", WEBHOOK_SECRET=None)
    missing = stack.get("/api/health/ready")
    configure(STATUS_CALLBACK_ALLOWED_HOSTS="callbacks.example.com", WEBHOOK_SECRET="a-webhook-secret")
    present = stack.get("/api/health/ready")

    assert missing.status_code == 503, missing.text
    failed = checks(missing)["status_callback_secret"]
    assert (failed["status"], failed["code"]) == ("failed", "secret_not_found")
    assert "WEBHOOK_SECRET" in failed["remediation"]
    assert checks(present)["status_callback_secret"]["status"] == "ok", present.text
    assert "a-webhook-secret" not in present.text


def test_default_named_webhook_secret_in_the_vault_is_checked(stack: Stack) -> None:
    stack.vault.set_secret("webhook-secret", "vault-webhook-secret")
    try:
        response = stack.get("/api/health/ready")
    finally:
        stack.vault.delete_secret("webhook-secret")

    assert checks(response)["webhook_secret"]["status"] == "ok"
    assert "vault-webhook-secret" not in response.text


def test_blank_client_secret_in_the_vault_is_a_configuration_error_not_a_key(stack: Stack) -> None:
    stack.vault.set_secret("genesys-client-secret", "   ")

    ready = stack.get("/api/health/ready")
    call = stack.post("/api/calls", {"to": "+12125550199"})

    assert checks(ready)["key_vault"]["code"] == "configuration_error"
    assert "'genesys-client-secret'" in checks(ready)["key_vault"]["detail"]
    assert (call.status_code, call.json()["code"]) == (500, "configuration_error")
    assert stack.genesys.requests("token") == []


def test_push_senders_are_configured_or_skipped_and_half_a_pubsub_setting_fails(stack: Stack, configure) -> None:
    topic, account = "arn:aws:sns:us-east-1:123456789012:calls", "push@acme.iam.gserviceaccount.com"
    configure(SNS_TOPIC_ARNS=topic, PUBSUB_AUDIENCE="https://calls.example.net/push", PUBSUB_SERVICE_ACCOUNTS=account)
    ready = checks(stack.get("/api/health/ready"))
    configure(PUBSUB_AUDIENCE=None, PUBSUB_SERVICE_ACCOUNTS=account)
    response = stack.get("/api/health/ready")

    assert (ready["sns"]["status"], ready["pubsub"]["status"]) == ("ok", "ok")
    assert response.status_code == 503
    failed = checks(response)["pubsub"]
    assert (failed["status"], failed["code"]) == ("failed", "configuration_error")
    assert "PUBSUB_AUDIENCE" in failed["detail"]
    assert topic not in response.text and account not in response.text and "example.net" not in response.text


@pytest.mark.parametrize(
    "platform",
    [
        {"WEBSITE_INSTANCE_ID": "a1b2c3"},  # App Service: Dedicated, Premium, Windows Consumption
        # Flex Consumption as the Functions host's own tests describe it once specialized: no WEBSITE_INSTANCE_ID
        {"WEBSITE_SKU": "FlexConsumption", "CONTAINER_NAME": "c1", "LEGION_SERVICE_HOST": "1"},
    ],
    ids=["app-service", "flex-consumption"],
)
def test_where_app_service_runs_the_app_no_call_is_placed_without_shared_storage(
    stack: Stack, configure, platform: dict[str, str]
) -> None:
    """Every plan runs several instances; the template's plan, Flex Consumption, sets no WEBSITE_INSTANCE_ID.
    Readiness failed, but calls were placed with claims in one instance's memory: a retry with the same key on
    another instance (or after a restart) dialed again."""
    configure(AzureWebJobsStorage=None, **platform)

    response = stack.get("/api/health/ready")
    call = stack.post("/api/calls", {"to": "+12125550199"}, headers={"Idempotency-Key": "no-shared-store"})

    assert response.status_code == 503
    assert checks(response)["configuration"]["code"] == "configuration_error"
    assert (
        "Setting AzureWebJobsStorage is not set in a form the app reads" in checks(response)["configuration"]["detail"]
    )
    assert (call.status_code, call.json()["code"]) == (500, "configuration_error"), call.text
    assert stack.creates() == []


def test_on_linux_consumption_or_in_a_dev_container_duplicate_protection_in_memory_is_not_ready(
    stack: Stack, configure
) -> None:
    """CONTAINER_NAME alone is Linux Consumption to the host, and a dev container too: readiness fails there, and a
    developer's call is still placed (with the secret in a setting: the emulated vault's challenge, which names
    another host, is verified wherever a hosting plan's variable is set)."""
    configure(AzureWebJobsStorage=None, CONTAINER_NAME="c1", KEY_VAULT_URL=None, GENESYS_CLIENT_SECRET=CLIENT_SECRET)

    response = stack.get("/api/health/ready")
    call = stack.post("/api/calls", {"to": "+12125550199"})

    assert response.status_code == 503
    assert checks(response)["idempotency_store"]["code"] == "configuration_error"
    assert "AzureWebJobsStorage" in checks(response)["idempotency_store"]["remediation"]
    assert call.status_code == 201, call.text


def test_a_vault_whose_challenge_names_another_host_is_a_configuration_error_in_every_check(
    stack: Stack, configure
) -> None:
    """The SDK refuses the loopback vault's challenge with a ValueError when the resource is verified: it made the
    whole report a 500 without its checks, and every call an internal_error."""
    configure(KEY_VAULT_VERIFY_CHALLENGE_RESOURCE="true")

    response = stack.get("/api/health/ready")
    call = stack.post("/api/calls", {"to": "+12125550199"})

    assert response.status_code == 503, response.text
    vault = checks(response)["key_vault"]
    assert (vault["status"], vault["code"]) == ("failed", "configuration_error")
    assert "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE" in vault["remediation"]
    assert checks(response)["idempotency_store"]["status"] == "ok"  # the other checks still report
    assert call.json()["code"] == "configuration_error"
    assert stack.creates() == []


@pytest.mark.parametrize("platform", ["WEBSITE_INSTANCE_ID", "WEBSITE_SKU", "CONTAINER_NAME"])
def test_where_azure_runs_the_app_the_vault_challenge_is_verified_whatever_the_setting_says(
    stack: Stack, configure, platform: str
) -> None:
    """An emulator setting left on in Azure: unverified, a vault URL's host could name another resource in its
    challenge (Azure Resource Manager) and be sent the managed identity's token for it. Linux Consumption, told
    only by CONTAINER_NAME, still left it unverified."""
    configure(KEY_VAULT_VERIFY_CHALLENGE_RESOURCE="false", **{platform: "a1b2c3"})

    response = stack.get("/api/health/ready")
    call = stack.post("/api/calls", {"to": "+12125550199"})

    assert response.status_code == 503, response.text
    vault = checks(response)["key_vault"]
    assert (vault["status"], vault["code"]) == ("failed", "configuration_error")
    assert call.json()["code"] == "configuration_error"
    assert stack.creates() == []


def test_a_failed_first_load_from_genesys_is_not_asked_again_by_every_probe(stack: Stack, configure) -> None:
    """A role without the DID pools' permission failed the caller-ID check, and every probe and every call paged
    through the whole DID list again, on the rate limit the calls share. The failure is held a while instead."""
    configure()  # a restart: nothing loaded
    stack.genesys.inject("didpools", *[Fault(status=403, code="missing.any.permissions")] * 10)

    probes = [stack.get("/api/health/ready") for _ in range(3)]
    call = stack.post("/api/calls", {"to": "+12125550199"})

    for probe in probes:
        assert probe.status_code == 503, probe.text
        assert checks(probe)["caller_ids"]["code"] == "genesys_permission_denied"
    assert call.json()["code"] == "genesys_permission_denied"
    assert len(stack.genesys.requests("didpools")) == 1
    assert stack.creates() == []


def test_what_a_failed_vault_blocks_is_not_checked_again(stack: Stack) -> None:
    """Each check that needs the vault waited out its timeouts again: with a hanging vault the probe took 90 s."""
    stack.vault.inject(*[VaultFault(status=503)] * 30)

    response = stack.get("/api/health/ready")

    assert response.status_code == 503
    assert checks(response)["key_vault"]["code"] == "key_vault_unavailable"
    for blocked in ("genesys_token", "call_user", "caller_ids"):
        # the failure it waits on, not a check that was itself skipped
        assert checks(response)[blocked] == {
            "name": blocked,
            "status": "skipped",
            "detail": "not checked: it needs key_vault, which failed",
        }
    secret_gets = [r for r in stack.vault.requests() if r["method"] == "GET" and "/secrets/" in r["path"]]
    assert len(secret_gets) <= 3  # the vault check's own attempts, no other check's
    assert stack.genesys.requests() == []


def test_a_do_not_call_table_that_cannot_be_read_is_not_ready(stack: Stack) -> None:
    """Every call reads the list: readiness read only the idempotency table, and answered 200 while every call was
    refused."""
    assert stack.post("/api/calls", {"to": "+12125550199"}).status_code == 201  # both tables made and in use
    settings = services().settings
    assert settings.storage is not None
    settings.storage.table(settings.do_not_call_table).delete_table()

    response = stack.get("/api/health/ready")

    assert response.status_code == 503, response.text
    store = checks(response)["idempotency_store"]
    assert (store["status"], store["code"]) == ("failed", "idempotency_store_unavailable")
    assert "do-not-call" in store["detail"]
    assert "AzureWebJobsStorage" in store["remediation"] and "Idempotency-Key" not in store["remediation"]


@pytest.mark.parametrize(
    ("code", "remediation"),
    [("AuthorizationPermissionMismatch", "Storage Table Data Contributor"), ("AuthorizationFailure", "firewall")],
)
def test_storage_that_refuses_the_app_says_what_to_change(
    stack: Stack, configure, azurite: Azurite, code: str, remediation: str
) -> None:
    """A 403 read as "could not be reached; retry later", which no retry fixes."""
    with table_front(azurite.ports["Table"]) as front:
        configure(AzureWebJobsStorage=through_front(azurite, front))
        front.forbidden, front.forbidden_code = True, code
        response = stack.get("/api/health/ready")

    store = checks(response)["idempotency_store"]
    assert (store["status"], store["code"]) == ("failed", "idempotency_store_unavailable")
    assert f"refused the app's request (403 {code})" in store["detail"]
    assert remediation in store["remediation"]


def test_queues_that_refuse_the_app_are_not_ready(stack: Stack, configure, azurite: Azurite) -> None:
    """An identity with a table role and no queue role: readiness read only the tables and answered 200, while
    every asynchronous request and status callback was refused."""
    with table_front(azurite.ports["Queue"]) as queues:
        queue = f"QueueEndpoint=http://127.0.0.1:{azurite.ports['Queue']}/"
        configure(
            AzureWebJobsStorage=azurite.connection_string.replace(
                queue, f"QueueEndpoint=http://127.0.0.1:{queues.server_address[1]}/"
            )
        )
        queues.forbidden = True
        response = stack.get("/api/health/ready")

    assert response.status_code == 503, response.text
    assert checks(response)["idempotency_store"]["status"] == "ok"
    check = checks(response)["queues"]
    assert (check["status"], check["code"]) == ("failed", "idempotency_store_unavailable")
    assert "queue refused the app's request (403 AuthorizationPermissionMismatch)" in check["detail"]
    assert "Storage Queue Data Contributor" in check["remediation"]


def test_without_storage_the_queues_check_is_skipped(stack: Stack, configure) -> None:
    configure(AzureWebJobsStorage=None)

    check = checks(stack.get("/api/health/ready"))["queues"]

    assert check["status"] == "skipped"
    assert "asynchronous requests and status callbacks are refused" in check["detail"]
