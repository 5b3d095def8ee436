"""The webhook secrets shared with HMAC senders: current and, during a rotation, previous.

Read through a callable (settings or Key Vault); a mismatch re-reads them at most once a minute, so a rotation
is picked up without letting bad requests hammer Key Vault.
"""

from __future__ import annotations

import time
from collections.abc import Callable

SECRET_REFRESH_SECONDS = 60.0


class SharedSecrets:
    """`read(refresh)` gives the current secret, then the previous one during a rotation."""

    def __init__(self, read: Callable[[bool], list[str]], *, clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self._clock = clock
        self._refreshed_at = float("-inf")

    def any_matches(self, matches: Callable[[str], bool]) -> bool:
        """Whether `matches` holds for a secret; on a mismatch the secrets are re-read (rate-limited) once."""
        if any(matches(secret) for secret in self._read(False)):
            return True
        if self._clock() - self._refreshed_at > SECRET_REFRESH_SECONDS:
            self._refreshed_at = self._clock()
            return any(matches(secret) for secret in self._read(True))
        return False
