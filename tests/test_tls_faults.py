"""TLS that fails after a create went out must count as "may have been placed", never as "not sent"; a
connection that never opened (a handshake that stalls, a proxy that refuses the tunnel) sent nothing.

A TLS front on 127.0.0.1 (certificate from the Key Vault emulator's CA, which the stack's REQUESTS_CA_BUNDLE
trusts) relays the Genesys API to the emulator. For a create it relays the request, so Genesys has the call,
then answers with a corrupt TLS record, as a failing TLS-inspecting firewall may: the client sees an SSLError
after sending. Treated as a handshake failure it was sent again, and rang the callee up to three times.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import TALLY, Stack
from tests.loopback_relay import RelayHandler, answer, forward, serving

CREATE_PATH = "/api/v2/conversations/calls/user/"
# An application-data record (type 23, TLS 1.2 framing) whose content no key decrypts: "bad record mac".
CORRUPT_RECORD = b"\x17\x03\x03\x00\x20" + bytes(range(32))


class TlsFront(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, certificate: Path, key: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Front)
        self.upstream = urlsplit(upstream)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certificate, key)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.corrupted = 0

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.server_address[1]}"


class _Front(RelayHandler):
    server: TlsFront

    def _relay(self) -> None:
        upstream = self.server.upstream
        status, headers, body = forward(self, upstream.hostname or "", upstream.port, self.path)
        if self.command == "POST" and self.path.startswith(CREATE_PATH):  # Genesys has the call now
            self.server.corrupted += 1
            raw = socket.socket(fileno=os.dup(self.connection.fileno()))  # beneath TLS: the bytes go out as is
            try:
                raw.sendall(CORRUPT_RECORD)
            finally:
                raw.close()
            self.close_connection = True
            return
        answer(self, status, headers, body)

    do_GET = do_POST = _relay


@pytest.fixture
def tls_front(stack: Stack, tmp_path: Path) -> Iterator[TlsFront]:
    certificate, key = stack.vault.issue_server_certificate(tmp_path)
    with serving(TlsFront(stack.genesys.base_url, certificate, key)) as front:
        yield front


def test_a_tls_failure_after_the_create_went_out_is_never_sent_again(
    stack: Stack, configure: Callable[..., None], tls_front: TlsFront
) -> None:
    configure(GENESYS_API_BASE_URL=tls_front.base_url)  # the token still comes from the emulator directly
    call = {"to": "+12125550199", "from": "+13175550110"}

    first = stack.post("/api/calls", call, headers={"Idempotency-Key": "tls-1"})
    retry = stack.post("/api/calls", call, headers={"Idempotency-Key": "tls-1"})

    TALLY.fault_scenarios += 1
    TALLY.duplicate_creates += max(0, len(stack.creates()) - 1)
    assert first.status_code == 504, first.text
    assert first.json()["code"] == "genesys_timeout"  # outcome unknown: the call may exist
    assert retry.json()["code"] == "genesys_timeout"  # the stored answer, not a second try
    assert tls_front.corrupted == 1
    assert len(stack.creates()) == 1, "a create that reached Genesys was sent again"


class SilentListener:
    """Accepts connections on 127.0.0.1, keeps what each sends first, and answers with `reply` (nothing: the
    client waits) before closing; a stalled TLS edge, or a proxy refusing every CONNECT."""

    def __init__(self, reply: bytes | None = None) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.reply = reply
        self.received: list[bytes] = []
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    def _serve(self) -> None:
        with contextlib.suppress(OSError):  # the socket closes when the test ends
            while True:
                connection, _ = self.socket.accept()
                self.received.append(connection.recv(65536))
                if self.reply is None:
                    self.held.append(connection)
                else:
                    connection.sendall(self.reply)
                    connection.close()

    def close(self) -> None:
        for connection in [*self.held, self.socket]:
            connection.close()


@pytest.fixture
def listener() -> Iterator[Callable[..., SilentListener]]:
    started: list[SilentListener] = []

    def start(reply: bytes | None = None) -> SilentListener:
        started.append(SilentListener(reply))
        return started[-1]

    yield start
    for each in started:
        each.close()


def _sent_nothing_then_placed(stack: Stack, configure: Callable[..., None], key: str) -> None:
    """The create failed before a byte of it could leave: 503, nothing stored as "may have been placed" (a replay
    of that would leave the callee never called), and with Genesys reachable again the same request places it."""
    call = {"to": "+12125550199"}

    failed = stack.post("/api/calls", call, headers={"Idempotency-Key": key})

    TALLY.fault_scenarios += 1
    assert failed.status_code == 503, failed.text
    assert failed.json()["code"] == "genesys_unavailable" and "outcomeUnknown" not in failed.json()
    configure()
    placed = stack.post("/api/calls", call, headers={"Idempotency-Key": key})
    assert placed.status_code == 201, placed.text
    assert len(stack.creates()) == 1


def test_an_edge_whose_tls_handshake_stalls_sent_nothing_and_the_call_is_placed_on_a_retry(
    stack: Stack, configure: Callable[..., None], listener: Callable[..., SilentListener]
) -> None:
    """urllib3 reports a handshake that times out as a read timeout: it was taken for a create sent and lost."""
    edge = listener()
    configure(
        GENESYS_API_BASE_URL=f"https://127.0.0.1:{edge.port}",
        GENESYS_CONNECT_TIMEOUT_SECONDS="0.3",
        GENESYS_READ_TIMEOUT_SECONDS="0.3",
    )

    _sent_nothing_then_placed(stack, configure, "handshake-1")

    assert edge.received and all(first[:1] == b"\x16" for first in edge.received)  # TLS handshakes, no HTTP


def test_a_proxy_that_refuses_the_tunnel_sent_nothing_and_the_call_is_placed_on_a_retry(
    stack: Stack, configure: Callable[..., None], listener: Callable[..., SilentListener]
) -> None:
    """The create goes only through an open tunnel: a CONNECT answered 407 was taken for a create sent and lost."""
    proxy = listener(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
    configure(  # the emulators on 127.0.0.1 are reached direct; only Genesys goes through the proxy
        GENESYS_API_BASE_URL="https://genesys.invalid",
        HTTPS_PROXY=f"http://127.0.0.1:{proxy.port}",
        NO_PROXY="127.0.0.1",
    )

    _sent_nothing_then_placed(stack, configure, "tunnel-1")

    assert proxy.received and all(first.startswith(b"CONNECT genesys.invalid:443 ") for first in proxy.received)
