"""The webhook secrets shared with HMAC senders: current and, during a rotation, previous.

Read through a callable (settings or Key Vault). A read is kept at most `SECRET_MAX_AGE_SECONDS`, so a secret
deleted from the vault (a rotation's end, a revocation) stops being accepted, and the one our status callbacks
are signed with follows a rotation, even when every signature keeps matching. A mismatch, or a match by the
previous secret only, re-reads them at most once a `SECRET_REFRESH_SECONDS`, so a rotation is picked up at
once without letting bad requests hammer Key Vault.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from shared.errors import Problem
from shared.logs import get_logger

log = get_logger(__name__)

SECRET_REFRESH_SECONDS = 60.0
SECRET_MAX_AGE_SECONDS = 300.0


class SharedSecrets:
    """`read(refresh)` gives the current secret, then the previous one during a rotation."""

    def __init__(self, read: Callable[[bool], list[str]], *, clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self._clock = clock
        self._refreshed_at = float("-inf")

    def current(self) -> str:
        """The secret to sign with: the current one, re-read once the last read is too old."""
        return self._secrets()[0]

    def any_matches(self, matches: Callable[[str], bool]) -> bool:
        """Whether `matches` holds for a secret still in force."""
        secrets = self._secrets()
        if matches(secrets[0]):
            return True
        if self._clock() - self._refreshed_at > SECRET_REFRESH_SECONDS:
            secrets = self._refresh()  # the secrets may have rotated, or the previous one been deleted
        return any(matches(secret) for secret in secrets)

    def _secrets(self) -> list[str]:
        if self._clock() - self._refreshed_at > SECRET_MAX_AGE_SECONDS:
            try:
                return self._refresh()
            except Problem:
                if self._refreshed_at == float("-inf"):
                    raise  # nothing was ever read: there is nothing to go on with
                # Key Vault is down: go on with the secrets last read, and try again in a minute.
                self._refreshed_at = self._clock() - SECRET_MAX_AGE_SECONDS + SECRET_REFRESH_SECONDS
                log.warning("Could not re-read the webhook secrets; using the ones last read")
        return self._read(False)

    def _refresh(self) -> list[str]:
        secrets = self._read(True)
        self._refreshed_at = self._clock()
        return secrets
