"""Every loopback server answers in one socket write.

Two writes per answer (headers, then body) stall each answer by about 40 ms on loopback (Nagle's algorithm
holding the second segment, the client delaying its acknowledgement): the emulators then measure themselves,
not the app. This counts, on the server side, the socket writes of one real answer over 127.0.0.1 for each
server; it asserts no timing. docs/benchmarks.md shows what the stall cost.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from emulators.genesys import DEMO_USER_ID, Fault
from tests.conftest import HTTP_TIMEOUT, Stack


class ServerWrites:
    """Socket writes made on connections accepted by the watched servers (counted by their local port).

    Every Python send path is wrapped: `socket.send` (buffered file writes), `socket.sendall` (unbuffered and
    one-write writers) and their TLS versions; a TLS `sendall` calls `send`, so nested calls count once.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.ports: set[int] = set()
        self.writes: Counter[int] = Counter()
        self._depth = threading.local()
        for cls in (socket.socket, ssl.SSLSocket):
            for name in ("send", "sendall"):
                monkeypatch.setattr(cls, name, self._counting(getattr(cls, name)))

    def _counting(self, send: Callable[..., Any]) -> Callable[..., Any]:
        def counted(sock: socket.socket, *args: Any, **kwargs: Any) -> Any:
            depth = getattr(self._depth, "value", 0)
            if depth == 0:
                port = sock.getsockname()[1]
                if port in self.ports:
                    self.writes[port] += 1
            self._depth.value = depth + 1
            try:
                return send(sock, *args, **kwargs)
            finally:
                self._depth.value = depth

        return counted

    def of_one_answer(self, url: str, answer: Callable[[], requests.Response]) -> tuple[int, int]:
        """(status, server writes) of one request to the server at `url`, read to its end."""
        port = urlsplit(url).port
        assert port is not None
        self.ports.add(port)
        self.writes[port] = 0
        response = answer()
        response.content  # noqa: B018  (read the whole body: every write the answer took has happened)
        return response.status_code, self.writes[port]


@pytest.fixture
def server_writes(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerWrites]:
    yield ServerWrites(monkeypatch)


def _token(stack: Stack) -> str:
    answer = requests.post(
        f"{stack.genesys.base_url}/oauth/token",
        auth=(stack.genesys.client_id, stack.genesys.client_secret),
        data={"grant_type": "client_credentials"},
        timeout=HTTP_TIMEOUT,
    )
    return f"Bearer {answer.json()['access_token']}"


def test_genesys_emulator_answers_in_one_write(stack: Stack, server_writes: ServerWrites) -> None:
    base, session = stack.genesys.base_url, stack.session
    bearer = {"Authorization": _token(stack)}
    stack.genesys.inject("create_call", Fault(status=429, retry_after=1))
    answers = {
        "token": lambda: session.post(
            f"{base}/oauth/token",
            auth=(stack.genesys.client_id, stack.genesys.client_secret),
            data={"grant_type": "client_credentials"},
            timeout=HTTP_TIMEOUT,
        ),
        "rate limited create (fault)": lambda: session.post(
            f"{base}/api/v2/conversations/calls/user/{DEMO_USER_ID}",
            json={"phoneNumber": "+12125550199", "callerId": "+13175550100"},
            headers=bearer,
            timeout=HTTP_TIMEOUT,
        ),
        "create": lambda: session.post(
            f"{base}/api/v2/conversations/calls/user/{DEMO_USER_ID}",
            json={"phoneNumber": "+12125550199", "callerId": "+13175550100"},
            headers=bearer,
            timeout=HTTP_TIMEOUT,
        ),
        "every DID (over 8 KiB)": lambda: session.get(
            f"{base}/api/v2/telephony/providers/edges/dids?pageSize=100", headers=bearer, timeout=HTTP_TIMEOUT
        ),
        "unknown route": lambda: session.get(f"{base}/api/v2/nothing", headers=bearer, timeout=HTTP_TIMEOUT),
    }
    seen = {name: server_writes.of_one_answer(base, answer) for name, answer in answers.items()}
    assert seen == {
        "token": (200, 1),
        "rate limited create (fault)": (429, 1),
        "create": (200, 1),
        "every DID (over 8 KiB)": (200, 1),
        "unknown route": (404, 1),
    }


def test_local_host_answers_in_one_write(stack: Stack, server_writes: ServerWrites) -> None:
    base = stack.host.base_url
    answers = {
        "call": lambda: stack.post("/api/calls", {"to": "+12125550123"}),
        "refused call": lambda: stack.post("/api/calls", {"to": "+12125550123", "from": "+3175550101"}),
        "OpenAPI document (large)": lambda: stack.get("/api/openapi.json"),
        "unknown route": lambda: stack.get("/api/nothing"),
    }
    seen = {name: server_writes.of_one_answer(base, answer) for name, answer in answers.items()}
    assert {name: writes for name, (_, writes) in seen.items()} == dict.fromkeys(answers, 1)
    assert seen["call"][0] == 201 and seen["refused call"][0] == 422 and seen["unknown route"][0] == 404


def test_azure_emulators_answer_in_one_write(stack: Stack, server_writes: ServerWrites) -> None:
    identity = stack.identity.environment()
    token_url = f"{identity['IDENTITY_ENDPOINT']}?resource=https://vault.azure.net&api-version=2019-08-01"
    status, writes = server_writes.of_one_answer(
        token_url,
        lambda: stack.session.get(
            token_url, headers={"X-IDENTITY-HEADER": identity["IDENTITY_HEADER"]}, timeout=HTTP_TIMEOUT
        ),
    )
    assert (status, writes) == (200, 1)

    secret_url = f"{stack.vault.vault_url}/secrets/genesys-client-secret?api-version=7.5"
    status, writes = server_writes.of_one_answer(
        secret_url, lambda: stack.session.get(secret_url, verify=stack.vault.ca_bundle_path, timeout=HTTP_TIMEOUT)
    )
    assert (status, writes) == (401, 1)  # the challenge every first Key Vault read begins with


def test_an_interim_100_continue_leaves_before_the_body_is_sent(stack: Stack) -> None:
    """The one write per answer held the interim 100 Continue until the final answer, which needs the body: a
    client that waits for it (curl, PowerShell 5.1) stalled a second on every request, as Kestrel never does."""
    body = b'{"to": "+12125550199"}'
    host = urlsplit(stack.host.base_url)
    with socket.create_connection((host.hostname, host.port), timeout=HTTP_TIMEOUT) as client:
        client.sendall(
            b"POST /api/calls/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        client.settimeout(5)  # the body is never sent unless the 100 comes: this would wait forever
        interim = client.recv(4096)
        client.sendall(body)
        client.settimeout(HTTP_TIMEOUT)
        final = b""
        while b"\r\n\r\n" not in final and (received := client.recv(4096)):
            final += received

    assert interim.startswith(b"HTTP/1.1 100 Continue\r\n"), interim
    assert final.startswith(b"HTTP/1.1 200 "), final
