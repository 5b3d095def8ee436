"""The Swagger 2.0 document and the Power Automate connector.

The document is valid Swagger 2.0, covers exactly the app's HTTP functions, is what the app serves and what
`connector/` ships, follows the custom-connector conventions, and the live app answers what it promises:
schemathesis generates requests from the served document and checks every answer against it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import OpenAPIV2SpecValidator, validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from emulators.azure import VaultFault
from emulators.genesys import DEMO_QUEUE_ID, Fault
from emulators.local_host import QueueRunner
from shared.call_status import OUTCOME_CODES
from shared.calls import KNOWN_FIELDS
from shared.errors import CATALOG
from shared.openapi import DEFAULT_HOST, PROBLEM_CODES, answer_status, document, swagger_json
from shared.webhooks import VALIDATION_EVENT
from tests.conftest import Stack

ROOT = Path(__file__).resolve().parent.parent
CONNECTOR = ROOT / "connector"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
WEBHOOK_SECRET = "openapi-fuzz-webhook-secret"
# `get_functions()` may be called once per process (the local host does): read the routes in a fresh one.
FUNCTIONS_SCRIPT = """
import json, function_app
out = []
for function in function_app.app.get_functions():
    for binding in json.loads(function.get_function_json())["bindings"]:
        if binding["type"] == "httpTrigger":
            out.append([binding["route"], binding["methods"], binding.get("authLevel", "FUNCTION")])
print(json.dumps(out))
"""


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def walk(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object of the document, with its JSON path."""
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{where}/{index}")


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return document()


@pytest.fixture(scope="module")
def app_routes() -> list[tuple[str, list[str], str]]:
    result = subprocess.run(
        [sys.executable, "-c", FUNCTIONS_SCRIPT], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    return [(route, methods, level) for route, methods, level in json.loads(result.stdout.splitlines()[-1])]


def test_document_is_valid_swagger_2(spec: dict[str, Any]) -> None:
    validate(spec, cls=OpenAPIV2SpecValidator)
    assert spec["swagger"] == "2.0"
    assert spec["basePath"] == "/api"
    assert spec["schemes"] == ["https"]
    key = spec["securityDefinitions"]["apiKey"]
    assert (key["type"], key["in"], key["name"]) == ("apiKey", "header", "x-functions-key")
    assert spec["security"] == [{"apiKey": []}]
    assert len(json.dumps(spec)) < 1_000_000  # Power Automate's import limit


def test_every_function_has_its_operation_and_nothing_else(
    spec: dict[str, Any], app_routes: list[tuple[str, list[str], str]]
) -> None:
    functions = {("/" + route.strip("/"), method.lower()) for route, methods, _ in app_routes for method in methods}
    documented = {(path, method) for path, method, _ in operations(spec)}

    assert documented == functions
    anonymous = {"/" + route.strip("/") for route, _, level in app_routes if level.upper() == "ANONYMOUS"}
    for path, _, operation in operations(spec):
        assert (operation.get("security") == []) == (path in anonymous), path
        assert ("401" in operation["responses"]) != (path in anonymous), path


def test_served_document_is_the_connector_file(stack: Stack, spec: dict[str, Any]) -> None:
    response = stack.get("/api/openapi.json")

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    served, shipped = response.json(), json.loads((CONNECTOR / "apiDefinition.swagger.json").read_text())
    assert served.get("host") in (None, DEFAULT_HOST, response.url.split("/")[2])
    assert {**served, "host": None} == {**shipped, "host": None} == {**spec, "host": None}
    assert (CONNECTOR / "apiDefinition.swagger.json").read_text() == swagger_json(), (
        "connector/ is stale: run scripts/export-connector.sh"
    )
    assert shipped["host"] == DEFAULT_HOST


def test_connector_properties() -> None:
    properties = json.loads((CONNECTOR / "apiProperties.json").read_text())["properties"]
    api_key = properties["connectionParameters"]["api_key"]

    assert api_key["type"] == "securestring"
    assert {"displayName", "description", "tooltip"} <= set(api_key["uiDefinition"])
    assert api_key["uiDefinition"]["constraints"]["required"] == "true"
    assert re.fullmatch(r"#[0-9a-fA-F]{6}", properties["iconBrandColor"])
    assert properties["capabilities"] == []
    assert properties["publisher"] and properties["stackOwner"]


SMALL_WORDS = {"a", "an", "and", "as", "at", "by", "for", "in", "of", "on", "or", "the", "to", "with"}


def is_title_case(text: str) -> bool:
    words = text.split()
    return bool(words) and all(
        w[0].isupper() or w[0].isdigit() or (i and w in SMALL_WORDS) for i, w in enumerate(words)
    )


def test_power_automate_conventions(spec: dict[str, Any]) -> None:
    for path, method, operation in operations(spec):
        where = f"{method.upper()} {path}"
        assert re.fullmatch(r"(?:[A-Z][a-z0-9]+)+", operation["operationId"]), where
        assert operation["summary"] and len(operation["summary"]) <= 80, where
        assert operation["description"].endswith("."), where
        assert not operation["summary"].endswith("."), where
        assert operation["x-ms-visibility"] in ("important", "advanced", "internal"), where
        for parameter in operation["parameters"]:
            assert is_title_case(parameter["x-ms-summary"]), (where, parameter["name"])
            assert parameter["description"], (where, parameter["name"])
            if parameter["in"] != "body":
                assert parameter["x-ms-visibility"] in ("important", "advanced", "internal"), parameter["name"]
            if parameter.get("x-ms-visibility") == "internal" and parameter["required"]:
                assert "default" in parameter, parameter["name"]  # a flow author cannot set it
    assert len({op["operationId"] for _, _, op in operations(spec)}) == len(list(operations(spec)))
    for where, node in walk(spec):
        if isinstance(node.get("description"), str):
            assert node["description"].endswith("."), where
        if isinstance(node.get("properties"), dict) and not where.endswith("/properties"):  # a schema's fields
            for name, field in node["properties"].items():
                if "$ref" not in field:  # a referenced definition is checked where it is defined
                    assert is_title_case(field.get("x-ms-summary", "")), f"{where}/properties/{name}"
    request = spec["definitions"]["CallRequest"]["properties"]
    assert {name for name, field in request.items() if field["x-ms-visibility"] == "important"} == {
        "to",
        "from",
        "queueId",
    }


def test_call_request_fields_are_the_ones_the_code_reads(spec: dict[str, Any]) -> None:
    assert set(spec["definitions"]["CallRequest"]["properties"]) == KNOWN_FIELDS


def test_every_catalog_code_is_documented(spec: dict[str, Any]) -> None:
    assert spec["definitions"]["Problem"]["properties"]["code"]["enum"] == sorted(CATALOG)
    answered = {code for codes in PROBLEM_CODES.values() for code in codes}
    assert answered | OUTCOME_CODES == set(CATALOG)  # outcomes are GET status documents, never HTTP answers
    for path, method, operation in operations(spec):
        for code in PROBLEM_CODES[operation["operationId"]]:
            response = operation["responses"][str(answer_status(operation["operationId"], code))]
            assert code in response["description"], (method, path, code)


# --- The live app against its own document ------------------------------------------------------------------

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


FUZZ = settings(
    max_examples=25,
    derandomize=True,  # the same requests on every run, so a failure reproduces
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
OPERATION_IDS = [operation["operationId"] for _, _, operation in operations(document())]
FOLLOW_SECONDS = 30


def served_schema(stack: Stack) -> Any:
    """The document the app serves, as schemathesis reads it, aimed at the local host."""
    schema = schemathesis.openapi.from_url(stack.host.base_url + "/api/openapi.json", timeout=30)
    schema.config.update(base_url=stack.host.base_url + "/api")
    return schema


def send(stack: Stack, case: Any) -> requests.Response:
    """Send the case; a webhook case that carries X-Signature-256 is signed for real, so the fuzzed body gets
    past the signature to the call itself (cases without it, or with X-Signature, stay unsigned)."""
    kwargs = case.as_transport_kwargs()
    if case.operation.path == "/webhooks/calls" and "X-Signature-256" in (case.headers or {}):
        if "json" in kwargs:
            kwargs["data"] = json.dumps(kwargs.pop("json")).encode()
        body = kwargs.get("data") or b""
        body = body.encode() if isinstance(body, str) else body
        digest = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        kwargs["headers"]["X-Signature-256"] = f"sha256={digest}"
        kwargs["data"] = body
    return stack.session.request(**kwargs, timeout=30)


class Follower:
    """Reads where 201 and 202 answers point, as Power Automate does, and holds those answers to the document
    too; polling every asynchronous request to its end also leaves no queued call for later tests."""

    def __init__(self, schema: Any, stack: Stack) -> None:
        self.stack = stack
        self.status = schema.find_operation_by_id("GetCallStatus")
        self.request = schema.find_operation_by_id("GetCallRequest")
        self.locations: list[str] = []
        self.seen: set[str] = set()

    def remember(self, response: requests.Response) -> None:
        location = response.headers.get("Location")
        if response.status_code in (201, 202) and location and location not in self.seen:
            self.seen.add(location)
            self.locations.append(location)

    def follow_all(self, *, validate: bool = True) -> None:
        """Follow every location to its end; `validate=False` only drains (after a failure)."""
        deadline = time.monotonic() + FOLLOW_SECONDS
        while self.locations:
            location = self.locations.pop(0)
            pending = re.fullmatch(r"/api/calls/requests/([^/]+)", location)
            if pending:
                case = self.request.Case(path_parameters={"requestId": pending[1]})
            else:
                conversation = re.fullmatch(r"/api/calls/([^/]+)", location)
                assert conversation, location
                case = self.status.Case(path_parameters={"conversationId": conversation[1]})
            response = send(self.stack, case)
            if validate:
                case.validate_response(response, checks=CHECKS)
            if response.status_code == 202:
                if time.monotonic() > deadline:
                    assert not validate, f"{location} is still pending after {FOLLOW_SECONDS} s"
                    return
                time.sleep(0.2)
                self.locations.append(location)
            else:
                self.remember(response)


@pytest.fixture
def prompt_host(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """The local host with TCP_NODELAY on its connections.

    Without it every answer whose body follows its headers in a second write waits about 40 ms (Nagle's
    algorithm against the client's delayed ACK): this module's requests would take about a minute
    longer. `disable_nagle_algorithm = True` on the handler in emulators/local_host.py would fix it for every
    test; until then this module sets it on its own connections (new ones: each test has a new session).
    """
    monkeypatch.setattr(stack.host._server.RequestHandlerClass, "disable_nagle_algorithm", True)
    return stack


@pytest.fixture
def queue_worker(prompt_host: Stack) -> Iterator[Stack]:
    """One more worker on the host's storage queues, as a second instance would be.

    The session's queue runner can be stuck for minutes in the Azure SDK's retries after a test points
    AzureWebJobsStorage at an unreachable account (tests/test_idempotency.py); this module's asynchronous
    requests must not wait for it. Two consumers of one queue are safe: a message is leased to one at a time.
    """
    worker = QueueRunner(prompt_host.host.queues.functions)
    worker.start()
    yield prompt_host
    worker.stop()


@pytest.mark.parametrize("operation_id", OPERATION_IDS)
def test_live_app_answers_what_the_document_promises(queue_worker: Stack, configure: Any, operation_id: str) -> None:
    """Schemathesis, from the document the app serves: its coverage cases (boundaries, missing and wrong
    values), the examples, then valid and invalid random requests. No answer may be a 5xx, and every answer
    must be documented: status, media type, body schema and headers."""
    stack = queue_worker
    configure(WEBHOOK_SECRET=WEBHOOK_SECRET, ASYNC_RETRY_AFTER_SECONDS="1")
    schema = served_schema(stack)
    operation = schema.find_operation_by_id(operation_id)
    follower = Follower(schema, stack)

    def check(case: Any) -> None:
        response = send(stack, case)
        case.validate_response(response, checks=CHECKS)
        follower.remember(response)

    coverage = schema.iter_coverage_cases(
        operation,
        generation_modes=list(GenerationMode),
        generation_config=schema.config.generation_for(operation=operation),
    )
    for case in coverage:
        if case.method.lower() == operation.method.lower():  # other methods meet the host's router, not the app
            check(case)
    strategies = [
        *schema.get_strategies_from_examples(operation),
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    try:
        for strategy in strategies:
            FUZZ(given(case=strategy)(lambda case: check(case)))()
    except BaseException:
        follower.follow_all(validate=False)  # leave no queued call behind for the tests that follow
        raise
    follower.follow_all()


# (operation, emulator fault, our status, our code): upstream failures, whose answers the fuzzing never meets.
CALL = {"to": "+12125550199"}
FAILURES = [
    ("PlaceCall", ("create_call", Fault(status=400, code="bad.request")), 422, "genesys_rejected_address"),
    ("PlaceCall", ("create_call", Fault(status=403, code="missing.permissions")), 502, "genesys_permission_denied"),
    ("PlaceCall", ("create_call", Fault(status=400, code="not.a.user")), 502, "genesys_user_context_required"),
    (
        "PlaceCall",
        ("create_call", Fault(status=400, code="conversation.error.no.user.station")),
        409,
        "genesys_no_station",
    ),
    ("PlaceCall", ("create_call", Fault(status=404, code="not.found")), 404, "genesys_not_found"),
    ("PlaceCall", ("create_call", Fault(status=429, retry_after=120)), 429, "genesys_rate_limited"),
    ("PlaceCall", ("create_call", Fault(status=503)), 503, "genesys_unavailable"),
    ("PlaceCall", ("create_call", Fault(status=504)), 504, "genesys_timeout"),
    ("PlaceCall", ("token", Fault(status=503)), 503, "genesys_unavailable"),
    ("PlaceCall", ("vault", VaultFault(status=403)), 500, "key_vault_forbidden"),
    ("PlaceCall", ("vault", VaultFault(status=503)), 503, "key_vault_unavailable"),
    ("GetCallStatus", ("get_call", Fault(status=503)), 503, "genesys_unavailable"),
    ("GetCallStatus", ("get_call", Fault(status=429, retry_after=120)), 429, "genesys_rate_limited"),
]


@pytest.mark.parametrize(("operation_id", "fault", "status", "code"), FAILURES, ids=[f[3] for f in FAILURES])
def test_failure_answers_match_the_document(
    prompt_host: Stack, operation_id: str, fault: tuple[str, Any], status: int, code: str
) -> None:
    """Upstream failures answer as documented too, and so does the same request sent again (answered again,
    or replayed from the idempotency store with Idempotent-Replayed)."""
    stack = prompt_host
    schema = served_schema(stack)
    operation = schema.find_operation_by_id(operation_id)
    route, what = fault
    if route == "vault":
        stack.vault.inject(*[what] * 9)  # the SDK retries
    else:
        stack.genesys.inject(route, *[what] * 9)  # reads retry; a 401 is retried with a fresh token
    if operation_id == "PlaceCall":
        case = operation.Case(body=CALL, headers={"Idempotency-Key": code}, media_type="application/json")
    else:
        case = operation.Case(path_parameters={"conversationId": "3049ce48-9db0-4c45-8841-dc1f3838aca9"})

    for _ in range(2):  # the answer, then the same request again: a stored answer replays
        response = send(stack, case)
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
        case.validate_response(response, checks=CHECKS[1:])  # all but not_a_server_error: 5xx are expected


def event(event_id: str, data: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "eventType": "Contoso.Calls.Requested",
        "subject": "calls",
        "eventTime": "2026-01-01T12:00:00Z",
        "dataVersion": "1.0",
        "data": data,
    }


def test_rarer_answers_match_the_document(queue_worker: Stack, configure: Any) -> None:
    """Answers that random requests seldom reach: a callback, a failed call's status, event batches, the Event
    Grid handshake, a CloudEvents batch, not ready."""
    stack = queue_worker
    schema = served_schema(stack)

    def answer(operation_id: str, status: int, **case: Any) -> Any:
        operation = schema.find_operation_by_id(operation_id)
        sent = operation.Case(media_type="application/json", **case) if "body" in case else operation.Case(**case)
        response = send(stack, sent)
        assert response.status_code == status, response.text
        sent.validate_response(response, checks=CHECKS if status < 500 else CHECKS[1:])
        if status >= 400 and "code" in response.json():  # a problem: its code is among those the document lists
            assert response.json()["code"] in PROBLEM_CODES[operation_id], response.text
        return response.json()

    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    callback = {"mode": "callback", "to": "(212) 555-0199", "queueId": DEMO_QUEUE_ID, "scheduledTime": tomorrow}
    assert answer("ValidateCall", 200, body=callback)["mode"] == "callback"
    assert answer("PlaceCall", 201, body=callback)["status"] == "scheduled"

    assert answer("GetDoNotCall", 403, path_parameters={"number": "911"})["reason"] == "emergency_number"

    conversation_id = answer("PlaceCall", 201, body={"to": "+12125550100"})["conversationId"]
    error_info = {"code": "error.ininedgecontrol.connection.dialplan.notReachable", "message": "not reachable"}
    stack.genesys.set_call_state(conversation_id, "disconnected", disconnect_type="error", error_info=error_info)
    status = answer("GetCallStatus", 200, path_parameters={"conversationId": conversation_id})
    assert status["failure"]["code"] == "destination_unreachable"

    assert (
        len(answer("ReceiveEvents", 200, body=[event("e1", {"to": "+12125550198"}), event("e2", CALL)])["results"]) == 2
    )
    assert answer("ReceiveEvents", 400, body=[event("e3", {"to": "+12125550197"}), event("e4", {"to": "911"})])[
        "results"
    ]
    handshake = [{**event("v1", {"validationCode": "512d38b6"}), "eventType": VALIDATION_EVENT}]
    assert answer("ReceiveEvents", 200, body=handshake) == {"validationResponse": "512d38b6"}
    cloud_events = [
        {"specversion": "1.0", "id": "c1", "source": "/tests", "type": "calls", "data": {"to": "+12125550196"}}
    ]
    operation = schema.find_operation_by_id("ReceiveEvents")
    sent = operation.Case(body=cloud_events, media_type="application/cloudevents-batch+json")
    response = send(stack, sent)
    assert response.status_code == 201, response.text
    sent.validate_response(response, checks=CHECKS)

    # An asynchronous request sent twice: the second's poll answers the first's call, flagged as a replay
    async_call = {"body": CALL, "headers": {"Prefer": "respond-async", "Idempotency-Key": "async-replayed"}}
    for _ in range(2):
        request_id = answer("PlaceCall", 202, **async_call)["requestId"]
        deadline = time.monotonic() + FOLLOW_SECONDS
        while (polled := stack.get(f"/api/calls/requests/{request_id}")).status_code == 202:
            assert time.monotonic() < deadline, "the request never finished"
            time.sleep(0.2)
    assert answer("GetCallRequest", 201, path_parameters={"requestId": request_id})["to"] == CALL["to"]
    assert polled.headers["Idempotent-Replayed"] == "true"
    declared = schema.find_operation_by_id("GetCallRequest").definition.raw["responses"]["201"]["headers"]
    assert "Idempotent-Replayed" in declared

    configure(GENESYS_CLIENT_ID=None)
    assert answer("GetReadiness", 503)["status"] == "not_ready"
    assert answer("WhenCallEnds", 500, body={"notificationUrl": "https://example.com/hook"})["code"] == (
        "configuration_error"
    )
