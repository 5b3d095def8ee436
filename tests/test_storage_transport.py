"""The storage clients' transport: one pooled connection per worker thread, and the proxy settings still honoured.

`shared.storage` gives the Table and Queue clients a session of its own (azure-core's default rereads the whole
environment on every request and pools 10 connections). A loopback forward proxy in front of Azurite sees
every request and every connection the app's client opens. Without a proxy, a `REQUESTS_CA_BUNDLE` must still be
trusted: tests/test_identity_storage.py runs the app against Azurite over HTTPS with only that bundle.
"""

from __future__ import annotations

import http.client
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from emulators.azurite import Azurite
from emulators.one_write import OneWriteHandler
from shared.storage import POOL_CONNECTIONS, StorageAccount

THREADS = 20  # more than requests' default pool of 10, fewer than POOL_CONNECTIONS
INSERTS_PER_THREAD = 5
_HOP_BY_HOP = {"connection", "proxy-connection", "keep-alive", "transfer-encoding", "content-length"}


class ForwardProxy(ThreadingHTTPServer):
    """A plain-HTTP forward proxy on 127.0.0.1 that counts the connections it accepts and the requests it relays.

    Entity inserts are relayed in rounds of `THREADS` (a barrier), so that every round really has that many
    requests in flight, each on a connection of its own."""

    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 would drop some of 20 simultaneous connections

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Relay)
        self.connections = 0
        self.relayed = 0
        self.lock = threading.Lock()
        self.round = threading.Barrier(THREADS, timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Relay(OneWriteHandler):
    protocol_version = "HTTP/1.1"
    server: ForwardProxy

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""

    def _relay(self) -> None:
        target = urlsplit(self.path)  # a proxy's request line carries the absolute URL
        if self.command == "POST" and not target.path.endswith("/Tables"):
            self.server.round.wait()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection(target.hostname or "", target.port, timeout=10)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            path = target.path + (f"?{target.query}" if target.query else "")
            upstream.request(self.command, path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
        finally:
            upstream.close()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        with self.server.lock:
            self.server.relayed += 1

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_MERGE = _relay


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    server = ForwardProxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_a_proxy_in_the_environment_is_used_and_threads_share_a_pool(
    azurite: Azurite, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
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
    assert proxy.relayed >= 1 + THREADS * INSERTS_PER_THREAD + 1  # the table, the inserts, the listing
    # Every burst finds its connections pooled: with requests' default pool of 10, half of them were thrown
    # away after every burst and opened again (60 connections here).
    assert THREADS < POOL_CONNECTIONS
    assert proxy.connections <= THREADS
