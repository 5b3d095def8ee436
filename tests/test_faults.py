"""Every fault class through the emulators: the catalog answer, inside the deadline, never a second call."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import ThreadingHTTPServer

import pytest

from emulators.azure import VaultFault
from emulators.azurite import ACCOUNT, ACCOUNT_KEY
from emulators.genesys import Fault
from shared.errors import Problem
from shared.storage import READ_TIMEOUT_SECONDS, ManagedTable, QueueSender, StorageAccount
from tests.conftest import TALLY, Stack
from tests.loopback_relay import RelayHandler, answer, read_request_body, serving

DEADLINE_SECONDS = 8  # CALL_DEADLINE_SECONDS in the test settings


@dataclass(frozen=True)
class Scenario:
    name: str
    arrange: Callable[[Stack, Callable[..., None]], None]
    status: int
    code: str | None  # None: the call is placed
    retryable: bool | None = None
    posts: int = 1  # create requests Genesys should see


def genesys(route: str, *faults: Fault) -> Callable[[Stack, Callable[..., None]], None]:
    return lambda stack, configure: stack.genesys.inject(route, *faults)


def vault(*faults: VaultFault) -> Callable[[Stack, Callable[..., None]], None]:
    return lambda stack, configure: stack.vault.inject(*faults)


def settings(**values: str) -> Callable[[Stack, Callable[..., None]], None]:
    return lambda stack, configure: configure(**values)


def rotate(stack: Stack, configure: Callable[..., None]) -> None:
    stack.genesys.rotate_secret("rotated-after-start")
    stack.vault.set_secret("genesys-client-secret", "rotated-after-start")


SCENARIOS = [
    Scenario(
        "key vault refuses connections",
        settings(KEY_VAULT_URL="https://127.0.0.1:9/"),
        503,
        "key_vault_unavailable",
        True,
        posts=0,
    ),
    Scenario(
        "key vault 503 on every try", vault(*[VaultFault(status=503)] * 3), 503, "key_vault_unavailable", True, posts=0
    ),
    Scenario("key vault slow once", vault(VaultFault(status=None, delay=0.3)), 201, None),
    Scenario(
        "key vault slower than its timeout",
        lambda s, c: (c(KEY_VAULT_READ_TIMEOUT_SECONDS="0.3"), s.vault.inject(*[VaultFault(status=None, delay=1)] * 3)),
        503,
        "key_vault_unavailable",
        True,
        posts=0,
    ),
    Scenario("key vault forbids", vault(VaultFault(status=403)), 500, "key_vault_forbidden", False, posts=0),
    Scenario("secret rotated in the vault", rotate, 201, None),
    Scenario("token endpoint 502 once", genesys("token", Fault(status=502)), 201, None),
    Scenario(
        "token endpoint 500 (not retried)",
        genesys("token", Fault(status=500)),
        503,
        "genesys_unavailable",
        True,
        posts=0,
    ),
    Scenario(
        "token endpoint 503 always",
        genesys("token", *[Fault(status=503)] * 3),
        503,
        "genesys_unavailable",
        True,
        posts=0,
    ),
    Scenario(
        "token endpoint not JSON",
        genesys("token", *[Fault(status=502, raw_body=b"<html/>")] * 3),
        503,
        "genesys_unavailable",
        True,
        posts=0,
    ),
    Scenario(
        "429 with Retry-After, then OK", genesys("create_call", Fault(status=429, retry_after=1)), 201, None, posts=2
    ),
    Scenario("429 without Retry-After, then OK", genesys("create_call", Fault(status=429)), 201, None, posts=2),
    Scenario(
        "429 past the deadline",
        genesys("create_call", Fault(status=429, retry_after=60)),
        429,
        "genesys_rate_limited",
        True,
    ),
    # A create sent and not answered: the call may exist, so no retry can do better than replay this answer
    Scenario("502 on create", genesys("create_call", Fault(status=502)), 503, "genesys_unavailable", False),
    Scenario("503 on create", genesys("create_call", Fault(status=503)), 503, "genesys_unavailable", False),
    Scenario("504 on create", genesys("create_call", Fault(status=504)), 504, "genesys_timeout", False),
    Scenario(
        "connection refused",
        settings(GENESYS_API_BASE_URL="http://127.0.0.1:9", GENESYS_LOGIN_BASE_URL="http://127.0.0.1:9"),
        503,
        "genesys_unavailable",
        True,
        posts=0,
    ),
    Scenario(
        "read timeout after sending",
        genesys("create_call", Fault(delay=5, then_succeed=True)),
        504,
        "genesys_timeout",
        False,
    ),
    Scenario(
        "connection dropped after sending", genesys("create_call", Fault(drop=True)), 504, "genesys_timeout", False
    ),
    Scenario(
        "answer cut off after sending",
        genesys("create_call", Fault(status=None, cut_short=True)),
        504,
        "genesys_timeout",
        False,
    ),
    Scenario("token answer cut off once, then OK", genesys("token", Fault(status=None, cut_short=True)), 201, None),
    Scenario(
        "200 that is not JSON",
        genesys("create_call", Fault(status=200, raw_body=b"OK")),
        503,
        "genesys_unavailable",
        False,
    ),
    Scenario(
        "DID list 503 always", genesys("dids", *[Fault(status=503)] * 3), 503, "genesys_unavailable", True, posts=0
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_fault_ends_in_its_catalog_answer(stack: Stack, configure, scenario: Scenario) -> None:
    scenario.arrange(stack, configure)

    started = time.monotonic()
    response = stack.post(
        "/api/calls", {"to": "+12125550199", "from": "+13175550110"}, headers={"Idempotency-Key": "f"}
    )
    elapsed = time.monotonic() - started
    retry = stack.post("/api/calls", {"to": "+12125550199", "from": "+13175550110"}, headers={"Idempotency-Key": "f"})

    TALLY.fault_scenarios += 1
    TALLY.duplicate_creates += max(0, len(stack.genesys.org.conversations) - 1)
    assert response.status_code == scenario.status, response.text
    if scenario.code is None:
        assert retry.headers.get("Idempotent-Replayed") == "true"
    else:
        problem = response.json()
        assert problem["code"] == scenario.code
        assert problem["retryable"] is scenario.retryable
        if response.status_code in (429, 503):
            assert int(response.headers["Retry-After"]) >= 1
    assert len(stack.creates()) >= scenario.posts
    assert len(stack.genesys.org.conversations) <= 1, "a logical request created two calls"
    assert elapsed < DEADLINE_SECONDS + 7, f"took {elapsed:.1f} s"


def test_storage_that_accepts_but_never_answers_is_a_503_within_its_timeouts(stack: Stack, configure) -> None:
    """A hung storage account (the connection opens, no answer comes): the first request gives up at the read
    timeout (it creates the table, a POST, which the pipeline does not retry after a read timeout), and the call
    answers 503 without reaching Genesys: the request's own record is not looked up past a policy read that hung
    (it would hang too). Without the timeout on our transport it would wait azure-core's 300 s."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as silent:  # never accepts: the kernel does
        port = silent.getsockname()[1]
        configure(
            AzureWebJobsStorage=(
                f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
                f"TableEndpoint=http://127.0.0.1:{port}/{ACCOUNT};QueueEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
            ),
            DO_NOT_CALL_TABLE=None,  # the default list, made on first use: this test is about that POST
        )
        started = time.monotonic()
        response = stack.post("/api/calls", {"to": "+12125550199"})
        elapsed = time.monotonic() - started

    TALLY.fault_scenarios += 1
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "idempotency_store_unavailable"
    assert stack.creates() == []
    assert READ_TIMEOUT_SECONDS <= elapsed < 2 * READ_TIMEOUT_SECONDS, f"took {elapsed:.1f} s"


def test_a_vault_answer_the_sdk_cannot_read_is_the_vault_unavailable_not_a_configuration_error(stack: Stack) -> None:
    """azure-core raises ValueError for a Retry-After that is no date; it read as a challenge naming another host."""
    stack.vault.inject(*[VaultFault(status=503, retry_after="soon")] * 3)

    response = stack.post("/api/calls", {"to": "+12125550199"})

    assert (response.status_code, response.json()["code"]) == (503, "key_vault_unavailable"), response.text
    assert stack.genesys.requests("create_call") == []


class _SlowlyDown(RelayHandler):
    """A table service that answers every request 503 after 0.2 s, counting them."""

    requests = 0

    def _refuse(self) -> None:
        type(self).requests += 1
        read_request_body(self)
        time.sleep(0.2)  # the service's slowness is the fault being modelled
        answer(self, 503, [("Content-Type", "application/json")], b'{"odata.error":{"code":"ServerBusy"}}')

    do_POST = do_GET = do_PUT = do_DELETE = do_MERGE = _refuse


def first_uses_in_an_outage(use: Callable[[StorageAccount], Callable[[], object]], endpoint: str) -> list[str]:
    """Eight first uses at once of a storage client whose service answers every request 503 after 0.2 s."""
    _SlowlyDown.requests = 0
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), _SlowlyDown)) as server:
        url = f"http://127.0.0.1:{server.server_address[1]}/{ACCOUNT}"
        connection = f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};{endpoint}={url};"
        first_use = use(StorageAccount(connection_string=connection))
        start = threading.Barrier(8, timeout=10)

        def at_once(_: int) -> str:
            start.wait()
            try:
                first_use()
            except Problem as problem:
                return problem.code
            return "made"

        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(at_once, range(8)))


def test_requests_waiting_on_a_table_creation_that_failed_get_its_failure_at_once() -> None:
    """Eight first uses of a table during an outage each tried to create it in turn, under the lock: the eighth
    waited out seven creations and their retries before its own 503."""

    def use(storage: StorageAccount) -> Callable[[], object]:
        table = ManagedTable(storage.table("outage"), "The idempotency store")
        return lambda: table.call(lambda: None)

    codes = first_uses_in_an_outage(use, "TableEndpoint")

    assert codes == ["idempotency_store_unavailable"] * 8
    assert _SlowlyDown.requests <= 6  # one creation and its two retries; at most one more from a late thread


def test_requests_waiting_on_a_queue_that_could_not_be_made_get_its_failure_at_once() -> None:
    """The same for the first sends to a queue (an asynchronous request, a status watch): the queue is made on
    first use, and each waiting send tried to make it again in turn."""
    codes = first_uses_in_an_outage(lambda storage: QueueSender(storage, "outage").check_reachable, "QueueEndpoint")

    assert codes == ["idempotency_store_unavailable"] * 8
    assert _SlowlyDown.requests <= 6
