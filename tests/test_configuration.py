"""Settings: every bad value is named in a configuration_error; regions resolve to the right hosts."""

from __future__ import annotations

import pytest

from shared.config import load_settings
from shared.errors import Problem
from tests.conftest import Stack

MINIMAL = {"GENESYS_REGION": "mypurecloud.com", "GENESYS_CLIENT_ID": "id", "GENESYS_CLIENT_SECRET": "s"}


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
        ({"GENESYS_ALLOW_INSECURE_HTTP": "maybe"}, "GENESYS_ALLOW_INSECURE_HTTP"),
        ({"CALLER_ID_SOURCE": "dids"}, "CALLER_ID_SOURCE"),
        ({"DEFAULT_PHONE_REGION": "XX"}, "DEFAULT_PHONE_REGION"),
        ({"DEFAULT_CALLER_ID": "12"}, "DEFAULT_CALLER_ID"),
        ({"ALLOWED_CALLER_IDS": "+13175550100,,garbage"}, "ALLOWED_CALLER_IDS"),
        ({"CALL_DEADLINE_SECONDS": "soon"}, "CALL_DEADLINE_SECONDS"),
        ({"CALLER_ID_CACHE_SECONDS": "-1"}, "CALLER_ID_CACHE_SECONDS"),
    ],
)
def test_bad_setting_is_named(overrides: dict[str, str], setting: str) -> None:
    with pytest.raises(Problem) as raised:
        load_settings({**MINIMAL, **overrides})

    assert raised.value.code == "configuration_error"
    assert setting in raised.value.detail


def test_configuration_error_reaches_the_caller_as_a_problem_without_secrets(stack: Stack, configure) -> None:
    configure(GENESYS_REGION="not-a-region", GENESYS_API_BASE_URL=None, GENESYS_LOGIN_BASE_URL=None)

    response = stack.post("/api/calls", {"to": "+12125550199"})

    assert response.status_code == 500
    problem = response.json()
    assert problem["code"] == "configuration_error"
    assert "GENESYS_REGION" in problem["detail"]
    assert "emulator-client-secret" not in response.text
    assert stack.genesys.requests() == []
