"""The webhook secrets' lifetime in memory: a deleted secret stops matching, and a rotation reaches the signer.

A narrow unit test: the rule is about minutes passing, so the clock and the vault are stand-ins here; the
routes' use of the secrets is tested through HTTP in tests/test_webhooks.py.
"""

from __future__ import annotations

import pytest

from shared.errors import Problem
from shared.webhooks.shared_secrets import SECRET_MAX_AGE_SECONDS, SECRET_REFRESH_SECONDS, SharedSecrets
from tests.conftest import Clock


class Vault:
    """Key Vault behind the app's cache: `read(False)` answers what the last `read(True)` read."""

    def __init__(self, *secrets: str) -> None:
        self.secrets = list(secrets)
        self.reads = 0
        self.down = False
        self.refusing = False
        self._cached: list[str] = []

    def read(self, refresh: bool) -> list[str]:
        if refresh or not self._cached:
            self.reads += 1
            if self.down:
                raise Problem("key_vault_unavailable", "Key Vault could not be reached.")
            if self.refusing:
                raise Problem("key_vault_forbidden", "Key Vault refused to read secret 'webhook-secret'.")
            self._cached = list(self.secrets)
        return self._cached


def test_a_previous_secret_deleted_from_the_vault_stops_matching_while_the_current_keeps_matching() -> None:
    vault, clock = Vault("new", "old"), Clock()
    secrets = SharedSecrets(vault.read, clock=clock)
    assert secrets.any_matches(lambda s: s == "old")  # during the rotation

    vault.secrets = ["new"]  # the rotation ends: the previous secret is deleted
    for _ in range(10):  # the legitimate sender's requests go on matching the current secret
        clock.now += 10
        assert secrets.any_matches(lambda s: s == "new")
    clock.now += SECRET_REFRESH_SECONDS

    assert not secrets.any_matches(lambda s: s == "old")


def test_the_signing_secret_follows_a_rotation_within_the_maximum_age() -> None:
    vault, clock = Vault("first"), Clock()
    secrets = SharedSecrets(vault.read, clock=clock)
    assert secrets.current() == "first"
    vault.secrets = ["second", "first"]

    clock.now += SECRET_MAX_AGE_SECONDS - 1
    before = secrets.current()
    clock.now += 2

    assert (before, secrets.current()) == ("first", "second")


def test_mismatches_re_read_at_most_once_a_refresh_interval() -> None:
    vault, clock = Vault("current"), Clock()
    secrets = SharedSecrets(vault.read, clock=clock)

    for _ in range(50):
        assert not secrets.any_matches(lambda s: s == "forged")
    clock.now += SECRET_REFRESH_SECONDS + 1
    assert not secrets.any_matches(lambda s: s == "forged")

    assert vault.reads == 2  # the first use, then one after the interval


def test_a_key_vault_outage_at_a_periodic_re_read_goes_on_with_the_secrets_last_read() -> None:
    vault, clock = Vault("current"), Clock()
    secrets = SharedSecrets(vault.read, clock=clock)
    assert secrets.any_matches(lambda s: s == "current")
    vault.down = True
    clock.now += SECRET_MAX_AGE_SECONDS + 1

    during = [secrets.any_matches(lambda s: s == "current") for _ in range(20)]

    assert all(during)  # valid signatures still verify
    assert vault.reads == 2  # one failed re-read, then none for a minute
    clock.now += SECRET_REFRESH_SECONDS + 1
    vault.down = False
    assert secrets.any_matches(lambda s: s == "current")
    assert vault.reads == 3


def test_with_nothing_read_yet_a_key_vault_outage_is_the_answer() -> None:
    vault = Vault("current")
    vault.down = True

    with pytest.raises(Problem) as raised:
        SharedSecrets(vault.read, clock=Clock()).any_matches(lambda s: s == "current")

    assert raised.value.code == "key_vault_unavailable"


def test_during_a_key_vault_outage_a_previous_secret_still_verifies_and_mismatches_do_not_hammer_it() -> None:
    vault, clock = Vault("new", "old"), Clock()
    secrets = SharedSecrets(vault.read, clock=clock)
    assert secrets.any_matches(lambda s: s == "new")
    vault.down = True
    clock.now += SECRET_REFRESH_SECONDS + 1

    previous = [secrets.any_matches(lambda s: s == "old") for _ in range(10)]
    forged = [secrets.any_matches(lambda s: s == "forged") for _ in range(10)]

    assert all(previous) and not any(forged)
    assert vault.reads == 2  # the first read, then one failed re-read for all twenty


def test_a_secret_key_vault_refuses_to_give_is_not_gone_past() -> None:
    """Disabled in the vault (a revocation), the secret is refused with 403, not unreachable: signatures made
    with it must stop verifying, not go on from the copy read before."""
    vault, clock = Vault("leaked"), Clock()
    secrets = SharedSecrets(vault.read, clock=clock)
    assert secrets.any_matches(lambda s: s == "leaked")
    vault.refusing = True
    clock.now += SECRET_MAX_AGE_SECONDS + 1

    with pytest.raises(Problem) as raised:
        secrets.any_matches(lambda s: s == "leaked")
    later = []
    for _ in range(6):  # the next requests, before the next re-read is due: the copy read before is no fallback
        clock.now += 10
        with pytest.raises(Problem) as refused:
            secrets.any_matches(lambda s: s == "leaked")
        later.append(refused.value.code)
    vault.refusing = False  # enabled again
    clock.now += SECRET_REFRESH_SECONDS

    assert raised.value.code == "key_vault_forbidden"
    assert later == ["key_vault_forbidden"] * 6
    assert secrets.any_matches(lambda s: s == "leaked")
