"""One POST to a status-callback receiver, bounded as a whole, whose answer is the receiver's final status.

Timeouts bound each read, not their sum: a receiver sending a byte every few seconds would hold the attempt, and
the worker's thread, as long as it liked (and past 5 minutes its step is taken for lost and run again). The
attempt's connection is shut after ATTEMPT_SECONDS; the connection names itself to the attempt as it sends, since
urllib3 hands out pooled connections deep inside `requests`.

http.client passes over only `100 Continue`: a `102 Processing` or `103 Early Hints` before the receiver's 200 was
read as its answer. Every interim answer but `101 Switching Protocols` is passed over here.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from shared.outbound import NoRedirectSession

ATTEMPT_SECONDS = 10.0


class AttemptCut(Exception):
    """The attempt outlived ATTEMPT_SECONDS and its connection was shut: whatever status came does not count."""


class _Attempt:
    current = threading.local()  # the attempt this thread is making, for its connection to name itself to

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connection: HTTPConnection | None = None
        self._finished = False
        self.was_cut = False

    def name(self, connection: HTTPConnection) -> None:
        with self._lock:
            self._connection = connection

    def cut(self) -> None:
        """Shut the connection's socket, so its blocked read returns at once. Nothing once the answer is in, or
        while no socket exists yet (a slow name lookup: the connect timeout follows it)."""
        with self._lock:
            sock = self._connection.sock if self._connection is not None else None
            if self._finished or sock is None:
                return
            with contextlib.suppress(OSError):  # closed meanwhile
                sock.shutdown(socket.SHUT_RDWR)
            self.was_cut = True

    def finish(self) -> None:
        """The answer is in: from here on the connection may serve another attempt, and is never cut."""
        with self._lock:
            self._finished = True


class _FinalResponse(http.client.HTTPResponse):
    def _read_status(self) -> tuple[str, int, str]:
        """`begin` reads the status line here, and passes over 100 only (unchanged since Python 3.0)."""
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]  # not in typeshed
            if not 100 <= status < 200 or status == 101:
                return version, status, reason
            http.client.parse_headers(self.fp)  # the interim answer's headers; the final answer follows


class _NamedHTTPConnection(HTTPConnection):
    response_class = _FinalResponse

    def request(self, *args: Any, **kwargs: Any) -> None:
        attempt = getattr(_Attempt.current, "attempt", None)
        if attempt is not None:
            attempt.name(self)
        super().request(*args, **kwargs)


class _NamedHTTPSConnection(_NamedHTTPConnection, HTTPSConnection):
    pass


class _NamedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _NamedHTTPConnection


class _NamedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _NamedHTTPSConnection


class BoundedPoster:
    """Pooled connections to receivers, no proxies from the environment, no redirect followed or read."""

    def __init__(self) -> None:
        self._session = NoRedirectSession()
        adapter = HTTPAdapter()
        adapter.poolmanager.pool_classes_by_scheme = {"http": _NamedHTTPPool, "https": _NamedHTTPSPool}
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: tuple[float, float]) -> int:
        """The final status of one POST; raises what broke it (`AttemptCut` past ATTEMPT_SECONDS)."""
        attempt = _Attempt.current.attempt = _Attempt()
        limit = threading.Timer(ATTEMPT_SECONDS, attempt.cut)
        limit.daemon = True
        limit.start()
        try:
            response = self._session.post(
                url,
                data=body,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,  # a redirect could lead anywhere: only the validated URL is called
                stream=True,  # the status line is the answer: the body is never downloaded
            )
        finally:
            attempt.finish()  # before the connection goes back to the pool
            limit.cancel()
            _Attempt.current.attempt = None
        response.close()
        if attempt.was_cut:  # http.client takes a shut socket for the end of the headers
            raise AttemptCut(f"no whole answer in {ATTEMPT_SECONDS:.0f} s")
        return response.status_code
