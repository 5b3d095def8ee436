"""The webhook secrets shared with HMAC senders: current and, during a rotation, previous.

Read through a callable (settings or Key Vault). A read is kept at most `SECRET_MAX_AGE_SECONDS`, so a secret
deleted from the vault (a rotation's end, a revocation) stops being accepted, and the one our status callbacks
are signed with follows a rotation, even when every signature keeps matching. A signature the current secret
does not match re-reads them too. Re-reads come at most once a `SECRET_REFRESH_SECONDS`, so bad requests cannot
hammer Key Vault, and while it cannot be reached the secrets last read go on being used (a secret it refuses
to give, disabled or no longer readable, is not, for any request, until a re-read succeeds).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

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
        self._read_at = float("-inf")  # when the secrets were last read afresh from their source
        self._next_read_at = float("-inf")  # no re-read before this
        self._last: list[str] | None = None  # the secrets last read: used until a re-read is due
        self._refused: Problem | None = None  # the source refused the last re-read: nothing is in force until one works

    def current(self) -> str:
        """The secret to sign with: the current one."""
        return self._secrets()[0]

    def any_matches(self, matches: Callable[[str], bool]) -> bool:
        """Whether `matches` holds for a secret still in force."""
        secrets = self._secrets()
        if matches(secrets[0]):
            return True
        return any(matches(secret) for secret in self._re_read() or secrets)  # rotated, or previous deleted?

    def _secrets(self) -> list[str]:
        if self._refused is not None or self._clock() - self._read_at > SECRET_MAX_AGE_SECONDS:
            fresh = self._re_read()
            if fresh is not None:
                return fresh
        if self._refused is not None:  # revoked: the copy read before is no fallback, until a re-read works
            raise replace(self._refused)
        if self._last is None:  # never read: from the source's cache, else its first read
            self._last = self._read(False)
        return self._last

    def _re_read(self) -> list[str] | None:
        """The secrets read afresh; None when the last try was too recent, or the source is down (once read)."""
        now = self._clock()
        if now < self._next_read_at:
            return None
        self._next_read_at = now + SECRET_REFRESH_SECONDS
        try:
            secrets = self._read(True)
        except Problem as problem:
            # Only an outage is gone past: a secret disabled or made unreadable (403), or blanked, is revoked.
            if problem.code != "key_vault_unavailable":
                self._refused = replace(problem)  # a copy: the one raised keeps this request's frames
                raise
            if self._last is None:
                raise
            log.warning("Could not reach Key Vault to re-read the webhook secrets; using the ones last read")
            return None
        self._read_at = now
        self._last = secrets
        self._refused = None
        return secrets
