"""The composition root: builds the settings and clients once per worker process.

Built lazily on the first request, so a bad setting becomes a `configuration_error` answer instead of a
worker that fails to start, and is cached so a warm instance reuses its pooled connections and tokens.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from shared.caller_ids import CallerIds
from shared.calls import CallService
from shared.config import Settings, load_settings
from shared.genesys import GenesysClient
from shared.secrets import KeyVaultSecrets, SecretSource, StaticSecrets


@dataclass(frozen=True)
class Services:
    settings: Settings
    secrets: SecretSource
    genesys: GenesysClient
    caller_ids: CallerIds
    calls: CallService


@functools.cache
def services() -> Services:
    settings = load_settings()
    secrets: SecretSource
    if settings.key_vault_url:
        secrets = KeyVaultSecrets(
            settings.key_vault_url, verify_challenge_resource=settings.key_vault_verify_challenge_resource
        )
    else:
        secrets = StaticSecrets({settings.client_secret_name: settings.client_secret})
    genesys = GenesysClient(
        api_base_url=settings.api_base_url,
        login_base_url=settings.login_base_url,
        client_id=settings.client_id,
        client_secret=lambda refresh: secrets.get(settings.client_secret_name, refresh=refresh),
        connect_timeout=settings.connect_timeout_seconds,
        read_timeout=settings.read_timeout_seconds,
    )
    caller_ids = CallerIds(settings, genesys)
    return Services(settings, secrets, genesys, caller_ids, CallService(settings, caller_ids, genesys))
