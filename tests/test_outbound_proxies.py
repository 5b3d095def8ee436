"""Outbound sessions (`shared.outbound`): the environment's proxy is used, `NO_PROXY` is honoured, and a burst of
concurrent storage requests finds its connections pooled.

A loopback forward proxy sees every request and every connection that goes through it. The sessions read the
environment when their client is built, so each test sets it first and then builds the client (or the stack's
services, through `configure`). Without a proxy, a `REQUESTS_CA_BUNDLE` must still be trusted:
tests/test_identity_storage.py runs the app against Azurite over HTTPS with only that bundle.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from emulators.azurite import Azurite
from shared import outbound
from shared.outbound import POOL_CONNECTIONS
from shared.storage import StorageAccount
from tests.conftest import Receiver, Stack
from tests.loopback_relay import RelayHandler, answer, forward, serving

THREADS = 20  # more than requests' default pool of 10, fewer than POOL_CONNECTIONS
INSERTS_PER_THREAD = 5
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


class ForwardProxy(ThreadingHTTPServer):
    """A plain-HTTP forward proxy on 127.0.0.1 that counts the connections it accepts and the URLs it relays.

    With `round_size`, entity inserts are relayed in rounds of that many (a barrier), so that every round really
    has that many requests in flight, each on a connection of its own."""

    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 would drop some of 20 simultaneous connections

    def __init__(self, round_size: int | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Relay)
        self.connections = 0
        self.relayed: list[str] = []
        self.lock = threading.Lock()
        self.round = threading.Barrier(round_size, timeout=30) if round_size else None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Relay(RelayHandler):
    server: ForwardProxy

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def _relay(self) -> None:
        target = urlsplit(self.path)  # a proxy's request line carries the absolute URL
        if self.server.round and self.command == "POST" and not target.path.endswith("/Tables"):
            self.server.round.wait()
        path = target.path + (f"?{target.query}" if target.query else "")
        answer(self, *forward(self, target.hostname or "", target.port, path))
        with self.server.lock:
            self.server.relayed.append(f"{self.command} {self.path}")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_MERGE = _relay


@pytest.fixture
def start_proxy() -> Iterator[Callable[..., ForwardProxy]]:
    with contextlib.ExitStack() as started:
        yield lambda round_size=None: started.enter_context(serving(ForwardProxy(round_size)))


@pytest.fixture
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.mark.usefixtures("no_proxy_settings")
def test_storage_goes_through_the_proxy_and_a_burst_finds_its_connections_pooled(
    azurite: Azurite, start_proxy: Callable[..., ForwardProxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = start_proxy(round_size=THREADS)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)  # Azurite here speaks plain HTTP
    table = StorageAccount(connection_string=azurite.connection_string).table(f"proxied{uuid.uuid4().hex[:8]}")
    table.create_table()
    done_with_round = threading.Barrier(THREADS, timeout=30)

    def insert(_: int) -> None:
        for _ in range(INSERTS_PER_THREAD):  # bursts: every connection is back in the pool before the next
            table.create_entity({"PartitionKey": "p", "RowKey": uuid.uuid4().hex})
            done_with_round.wait()

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(insert, range(THREADS)))

    assert len(list(table.list_entities())) == THREADS * INSERTS_PER_THREAD
    assert len(proxy.relayed) >= 1 + THREADS * INSERTS_PER_THREAD + 1  # the table, the inserts, the listing
    # Every burst finds its connections pooled: with requests' default pool of 10, half of them were thrown
    # away after every burst and opened again (60 connections here).
    assert THREADS < POOL_CONNECTIONS
    assert proxy.connections <= THREADS


@pytest.mark.usefixtures("no_proxy_settings")
def test_genesys_is_reached_through_the_proxy_the_environment_names(
    stack: Stack, configure: Callable[..., None], start_proxy: Callable[..., ForwardProxy]
) -> None:
    proxy = start_proxy()
    configure(HTTP_PROXY=proxy.url)  # the emulators speak plain HTTP; the services are built anew

    response = stack.post("/api/calls", {"to": "+12125550199"})

    assert response.status_code == 201, response.text
    genesys = stack.genesys.base_url
    assert f"POST {genesys}/oauth/token" in proxy.relayed
    assert any(line.startswith(f"POST {genesys}/api/v2/conversations/calls/user/") for line in proxy.relayed)
    assert len(stack.creates()) == 1


@pytest.mark.usefixtures("no_proxy_settings")
def test_no_proxy_sends_the_hosts_it_names_direct(
    stack: Stack, configure: Callable[..., None], start_proxy: Callable[..., ForwardProxy]
) -> None:
    proxy = start_proxy()
    configure(HTTP_PROXY=proxy.url, NO_PROXY="127.0.0.1")

    response = stack.post("/api/calls", {"to": "+12125550199"})

    assert response.status_code == 201, response.text
    assert (proxy.connections, proxy.relayed) == (0, [])


def test_an_outbound_session_sends_no_cookie_a_receiver_set(receiver: Receiver) -> None:
    """Every status callback goes through one session: a cookie one receiver set went with every later callback
    to its host, other callers' flows on a shared Power Automate host too (60 cookies made a 60 KB header that
    front ends refuse with 431, and each event was given up)."""
    receiver.answers = [
        b"HTTP/1.1 200 OK\r\nSet-Cookie: tenant=a; Path=/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    ]
    session = outbound.session(receiver.url)

    first = session.post(receiver.url, data=b"{}", timeout=5)
    session.post(receiver.url, data=b"{}", timeout=5)

    assert first.headers["Set-Cookie"] == "tenant=a; Path=/"  # the receiver did set it
    assert "cookie" not in receiver.received[1][0]
