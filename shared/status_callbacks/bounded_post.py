"""One POST to a status-callback receiver, bounded as a whole, whose answer is the receiver's final status.

Timeouts bound each read, not their sum: a receiver sending a byte every few seconds would hold the attempt, and
the worker's thread, as long as it liked (and past 5 minutes its step is taken for lost and run again). The
attempt's socket is shut after ATTEMPT_SECONDS, through a duplicate of it taken as soon as it is connected (before
TLS, which hands the socket to another object), since urllib3 makes and pools connections deep inside `requests`.
An attempt whose time runs out while it is still connecting (a slow name lookup, addresses that do not answer)
is cut as soon as its socket exists: what cannot be cut is the lookup and the connect timeout per address.

The address connected to is checked, not only the URL's host name: a name is allowed, not what its DNS answers.
An attempt that reached the platform's metadata and identity endpoints (link-local, and Azure's 168.63.129.16) or
an address no receiver has (unspecified, multicast, reserved), or the instance itself (loopback) where loopback
receivers are not allowed (in Azure), is ended before a byte is sent, TLS's included. Private addresses stay
allowed: a receiver inside the app's virtual network has one.

http.client passes over only `100 Continue`: a `102 Processing` or `103 Early Hints` before the receiver's 200 was
read as its answer. Every interim answer but `101 Switching Protocols` is passed over here.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import threading

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from shared.outbound import NoRedirectSession

ATTEMPT_SECONDS = 10.0
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")  # 0.0.0.0 and its neighbours reach the host itself on Linux
_AZURE_PLATFORM = ipaddress.IPv4Address("168.63.129.16")  # the host node's virtual IP (DNS, health probes)


class AttemptCut(Exception):
    """The attempt outlived ATTEMPT_SECONDS and its connection was shut: whatever status came does not count."""


class AddressNotAllowed(Exception):
    """The receiver's name led to an address of the instance or the platform: nothing was sent."""


def is_receiver_address(address: str, *, loopback_allowed: bool) -> bool:
    """Whether a receiver may be at `address`: not link-local, Azure's platform address, unspecified, multicast or
    reserved, nor loopback unless allowed (an IPv4 address written as IPv6 is judged as IPv4)."""
    ip = ipaddress.ip_address(address.partition("%")[0])  # without an IPv6 zone
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback or (isinstance(ip, ipaddress.IPv4Address) and ip in _THIS_NETWORK):
        return loopback_allowed
    return not (ip.is_link_local or ip.is_unspecified or ip.is_multicast or ip.is_reserved or ip == _AZURE_PLATFORM)


class _Attempt:
    current = threading.local()  # the attempt this thread is making, for its connection to hand its socket to

    def __init__(self, loopback_allowed: bool) -> None:
        self.loopback_allowed = loopback_allowed
        self._lock = threading.Lock()
        self._handle: socket.socket | None = None  # a duplicate of the connection's socket: shut, so is the socket
        self._finished = False
        self.was_cut = False

    def watch(self, sock: socket.socket) -> None:
        """The attempt's socket, once connected; shut at once when the attempt's time is already over."""
        with self._lock:
            if self._handle is not None or self._finished:
                return
            self._handle = socket.fromfd(sock.fileno(), sock.family, sock.type)
            if self.was_cut:
                self._shut()

    def cut(self) -> None:
        """The attempt's time is over: shut its socket, so a blocked read returns at once, or, still connecting,
        the socket it gets. Nothing once the answer is in."""
        with self._lock:
            if self._finished:
                return
            self.was_cut = True
            self._shut()

    def _shut(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):  # closed meanwhile
                self._handle.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        """The answer is in: from here on the connection may serve another attempt, and is never cut."""
        with self._lock:
            self._finished = True
            if self._handle is not None:
                self._handle.close()  # the duplicate only


class _FinalResponse(http.client.HTTPResponse):
    def _read_status(self) -> tuple[str, int, str]:
        """`begin` reads the status line here, and passes over 100 only (unchanged since Python 3.0)."""
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]  # not in typeshed
            if not 100 <= status < 200 or status == 101:
                return version, status, reason
            http.client.parse_headers(self.fp)  # the interim answer's headers; the final answer follows


def _watched(sock: socket.socket) -> None:
    attempt = getattr(_Attempt.current, "attempt", None)
    if attempt is None:
        return
    if not is_receiver_address(sock.getpeername()[0], loopback_allowed=attempt.loopback_allowed):
        sock.close()
        raise AddressNotAllowed("the receiver's name leads to an address of the instance or the platform")
    attempt.watch(sock)


class _WatchedHTTPConnection(HTTPConnection):
    response_class = _FinalResponse

    def _new_conn(self) -> socket.socket:
        """The connected socket, before TLS: the attempt watches it from here. Every attempt connects anew: closing
        an answer that was not read (`post`) closes its connection, so the pool never hands a live one out again."""
        sock = super()._new_conn()
        _watched(sock)
        return sock


class _WatchedHTTPSConnection(_WatchedHTTPConnection, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class BoundedPoster:
    """Pooled connections to receivers, no proxies from the environment, no redirect followed or read."""

    def __init__(self, *, loopback_allowed: bool) -> None:
        self._loopback_allowed = loopback_allowed
        self._session = NoRedirectSession()
        adapter = HTTPAdapter()
        adapter.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: tuple[float, float]) -> int:
        """The final status of one POST; raises what broke it (`AttemptCut` past ATTEMPT_SECONDS)."""
        attempt = _Attempt.current.attempt = _Attempt(self._loopback_allowed)
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
        except Exception:
            if attempt.was_cut:  # the shut socket broke the handshake or the request
                raise AttemptCut(f"no whole answer in {ATTEMPT_SECONDS:.0f} s") from None
            raise
        finally:
            attempt.finish()  # before the connection goes back to the pool
            limit.cancel()
            _Attempt.current.attempt = None
        response.close()
        if attempt.was_cut:  # http.client takes a shut socket for the end of the headers
            raise AttemptCut(f"no whole answer in {ATTEMPT_SECONDS:.0f} s")
        return response.status_code
