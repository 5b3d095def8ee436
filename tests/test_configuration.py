"""Settings: every bad value is named in a configuration_error; regions resolve to the right hosts."""

from __future__ import annotations

import pytest

from shared.config import load_settings, storage_account
from shared.errors import Problem
from tests.conftest import Stack

MINIMAL = {"GENESYS_REGION": "mypurecloud.com", "GENESYS_CLIENT_ID": "id", "GENESYS_CLIENT_SECRET": "s"}
VAULT = {"KEY_VAULT_URL": "https://kv-example.vault.azure.net/"}


@pytest.mark.parametrize(
    ("region", "api", "login"),
    [
        ("mypurecloud.com", "https://api.mypurecloud.com", "https://login.mypurecloud.com"),
        ("us_east_1", "https://api.mypurecloud.com", "https://login.mypurecloud.com"),
        ("usw2.pure.cloud", "https://api.usw2.pure.cloud", "https://login.usw2.pure.cloud"),
        ("eu-west-2", "https://api.euw2.pure.cloud", "https://login.euw2.pure.cloud"),
        ("EU_CENTRAL_1", "https://api.mypurecloud.de", "https://login.mypurecloud.de"),
        ("edee1.eusc-pure.cloud", "https://api.edee1.eusc-pure.cloud", "https://login.edee1.eusc-pure.cloud"),
    ],
)
def test_region_names_and_domains_resolve_to_api_and_login_hosts(region: str, api: str, login: str) -> None:
    settings = load_settings({**MINIMAL, "GENESYS_REGION": region})

    assert (settings.api_base_url, settings.login_base_url) == (api, login)


def test_defaults() -> None:
    settings = load_settings(MINIMAL)

    assert settings.caller_id_source == "settings"
    assert settings.default_phone_region == "US"
    assert settings.client_secret_name == "genesys-client-secret"
    assert settings.key_vault_verify_challenge_resource is True
    assert settings.allow_premium_rate is False


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"GENESYS_REGION": "api.mypurecloud.com"}, "GENESYS_REGION"),
        ({"GENESYS_REGION": "us_east_9"}, "GENESYS_REGION"),
        ({"GENESYS_REGION": ""}, "GENESYS_REGION"),
        ({"GENESYS_CLIENT_ID": ""}, "GENESYS_CLIENT_ID"),
        ({"GENESYS_CLIENT_SECRET": ""}, "KEY_VAULT_URL"),
        ({"KEY_VAULT_URL": "http://vault.example"}, "KEY_VAULT_URL"),
        ({"GENESYS_API_BASE_URL": "http://127.0.0.1:1"}, "GENESYS_API_BASE_URL"),
        ({"GENESYS_API_BASE_URL": "ftp://x"}, "GENESYS_API_BASE_URL"),
        ({"GENESYS_API_BASE_URL": "https://api.exa mple.com"}, "GENESYS_API_BASE_URL"),  # requests: InvalidURL
        ({"GENESYS_API_BASE_URL": "https://.10.0.0.1"}, "GENESYS_API_BASE_URL"),
        ({"GENESYS_ALLOW_INSECURE_HTTP": "maybe"}, "GENESYS_ALLOW_INSECURE_HTTP"),
        ({"CALLER_ID_SOURCE": "dids"}, "CALLER_ID_SOURCE"),
        ({"DEFAULT_PHONE_REGION": "XX"}, "DEFAULT_PHONE_REGION"),
        ({"DEFAULT_CALLER_ID": "12"}, "DEFAULT_CALLER_ID"),
        ({"ALLOWED_CALLER_IDS": "+13175550100,,garbage"}, "ALLOWED_CALLER_IDS"),
        ({"CALL_DEADLINE_SECONDS": "soon"}, "CALL_DEADLINE_SECONDS"),
        ({"CALLER_ID_CACHE_SECONDS": "-1"}, "CALLER_ID_CACHE_SECONDS"),
        # A zero timeout is a ValueError inside requests and azure-core: every call an internal_error.
        ({"GENESYS_CONNECT_TIMEOUT_SECONDS": "0"}, "GENESYS_CONNECT_TIMEOUT_SECONDS"),
        ({"GENESYS_READ_TIMEOUT_SECONDS": "0"}, "GENESYS_READ_TIMEOUT_SECONDS"),
        ({"KEY_VAULT_READ_TIMEOUT_SECONDS": "0"}, "KEY_VAULT_READ_TIMEOUT_SECONDS"),
        ({"CALL_DEADLINE_SECONDS": "0"}, "CALL_DEADLINE_SECONDS"),  # every create "out of time", retried forever
        ({"CALL_DEADLINE_SECONDS": "120"}, "CALL_DEADLINE_SECONDS"),  # Power Automate gives up at 120 s
        ({"ASYNC_RETRY_AFTER_SECONDS": "1e300"}, "ASYNC_RETRY_AFTER_SECONDS"),
        ({"IDEMPOTENCY_RETENTION_SECONDS": "3600"}, "IDEMPOTENCY_RETENTION_SECONDS"),
        ({"IDEMPOTENCY_RETENTION_SECONDS": "inf"}, "IDEMPOTENCY_RETENTION_SECONDS"),
        # Key Vault answers 400 for such a name, which read as the vault being down: a retryable 503 on every call
        ({**VAULT, "GENESYS_CLIENT_SECRET_NAME": "genesys_client_secret"}, "GENESYS_CLIENT_SECRET_NAME"),
        ({**VAULT, "WEBHOOK_SECRET_NAME": "w" * 119}, "WEBHOOK_SECRET_NAME"),  # no room left for its -previous
        ({**VAULT, "STATUS_CALLBACK_SECRET_NAME": "callback.secret"}, "STATUS_CALLBACK_SECRET_NAME"),
        # alone, it was taken for the current secret: callbacks signed with the old key
        ({"WEBHOOK_SECRET_PREVIOUS": "old-secret"}, "WEBHOOK_SECRET_PREVIOUS"),
        # a cap's record holds every counted call's time in one Table property of at most 32K characters
        ({"CALLS_PER_NUMBER_LIMIT": "1001"}, "CALLS_PER_NUMBER_LIMIT"),
        ({"IDEMPOTENCY_WAIT_SECONDS": "600"}, "IDEMPOTENCY_WAIT_SECONDS"),  # past Power Automate's 120 s
        ({"KEY_VAULT_READ_TIMEOUT_SECONDS": "1e9"}, "KEY_VAULT_READ_TIMEOUT_SECONDS"),
        # A path: the portal's copy of a secret's own URL read as "no such secret"; /api/v2 doubled in every
        # request read as "no such user"; a token 404 pointed at the user or queue id.
        ({"KEY_VAULT_URL": "https://kv-example.vault.azure.net/secrets/genesys-client-secret"}, "KEY_VAULT_URL"),
        ({"GENESYS_API_BASE_URL": "https://api.mypurecloud.com/api/v2"}, "GENESYS_API_BASE_URL"),
        ({"GENESYS_LOGIN_BASE_URL": "https://login.mypurecloud.com/?x=1"}, "GENESYS_LOGIN_BASE_URL"),
        # an identity not attached (or no client id at all) failed every token request as a vault outage
        ({"AZURE_CLIENT_ID": "my identity"}, "AZURE_CLIENT_ID"),
    ],
)
def test_bad_setting_is_named(overrides: dict[str, str], setting: str) -> None:
    with pytest.raises(Problem) as raised:
        load_settings({**MINIMAL, **overrides})

    assert raised.value.code == "configuration_error"
    assert setting in raised.value.detail


def test_a_url_with_a_path_is_told_its_address_alone_port_and_all() -> None:
    with pytest.raises(Problem) as raised:
        load_settings(
            {**MINIMAL, "GENESYS_ALLOW_INSECURE_HTTP": "true", "GENESYS_API_BASE_URL": "http://[::1]:8080/api/v2"}
        )

    assert "(http://[::1]:8080)" in raised.value.detail


def test_a_storage_identitys_client_id_is_a_uuid() -> None:
    identity_based = {
        "AzureWebJobsStorage__accountName": "stexample",
        "AzureWebJobsStorage__credential": "managedidentity",
    }

    with pytest.raises(Problem) as raised:
        storage_account({**identity_based, "AzureWebJobsStorage__clientId": "id-func-api"})
    account = storage_account(
        {**identity_based, "AzureWebJobsStorage__clientId": "5f1e4c3a-9b1d-4c8e-a1f2-0c9d8e7b6a51"}
    )

    assert "AzureWebJobsStorage__clientId" in raised.value.detail
    assert account is not None and account.client_id == "5f1e4c3a-9b1d-4c8e-a1f2-0c9d8e7b6a51"


def test_configuration_error_reaches_the_caller_as_a_problem_without_secrets(stack: Stack, configure) -> None:
    configure(GENESYS_REGION="not-a-region", GENESYS_API_BASE_URL=None, GENESYS_LOGIN_BASE_URL=None)

    response = stack.post("/api/calls", {"to": "+12125550199"})

    assert response.status_code == 500
    problem = response.json()
    assert problem["code"] == "configuration_error"
    assert "GENESYS_REGION" in problem["detail"]
    assert "emulator-client-secret" not in response.text
    assert stack.genesys.requests() == []


def test_a_retention_that_would_let_a_retry_dial_again_is_refused_before_anything_is_sent(
    stack: Stack, configure
) -> None:
    """0 reads as "off" or "forever" to some; taken, every answer expired at once and a retry with the same key
    dialed again. Event Grid redelivers a batch for 24 h, so less than that is refused."""
    configure(IDEMPOTENCY_RETENTION_SECONDS="0")

    response = stack.post("/api/calls", {"to": "+12125550199"}, headers={"Idempotency-Key": "retention-zero"})

    assert response.status_code == 500
    assert response.json()["code"] == "configuration_error"
    assert "IDEMPOTENCY_RETENTION_SECONDS" in response.json()["detail"]
    assert stack.creates() == []


def test_the_bounds_hold_their_defaults_and_edges() -> None:
    settings = load_settings(
        {
            **MINIMAL,
            "IDEMPOTENCY_RETENTION_SECONDS": "86400",
            "CALL_DEADLINE_SECONDS": "100",
            "GENESYS_READ_TIMEOUT_SECONDS": "0.1",
            "ASYNC_RETRY_AFTER_SECONDS": "3600",
        }
    )
    assert (settings.idempotency_retention_seconds, settings.call_deadline_seconds) == (86400, 100)
    assert (settings.read_timeout_seconds, settings.async_retry_after_seconds) == (0.1, 3600)


MARK = "s3cr3t"  # in each bad value below: the answer names the setting and the rule, never the value


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"GENESYS_ALLOW_INSECURE_HTTP": f"{MARK}-maybe"}, "GENESYS_ALLOW_INSECURE_HTTP"),
        ({"GENESYS_REGION": f"{MARK}.example"}, "GENESYS_REGION"),
        ({"GENESYS_API_BASE_URL": f"https://svc:{MARK}@api.example.com"}, "GENESYS_API_BASE_URL"),
        ({"GENESYS_API_BASE_URL": f"https://{MARK}@api.example.com"}, "GENESYS_API_BASE_URL"),
        ({"GENESYS_LOGIN_BASE_URL": f"https://login.example.com:{MARK}/"}, "GENESYS_LOGIN_BASE_URL"),
        ({"GENESYS_LOGIN_BASE_URL": f"https://login.{MARK}.example:99999"}, "GENESYS_LOGIN_BASE_URL"),
        ({"GENESYS_API_BASE_URL": f"https://:443/{MARK}"}, "GENESYS_API_BASE_URL"),
        ({"GENESYS_API_BASE_URL": f"https://[{MARK}"}, "GENESYS_API_BASE_URL"),
        ({"KEY_VAULT_URL": f"https://app:{MARK}@vault.example/"}, "KEY_VAULT_URL"),
        ({"KEY_VAULT_URL": f"https:///{MARK}"}, "KEY_VAULT_URL"),
        (
            {"AzureWebJobsStorage__tableServiceUri": f"https://acct:{MARK}@acct.table.core.windows.net"},
            "AzureWebJobsStorage__tableServiceUri",
        ),
        ({"AzureWebJobsStorage__tableServiceUri": f"ftp://{MARK}.example"}, "AzureWebJobsStorage__tableServiceUri"),
        ({"DEFAULT_PHONE_REGION": "QQ"}, "DEFAULT_PHONE_REGION"),
        ({"CALL_DEADLINE_SECONDS": MARK}, "CALL_DEADLINE_SECONDS"),
        ({"DEFAULT_CALLER_ID": f"1234{MARK}"}, "DEFAULT_CALLER_ID"),
        ({"ALLOWED_CALLER_IDS": f"+13175550100,99{MARK}"}, "ALLOWED_CALLER_IDS"),
        ({"GENESYS_CALL_USER_ID": f"{MARK}-user"}, "GENESYS_CALL_USER_ID"),
        ({"MAX_EVENTS_PER_DELIVERY": MARK}, "MAX_EVENTS_PER_DELIVERY"),
    ],
)
def test_bad_setting_is_named_without_its_value(overrides: dict[str, str], setting: str) -> None:
    with pytest.raises(Problem) as raised:
        load_settings({**MINIMAL, **overrides})

    assert raised.value.code == "configuration_error"
    assert setting in raised.value.detail
    assert MARK not in raised.value.detail.lower()
    assert "QQ" not in raised.value.detail


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("GENESYS_CALL_USER_ID", "<Genesys user id the calls are placed on behalf of>"),
        ("GENESYS_CLIENT_ID", "<OAuth client id (Client Credentials grant)>"),
        ("KEY_VAULT_URL", "https://<your-vault>.vault.azure.net/"),
        ("GENESYS_CLIENT_SECRET", "your-client-secret"),
        ("WEBHOOK_SECRET", "Your-Webhook-Secret"),
        ("WEBHOOK_SECRET_NAME", "<name>"),
        ("ALLOWED_USER_IDS", "<user ids>"),
        ("CALLER_ID_SOURCE", "<settings|genesys|both>"),
        ("IDEMPOTENCY_TABLE", "your-table"),
        ("AzureWebJobsStorage", "DefaultEndpointsProtocol=https;AccountName=<account>;AccountKey=<key>"),
    ],
)
def test_placeholder_left_from_the_example_is_a_configuration_error(setting: str, value: str) -> None:
    with pytest.raises(Problem) as raised:
        load_settings({**MINIMAL, setting: value})

    assert raised.value.code == "configuration_error"
    assert setting in raised.value.detail
    assert "placeholder" in raised.value.detail
    assert value not in raised.value.detail


@pytest.mark.parametrize("setting", ["GENESYS_CLIENT_SECRET", "WEBHOOK_SECRET", "GENESYS_CLIENT_ID"])
def test_an_unresolved_key_vault_reference_is_a_configuration_error_naming_it(setting: str) -> None:
    """App Service leaves the reference's text in a setting it could not resolve: sent to Genesys as the client
    secret, it came back invalid_client, and the hint sent the operator to the OAuth client instead."""
    reference = "@Microsoft.KeyVault(SecretUri=https://kv-calls.vault.azure.net/secrets/genesys-client-secret/)"

    with pytest.raises(Problem) as raised:
        load_settings({**MINIMAL, setting: reference})

    assert raised.value.code == "configuration_error"
    assert setting in raised.value.detail
    assert "Key Vault reference" in raised.value.detail and "Key Vault Secrets User" in raised.value.detail
    assert "kv-calls" not in raised.value.detail


def test_a_country_named_twice_in_calling_hours_by_country_is_a_configuration_error() -> None:
    """The last entry won unseen: US=08:00-20:00;US=off turned the check off for the US."""
    with pytest.raises(Problem) as raised:
        load_settings({**MINIMAL, "CALLING_HOURS_BY_COUNTRY": "US=08:00-20:00;GB=09:00-20:00;us=off"})

    assert raised.value.code == "configuration_error"
    assert "names US twice" in raised.value.detail


@pytest.mark.parametrize("setting", ["GENESYS_CLIENT_SECRET", "WEBHOOK_SECRET", "WEBHOOK_SECRET_PREVIOUS"])
def test_whitespace_only_secret_is_a_configuration_error(setting: str) -> None:
    with pytest.raises(Problem) as raised:
        load_settings({**MINIMAL, "KEY_VAULT_URL": "https://vault.example", setting: " \t "})

    assert raised.value.code == "configuration_error"
    assert setting in raised.value.detail


def test_empty_secret_settings_are_simply_unset() -> None:
    settings = load_settings(
        {**MINIMAL, "KEY_VAULT_URL": "https://vault.example", "GENESYS_CLIENT_SECRET": "", "WEBHOOK_SECRET": ""}
    )

    assert (settings.client_secret, settings.webhook_secrets) == (None, ())


@pytest.mark.parametrize("value", ["0", "-3", "2.5", "1e3", "fifty", "9" * 5000, "\u0661\u0662"])
@pytest.mark.parametrize("setting", ["MAX_EVENTS_PER_DELIVERY", "CALLS_PER_NUMBER_LIMIT"])
def test_counts_must_be_positive_whole_numbers(setting: str, value: str) -> None:
    with pytest.raises(Problem) as raised:  # 5000 digits: past int()'s own limit, still a configuration_error
        load_settings({**MINIMAL, setting: value})

    assert raised.value.code == "configuration_error"
    assert setting in raised.value.detail


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "1e305", "8785", "1e-9", "0.01"])
def test_the_cap_window_is_a_number_of_hours_from_a_minute_to_a_year(value: str) -> None:
    """1e305 hours used to pass and make every capped call's answer a 500; 1e-9 turned the cap off unsaid."""
    with pytest.raises(Problem) as raised:
        load_settings({**MINIMAL, "CALLS_PER_NUMBER_LIMIT": "3", "CALLS_PER_NUMBER_WINDOW_HOURS": value})

    assert raised.value.code == "configuration_error"
    assert "CALLS_PER_NUMBER_WINDOW_HOURS" in raised.value.detail


def test_max_events_per_delivery_default_and_value() -> None:
    assert load_settings(MINIMAL).max_events_per_delivery == 50
    assert load_settings({**MINIMAL, "MAX_EVENTS_PER_DELIVERY": " 7 "}).max_events_per_delivery == 7


@pytest.mark.parametrize(
    "url", ["http://api.example.com", "http://10.0.0.5:8080", "http://127.0.0.1.example.com", "http://localhost.evil"]
)
@pytest.mark.parametrize("setting", ["GENESYS_API_BASE_URL", "GENESYS_LOGIN_BASE_URL"])
def test_insecure_http_reaches_loopback_only(setting: str, url: str) -> None:
    # The token request carries the client secret, and every API request a bearer token: never in clear text
    # over a network, whatever GENESYS_ALLOW_INSECURE_HTTP says.
    with pytest.raises(Problem) as raised:
        load_settings({**MINIMAL, "GENESYS_ALLOW_INSECURE_HTTP": "true", setting: url})

    assert raised.value.code == "configuration_error"
    assert setting in raised.value.detail
    assert "https://" in raised.value.detail


def test_insecure_http_to_loopback_is_accepted_with_the_flag() -> None:
    settings = load_settings(
        {
            **MINIMAL,
            "GENESYS_ALLOW_INSECURE_HTTP": "true",
            "GENESYS_API_BASE_URL": "http://LOCALHOST.:8080",  # any case, fully qualified
            "GENESYS_LOGIN_BASE_URL": "http://[::1]:8081",
        }
    )

    assert (settings.api_base_url, settings.login_base_url) == ("http://LOCALHOST.:8080", "http://[::1]:8081")


def test_valid_urls_are_accepted() -> None:
    settings = load_settings(
        {
            **MINIMAL,
            "GENESYS_API_BASE_URL": "https://api.example.com:8443/",
            "GENESYS_LOGIN_BASE_URL": "https://[::1]:9443",
            "KEY_VAULT_URL": "https://my-vault.vault.azure.net/",
            "AzureWebJobsStorage__tableServiceUri": "https://acct.table.core.windows.net",
            "AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.windows.net/",
        }
    )

    assert (settings.api_base_url, settings.login_base_url) == ("https://api.example.com:8443", "https://[::1]:9443")
    assert settings.storage is not None
    assert settings.storage.queue_uri == "https://acct.queue.core.windows.net"


def test_placeholder_call_user_is_not_ready_and_reaches_no_genesys(stack: Stack, configure) -> None:
    configure(GENESYS_CALL_USER_ID="<Genesys user id the calls are placed on behalf of>")

    ready = stack.get("/api/health/ready")
    call = stack.post("/api/calls", {"to": "+12125550199"})

    assert ready.status_code == 503
    assert "GENESYS_CALL_USER_ID" in ready.json()["checks"][0]["detail"]
    assert (call.status_code, call.json()["code"]) == (500, "configuration_error")
    assert "<Genesys user id" not in ready.text + call.text
    assert stack.genesys.requests() == []


def test_url_with_credentials_reaches_no_answer_and_no_log(stack: Stack, configure, caplog) -> None:
    configure(GENESYS_API_BASE_URL=f"http://svc:{MARK}@127.0.0.1:1")

    ready = stack.get("/api/health/ready")
    call = stack.post("/api/calls", {"to": "+12125550199"})

    assert (ready.status_code, call.status_code) == (503, 500)
    assert MARK not in ready.text + call.text
    assert MARK not in caplog.text


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"AzureWebJobsStorage__tableServiceUri": "https://acct.table.core.windows.net"}, "queueServiceUri"),
        ({"AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.windows.net"}, "tableServiceUri"),
        (
            {
                "AzureWebJobsStorage__tableServiceUri": "https://acct.table.core.windows.net",
                "AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.windows.net",
                "AzureWebJobsStorage__credential": "connectionstring",
            },
            "AzureWebJobsStorage__credential",
        ),
        ({"AzureWebJobsStorage__tableServiceUri": "http://acct.table.core.windows.net"}, "tableServiceUri"),
    ],
    ids=["no-queue", "no-table", "other-credential", "plain-http"],
)
def test_incomplete_identity_based_storage_is_a_configuration_error(settings: dict[str, str], named: str) -> None:
    with pytest.raises(Problem) as error:
        load_settings({**MINIMAL, **settings})

    assert error.value.code == "configuration_error"
    assert named in error.value.detail


def test_a_secret_may_hold_angle_brackets_but_not_be_a_placeholder() -> None:
    assert load_settings({**MINIMAL, "WEBHOOK_SECRET": "s3cr<e>t-value"}).webhook_secrets == ("s3cr<e>t-value",)
    with pytest.raises(Problem) as error:
        load_settings({**MINIMAL, "WEBHOOK_SECRET": "<webhook secret>"})
    assert "WEBHOOK_SECRET" in error.value.detail
    assert "webhook secret>" not in error.value.detail


def test_stale_limit_below_one_second_is_refused() -> None:
    with pytest.raises(Problem) as error:
        load_settings({**MINIMAL, "IDEMPOTENCY_STALE_SECONDS": "0"})
    assert "IDEMPOTENCY_STALE_SECONDS" in error.value.detail


def test_a_malformed_storage_connection_string_is_a_configuration_error(stack, configure) -> None:
    configure(AzureWebJobsStorage="AccountName=only-a-name")

    ready = stack.get("/api/health/ready")
    call = stack.post("/api/calls", {"to": "+12125550199"})

    assert ready.status_code == 503
    assert ready.json()["checks"][0]["code"] == "configuration_error"
    assert call.status_code == 500
    assert call.json()["code"] == "configuration_error"
    assert "AzureWebJobsStorage" in call.json()["detail"]
    assert "only-a-name" not in call.text + ready.text
    assert stack.creates() == []


def test_a_connection_string_whose_account_key_was_cut_short_is_a_configuration_error(
    stack, configure, azurite
) -> None:
    """The SDK fails to sign with a key that is no base64 before sending anything: that read as storage being
    unreachable, 503 "retry later", and a flow retried for ever a setting that never named itself."""
    key = azurite.connection_string.split("AccountKey=")[1].split(";")[0]
    configure(AzureWebJobsStorage=azurite.connection_string.replace(key, key[:-1]))

    ready = stack.get("/api/health/ready")
    call = stack.post("/api/calls", {"to": "+12125550199"})

    assert (call.status_code, call.json()["code"]) == (500, "configuration_error"), call.text
    assert "AzureWebJobsStorage" in call.json()["detail"] and "AccountKey" in call.json()["detail"]
    assert ready.status_code == 503 and ready.json()["checks"][0]["code"] == "configuration_error"
    assert key[:-1] not in call.text + ready.text
    assert stack.creates() == []


@pytest.mark.parametrize(
    "written", ["{key} ", '"{key}"', "{half} {rest}", "\u201c{key}\u201d"], ids=["space", "quoted", "split", "curly"]
)
def test_an_account_key_the_sdk_reads_is_not_refused(azurite, written: str) -> None:
    """The SDK decodes the key passing over what is not base64 (spaces, quotes): only a length no key has is refused."""
    key = azurite.connection_string.split("AccountKey=")[1].split(";")[0]
    spelled = written.format(key=key, half=key[:20], rest=key[20:])

    account = storage_account({"AzureWebJobsStorage": azurite.connection_string.replace(key, spelled)})

    assert account is not None and account.connection_string is not None


def test_identity_based_storage_by_account_name_names_the_public_clouds_service_uris() -> None:
    """`AzureWebJobsStorage__accountName` is the host's other identity-based form: without it read, duplicate
    protection fell back to memory, one instance's worth."""
    settings = load_settings({**MINIMAL, "AzureWebJobsStorage__accountName": "acct42"})

    assert settings.storage is not None
    assert (settings.storage.table_uri, settings.storage.queue_uri) == (
        "https://acct42.table.core.windows.net",
        "https://acct42.queue.core.windows.net",
    )


def test_a_malformed_account_name_is_a_configuration_error() -> None:
    with pytest.raises(Problem) as error:
        load_settings({**MINIMAL, "AzureWebJobsStorage__accountName": "evil.example.com/x"})

    assert error.value.code == "configuration_error"
    assert "AzureWebJobsStorage__accountName" in error.value.detail


def test_a_secret_name_left_over_without_a_vault_is_read_by_nothing_and_refused_by_nothing() -> None:
    settings = load_settings({**MINIMAL, "GENESYS_CLIENT_SECRET_NAME": "genesys_client_secret"})

    assert settings.client_secret == "s"


def test_the_settings_repr_holds_no_secret() -> None:
    """Nothing logs the settings today; a repr in a log line or a traceback's locals must still not carry them."""
    secrets = {
        "GENESYS_CLIENT_SECRET": "client-secret-value",
        "WEBHOOK_SECRET": "webhook-secret-value",
        "STATUS_CALLBACK_SECRET": "callback-secret-value",
    }
    key = "YWNjb3VudC1rZXktdmFsdWU="
    storage = f"DefaultEndpointsProtocol=http;AccountName=a;AccountKey={key};TableEndpoint=http://127.0.0.1:1/a;"
    settings = load_settings({**MINIMAL, **secrets, "AzureWebJobsStorage": storage})

    shown = repr(settings)

    assert settings.client_secret == "client-secret-value" and settings.storage is not None
    assert not [value for value in [*secrets.values(), key] if value in shown]
