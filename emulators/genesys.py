"""A Genesys Cloud emulator for tests and local demos.

One real HTTP server on 127.0.0.1 serves both the login host (``POST /oauth/token``) and the API host
routes this project uses, so ``GENESYS_LOGIN_BASE_URL`` and ``GENESYS_API_BASE_URL`` can both point at
``emulator.base_url``. It answers like Genesys Cloud does (see
``/work/shared/reference/genesys-cloud-api.md``): ``ErrorBody`` error bodies, an ``ININ-Correlation-Id``
header on every response, rate-limit headers on 429. It holds a small organization model (:class:`Org`),
lets tests queue faults per route (:class:`Fault`) and records every request (:class:`RecordedRequest`).

Usage::

    with GenesysEmulator() as genesys:
        genesys.inject("create_call", Fault(status=429, retry_after=2))
        ...  # point the client at genesys.base_url
        assert len(genesys.requests("create_call")) == 2

Run ``python -m emulators.genesys [port]`` for a demo server.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import secrets
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

from emulators.one_write import OneWriteHandler

if TYPE_CHECKING:
    from typing_extensions import Self  # annotations only: typing has it from Python 3.11

__all__ = [
    "DEMO_DIDS",
    "DEMO_QUEUE_ID",
    "DEMO_USER_ID",
    "NO_CLI_QUEUE_ID",
    "NO_STATION_USER_ID",
    "ROUTES",
    "Did",
    "DidPool",
    "Fault",
    "GenesysEmulator",
    "Org",
    "Queue",
    "RecordedRequest",
    "User",
]

DEMO_USER_ID = "5f1e4c3a-9b1d-4c8e-a1f2-0c9d8e7b6a51"
NO_STATION_USER_ID = "0b7e2d61-3c4f-4a8b-9e5d-7f6a1c2b3d4e"
DEMO_QUEUE_ID = "a3c1e2f4-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
NO_CLI_QUEUE_ID = "c4d5e6f7-0a1b-4c2d-8e3f-9a0b1c2d3e4f"
DEMO_DIDS: list[str] = [f"+1317555{n:04d}" for n in range(100, 130)]

ROUTES = (
    "token",
    "create_call",
    "create_call_self",
    "get_call",
    "dids",
    "didpools",
    "queue",
    "user",
    "callback",
    "unknown",
)

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
MALFORMED_ADDRESS = "Malformed participant address"
CREATE_CALL_FIELDS = frozenset(
    {
        "phoneNumber",
        "callerId",
        "callerIdName",
        "callFromQueueId",
        "callQueueId",
        "callUserId",
        "priority",
        "languageId",
        "routingSkillsIds",
        "routingSkillExpression",
        "attributes",
        "conversationIds",
        "participants",
        "uuiData",
        "externalContactId",
        "label",
    }
)
CALL_PERMISSIONS = ("conversation:call:add", "conversation:agentlessCall:add")
MAX_CALLBACK_DAYS = 30

# Default ErrorBody code and message for a fault that only gives a status.
_DEFAULT_CODES = {
    400: "bad.request",
    401: "authentication.required",
    403: "missing.permissions",
    404: "not.found",
    408: "client.timeout",
    413: "request.entity.too.large",
    415: "unsupported.media.type",
    429: "too.many.requests",
    500: "internal.server.error",
    502: "bad.gateway",
    503: "service.unavailable",
    504: "request.timeout",
}
_DEFAULT_MESSAGES = {
    "bad.request": "The request could not be understood by the server due to malformed syntax.",
    "authentication.required": "No authentication bearer token specified in authorization header.",
    "bad.credentials": "Invalid login credentials.",
    "missing.permissions": "Unable to perform the requested action. You are missing the following permission(s).",
    "missing.any.permissions": "Unable to perform the requested action. You must have at least one of the "
    "following permissions assigned.",
    "not.authorized": "You are not authorized to perform the requested action.",
    "not.found": "The requested resource could not be found.",
    "client.timeout": "The client did not produce a request within the time that the server was prepared to wait.",
    "request.entity.too.large": "The request is larger than the server is willing or able to process.",
    "unsupported.media.type": "Unsupported Media Type - Unsupported or incorrect media type, such as an "
    "incorrect Content-Type value in the header.",
    "too.many.requests": "Rate limit exceeded the maximum. Retry the request later.",
    "internal.server.error": "The server encountered an unexpected condition which prevented it from "
    "fulfilling the request.",
    "bad.gateway": "The server received an invalid response from an upstream server.",
    "service.unavailable": "Service Unavailable - The server is currently unavailable (because it is "
    "overloaded or down for maintenance).",
    "request.timeout": "The request timed out.",
}
_RATE_LIMIT_ALLOWED = 300
_UTC = timezone(timedelta(0))  # timezone.utc (datetime.UTC needs Python 3.11)


# --------------------------------------------------------------------------------------------------
# Public data model
# --------------------------------------------------------------------------------------------------


@dataclass
class Fault:
    """One queued misbehaviour for one request on a route (see :meth:`GenesysEmulator.inject`).

    Order: the request is logged, then ``delay`` passes, then ``before_answer`` runs (a test's way to make
    something else fail at that exact moment, such as stopping the storage), then ``drop`` closes the socket
    without an answer, or ``then_succeed`` (or ``status=None``) handles the request normally, or the fault's
    answer is sent: ``raw_body`` (text/html), else ``json_body``, else an ErrorBody with ``code``/``message``.
    With ``cut_short`` the answer (the normal one, or the fault's) stops halfway through its body and the
    connection closes: a connection lost mid-answer.
    """

    status: int | None = 500
    code: str | None = None
    message: str | None = None
    retry_after: int | None = None
    delay: float = 0.0
    raw_body: bytes | None = None
    drop: bool = False
    then_succeed: bool = False
    json_body: dict | None = None
    before_answer: Callable[[], None] | None = None
    cut_short: bool = False
    headers: dict[str, str] = field(default_factory=dict)  # added to the fault's answer (a redirect's Location)


class _Headers(dict):
    """A plain dict of headers as received, whose lookups also work case-insensitively."""

    def _key(self, key: object) -> object:
        if isinstance(key, str) and not dict.__contains__(self, key):
            for name in self:
                if name.lower() == key.lower():
                    return name
        return key

    def __getitem__(self, key: object) -> str:
        return dict.__getitem__(self, self._key(key))

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, self._key(key))

    def get(self, key: object, default: Any = None) -> Any:
        return dict.get(self, self._key(key), default)


@dataclass
class RecordedRequest:
    """One request as the emulator received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any | None
    route: str


@dataclass
class User:
    """A Genesys user; calls are placed on behalf of a user, who needs a station."""

    id: str
    name: str
    has_station: bool = True
    state: str = "active"  # active, inactive or deleted (GET /api/v2/users/{userId} finds no deleted user)


@dataclass
class Queue:
    """A routing queue; its calling party number/name is its outbound caller ID."""

    id: str
    name: str
    calling_party_number: str | None = None
    calling_party_name: str | None = None


@dataclass
class DidPool:
    """A range of the organization's numbers (E.164, inclusive), assigned to anyone or not."""

    start_phone_number: str
    end_phone_number: str
    state: str = "active"


@dataclass
class Did:
    """A DID (phone number) of the organization. ``owner_id`` defaults to a stable id per number."""

    phone_number: str
    owner_type: str = "USER"
    state: str = "active"
    owner_id: str | None = None


@dataclass
class Org:
    """The organization the emulator pretends to be."""

    users: dict[str, User] = field(default_factory=dict)
    queues: dict[str, Queue] = field(default_factory=dict)
    dids: list[Did] = field(default_factory=list)
    did_pools: list[DidPool] = field(default_factory=list)
    permissions: set[str] = field(default_factory=set)
    unreachable_numbers: set[str] = field(default_factory=set)
    busy_numbers: set[str] = field(default_factory=set)
    # The callee's script for other numbers: contacting for 1 s, alerting, answered `answer_after_seconds` after
    # the create (None: never), hanging up `hang_up_after_seconds` after answering (None: never).
    answer_after_seconds: float | None = None
    hang_up_after_seconds: float | None = None
    conversations: dict[str, dict] = field(default_factory=dict)
    callbacks: list[dict] = field(default_factory=list)

    @classmethod
    def demo(cls) -> Org:
        """The demo organization tests rely on (ids are the module constants)."""
        return cls(
            users={
                DEMO_USER_ID: User(DEMO_USER_ID, "Dana Dialer"),
                NO_STATION_USER_ID: User(NO_STATION_USER_ID, "Sam Stationless", has_station=False),
            },
            queues={
                DEMO_QUEUE_ID: Queue(DEMO_QUEUE_ID, "Collections", "+13175550101", "Acme Collections"),
                NO_CLI_QUEUE_ID: Queue(NO_CLI_QUEUE_ID, "Support"),
            },
            dids=[Did(number) for number in DEMO_DIDS],
            permissions={
                "conversation:call:add",
                "conversation:agentlessCall:add",
                "conversation:callback:create",
                "telephony:plugin:all",
                "routing:queue:view",
                "conversation:communication:view",
            },
            unreachable_numbers={"+12125550100"},
            busy_numbers={"+12125550111"},
        )


# --------------------------------------------------------------------------------------------------
# Internals: responses, errors, routes
# --------------------------------------------------------------------------------------------------


class _ApiError(Exception):
    """Raised by a route handler to answer an ErrorBody."""

    def __init__(self, status: int, code: str, message: str | None = None) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.message = message or _DEFAULT_MESSAGES.get(code, code)


@dataclass
class _Response:
    status: int
    body: Any = None  # JSON document, unless raw or error is set
    raw: bytes | None = None
    error: _ApiError | None = None  # ErrorBody, built when sent (its contextId is the correlation id)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Route:
    name: str
    method: str
    pattern: re.Pattern[str]
    handler: str  # name of a GenesysEmulator method taking (request, **path_params)
    authenticated: bool = True


_ROUTES = (
    _Route("token", "POST", re.compile(r"/oauth/token"), "_token", authenticated=False),
    _Route(
        "create_call",
        "POST",
        re.compile(r"/api/v2/conversations/calls/user/(?P<user_id>[^/]+)"),
        "_create_call",
    ),
    _Route("create_call_self", "POST", re.compile(r"/api/v2/conversations/calls"), "_create_call_self"),
    _Route("get_call", "GET", re.compile(r"/api/v2/conversations/calls/(?P<conversation_id>[^/]+)"), "_get_call"),
    _Route("dids", "GET", re.compile(r"/api/v2/telephony/providers/edges/dids"), "_dids"),
    _Route("didpools", "GET", re.compile(r"/api/v2/telephony/providers/edges/didpools"), "_didpools"),
    _Route("queue", "GET", re.compile(r"/api/v2/routing/queues/(?P<queue_id>[^/]+)"), "_queue"),
    _Route("user", "GET", re.compile(r"/api/v2/users/(?P<user_id>[^/]+)"), "_user"),
    _Route("callback", "POST", re.compile(r"/api/v2/conversations/callbacks"), "_callback"),
)


def _now_iso() -> str:
    return _iso(datetime.now(_UTC))


def _iso(moment: datetime) -> str:
    return moment.astimezone(_UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _media_type(headers: dict[str, str]) -> str:
    return (headers.get("Content-Type") or "").split(";")[0].strip().lower()


def _oauth_error(status: int, error: str, description: str) -> _Response:
    body = {"error": error, "description": description, "error_description": description}
    return _Response(status, body)


def _require_json_object(request: RecordedRequest) -> dict:
    """The request's JSON object body, or the ErrorBody Genesys answers instead."""
    if _media_type(request.headers) != "application/json":
        raise _ApiError(415, "unsupported.media.type")
    if not isinstance(request.json, dict):
        raise _ApiError(400, "bad.request")
    return request.json


def _parse_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise TypeError(value)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_UTC)


# --------------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------------


class GenesysEmulator:
    """A Genesys Cloud login + API server on 127.0.0.1 with an org model, faults and a request log."""

    def __init__(
        self,
        *,
        client_id: str = "emulator-client-id",
        client_secret: str = "emulator-client-secret",
        token_ttl_seconds: int = 86400,
        org: Org | None = None,
        port: int = 0,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl_seconds = token_ttl_seconds
        self.org = org if org is not None else Org.demo()
        self.base_url = ""
        self._port = port
        self._lock = threading.RLock()
        self._tokens: dict[str, float] = {}  # access token -> monotonic expiry
        self._issued: list[str] = []  # every token ever issued, for log audits
        self._faults: dict[str, deque[Fault]] = {}
        self._log: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start serving on an ephemeral port (or the given one); sets :attr:`base_url`."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", self._port), self)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="genesys-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop promptly: wake handlers sleeping in a delay, close open connections, close the socket."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- test controls ---------------------------------------------------------------------------

    def inject(self, route: str, *faults: Fault) -> None:
        """Queue faults on a route; each request on it consumes the next one, then behaviour is normal."""
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; expected one of {', '.join(ROUTES)}")
        with self._lock:
            self._faults.setdefault(route, deque()).extend(faults)

    def requests(self, route: str | None = None) -> list[RecordedRequest]:
        """A snapshot of the request log, optionally only the requests on one route."""
        with self._lock:
            return [r for r in self._log if route is None or r.route == route]

    def reset(self) -> None:
        """Clear the request log, queued faults, conversations and callbacks (tokens and secret stay)."""
        with self._lock:
            self._log.clear()
            self._faults.clear()
            self.org.conversations.clear()
            self.org.callbacks.clear()

    def rotate_secret(self, new_secret: str) -> None:
        """Change the client secret; tokens already issued stay valid."""
        with self._lock:
            self.client_secret = new_secret

    def issued_tokens(self) -> list[str]:
        """Every access token issued since start, revoked or not (tests check none reaches a log)."""
        with self._lock:
            return list(self._issued)

    def revoke_tokens(self) -> None:
        """Invalidate every issued token (API calls then get 401 bad.credentials)."""
        with self._lock:
            self._tokens.clear()

    def set_call_state(
        self,
        conversation_id: str,
        state: str,
        disconnect_type: str | None = None,
        error_info: dict | None = None,
    ) -> None:
        """Force the state of a conversation's customer (destination) participant, overriding the script. A call
        forced connected keeps that moment as its `connectedTime` in the states forced after it."""
        with self._lock:
            conversation = self.org.conversations[conversation_id]
            now = _now_iso()
            earlier = conversation["forced"] or {}
            conversation["forced"] = {
                "state": state,
                "disconnectType": disconnect_type,
                "errorInfo": error_info,
                "at": now,
                "connectedAt": now if state == "connected" else earlier.get("connectedAt"),
            }

    # ---- request handling (called on server threads) -----------------------------------------------

    def _handle(self, http: _Handler) -> None:
        """Log the request, apply a queued fault if any, then answer it."""
        body = http.read_body()
        url = urlsplit(http.path)
        route, params = self._match(http.command, url.path)
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        request = RecordedRequest(
            method=http.command,
            path=url.path,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers=_Headers(http.headers.items()),
            body=body,
            json=parsed,
            route=route.name if route else "unknown",
        )
        with self._lock:
            self._log.append(request)
            queue = self._faults.get(request.route)
            fault = queue.popleft() if queue else None

        if fault is not None:
            if fault.delay > 0 and self._stopping.wait(fault.delay):
                http.drop()  # stopping: give up without an answer
                return
            if fault.before_answer is not None:
                fault.before_answer()
            if fault.drop:
                http.drop()
                return
            if not fault.then_succeed and fault.status is not None:
                http.send(self._fault_response(fault), cut_short=fault.cut_short)
                return
        http.send(self._dispatch(route, request, params), cut_short=fault is not None and fault.cut_short)

    def _match(self, method: str, path: str) -> tuple[_Route | None, dict[str, str]]:
        for route in _ROUTES:
            match = route.pattern.fullmatch(path)
            if match and route.method == method:
                return route, match.groupdict()
        return None, {}

    def _dispatch(self, route: _Route | None, request: RecordedRequest, params: dict[str, str]) -> _Response:
        try:
            if route is None:
                raise _ApiError(404, "not.found")
            if route.authenticated:
                self._authenticate(request)
            handler: Callable[..., _Response] = getattr(self, route.handler)
            return handler(request, **params)
        except _ApiError as error:
            return _Response(error.status, error=error)
        except Exception as exc:  # noqa: BLE001 - an emulator bug: answer 500 rather than drop the client
            return _Response(500, error=_ApiError(500, "internal.server.error", f"Emulator error: {exc!r}"))

    @staticmethod
    def _fault_response(fault: Fault) -> _Response:
        status = int(fault.status or 500)
        headers = dict(fault.headers)
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        if status == 429:
            headers["inin-ratelimit-count"] = str(_RATE_LIMIT_ALLOWED)
            headers["inin-ratelimit-allowed"] = str(_RATE_LIMIT_ALLOWED)
            headers["inin-ratelimit-reset"] = str(fault.retry_after if fault.retry_after is not None else 60)
        if fault.raw_body is not None:
            return _Response(status, raw=fault.raw_body, headers=headers)
        if fault.json_body is not None:
            return _Response(status, body=fault.json_body, headers=headers)
        default = "internal.server.error" if status >= 500 else "bad.request"
        code = fault.code or _DEFAULT_CODES.get(status, default)
        message = fault.message
        if message is None and code == "too.many.requests" and fault.retry_after is not None:
            message = f"Rate limit exceeded the maximum. Retry the request in [{fault.retry_after}] seconds"
        return _Response(status, error=_ApiError(status, code, message), headers=headers)

    # ---- auth ------------------------------------------------------------------------------------

    def _authenticate(self, request: RecordedRequest) -> None:
        header = request.headers.get("Authorization")
        if not header:
            raise _ApiError(401, "authentication.required")
        scheme, _, token = header.strip().partition(" ")
        with self._lock:
            expiry = self._tokens.get(token.strip())
        if scheme.lower() != "bearer" or expiry is None or expiry <= time.monotonic():
            raise _ApiError(401, "bad.credentials")

    def _require(self, *permissions: str, any_of: bool = False) -> None:
        """403 unless the client's roles hold the permissions (all of them, or any one with ``any_of``)."""
        held = [p in self.org.permissions for p in permissions]
        if any(held) if any_of else all(held):
            return
        listed = ", ".join(permissions)
        if any_of:
            raise _ApiError(
                403,
                "missing.any.permissions",
                "Unable to perform the requested action. You must have at least one of the following "
                f"permissions assigned: [{listed}]",
            )
        raise _ApiError(
            403,
            "missing.permissions",
            f"Unable to perform the requested action. You are missing the following permission(s): [{listed}]",
        )

    # ---- routes ----------------------------------------------------------------------------------

    def _token(self, request: RecordedRequest) -> _Response:
        scheme, _, encoded = (request.headers.get("Authorization") or "").strip().partition(" ")
        try:
            client_id, _, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            client_id = secret = ""
        with self._lock:
            valid = scheme.lower() == "basic" and (client_id, secret) == (self.client_id, self.client_secret)
        if not valid:
            return _oauth_error(401, "invalid_client", "authentication failed")
        if _media_type(request.headers) != "application/x-www-form-urlencoded":
            return _oauth_error(400, "invalid_request", "content type must be application/x-www-form-urlencoded")
        grant = parse_qs(request.body.decode("utf-8", "replace")).get("grant_type", [""])[0]
        if grant != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "grant type is not supported")
        token = secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[token] = time.monotonic() + self.token_ttl_seconds
            self._issued.append(token)
        return _Response(200, {"access_token": token, "token_type": "bearer", "expires_in": self.token_ttl_seconds})

    def _create_call_self(self, request: RecordedRequest) -> _Response:
        # Every token this emulator issues is a client-credentials token.
        raise _ApiError(
            400,
            "not.a.user",
            "This request requires a user context. Client credentials cannot be used for requests to this resource.",
        )

    def _create_call(self, request: RecordedRequest, user_id: str) -> _Response:
        self._require(*CALL_PERMISSIONS, any_of=True)
        body = _require_json_object(request)
        user = self.org.users.get(user_id)
        if user is None:
            raise _ApiError(404, "not.found", "The user could not be found.")
        if not user.has_station:
            raise _ApiError(400, "conversation.error.no.user.station", "A station is required to place a call.")
        if set(body) - CREATE_CALL_FIELDS:
            raise _ApiError(400, "bad.request", MALFORMED_ADDRESS)

        destinations = [key for key in ("phoneNumber", "callUserId", "callQueueId") if body.get(key) is not None]
        if not destinations:
            raise _ApiError(400, "bad.request", "A destination is required.")
        if len(destinations) > 1:
            raise _ApiError(
                400,
                "too.many.create.conversation.parameters",
                "Only one of phoneNumber, callUserId or callQueueId may be given.",
            )
        phone_number = body.get("phoneNumber")
        if phone_number is not None and not (isinstance(phone_number, str) and E164.match(phone_number)):
            raise _ApiError(400, "bad.request", MALFORMED_ADDRESS)
        caller_id = body.get("callerId")
        if caller_id is not None and not self._is_org_number(caller_id):
            raise _ApiError(400, "bad.request", MALFORMED_ADDRESS)
        call_user = self._lookup(self.org.users, body.get("callUserId"), "user")
        call_queue = self._lookup(self.org.queues, body.get("callQueueId"), "queue")
        from_queue = self._lookup(self.org.queues, body.get("callFromQueueId"), "queue")
        attributes = body.get("attributes")
        if attributes is not None and not (
            isinstance(attributes, dict) and all(isinstance(v, str) for v in attributes.values())
        ):
            raise _ApiError(400, "invalid.value", "The attributes must be a map of string to string.")

        conversation_id = str(uuid.uuid4())
        if caller_id is None and from_queue is not None:
            caller_id = from_queue.calling_party_number
        record = {
            "id": conversation_id,
            "selfUri": f"/api/v2/conversations/calls/{conversation_id}",
            "userId": user.id,
            "userName": user.name,
            "phoneNumber": phone_number,
            "callUserId": call_user.id if call_user else None,
            "callQueueId": call_queue.id if call_queue else None,
            "callFromQueueId": from_queue.id if from_queue else None,
            "callerId": caller_id,
            "callerIdName": body.get("callerIdName"),
            "attributes": dict(attributes or {}),
            "request": body,
            "agentParticipantId": str(uuid.uuid4()),
            "customerParticipantId": str(uuid.uuid4()),
            "startTime": _now_iso(),
            "createdAt": time.monotonic(),
            "forced": None,
        }
        with self._lock:
            self.org.conversations[conversation_id] = record
        return _Response(200, {"id": conversation_id, "name": None, "selfUri": record["selfUri"]})

    def _is_org_number(self, number: object) -> bool:
        if not (isinstance(number, str) and E164.match(number)):
            return False
        in_pool = any(
            len(p.start_phone_number) == len(number) == len(p.end_phone_number)
            and p.start_phone_number <= number <= p.end_phone_number
            and p.state == "active"
            for p in self.org.did_pools
        )
        return (
            in_pool
            or any(d.phone_number == number for d in self.org.dids)
            or any(q.calling_party_number == number for q in self.org.queues.values())
        )

    @staticmethod
    def _lookup(table: dict[str, Any], key: object, kind: str) -> Any:
        """``table[key]`` for an optional id field of a request: None if absent, 404 if unknown."""
        if key is None:
            return None
        if not isinstance(key, str):
            raise _ApiError(400, "bad.request", f"The {kind} id must be a string.")
        if key not in table:
            raise _ApiError(404, "not.found", f"The {kind} could not be found.")
        return table[key]

    def _get_call(self, request: RecordedRequest, conversation_id: str) -> _Response:
        with self._lock:
            record = self.org.conversations.get(conversation_id)
            record = dict(record) if record is not None else None
        if record is None:
            raise _ApiError(404, "conversation.error.conversation.not.found", "The conversation could not be found.")
        agent = {  # CallMediaParticipant: the user and queue as entity references (the SDK's model)
            "id": record["agentParticipantId"],
            "name": record["userName"],
            # Inferred, not documented: "agent" on a queue's behalf, "user" for a user's own call.
            "purpose": "agent" if record["callFromQueueId"] else "user",
            "user": {"id": record["userId"]},
            "queue": {"id": record["callFromQueueId"]} if record["callFromQueueId"] else None,
            "state": "connected",
            "direction": "outbound",
            "startTime": record["startTime"],
            "connectedTime": record["startTime"],
        }
        customer = {
            "id": record["customerParticipantId"],
            "direction": "outbound",
            "startTime": record["startTime"],
            "attributes": record["attributes"],
            **self._destination_fields(record),
            **self._customer_state(record),
        }
        if record["callerId"]:
            customer["ani"] = f"tel:{record['callerId']}"
        participants = [{k: v for k, v in p.items() if v is not None} for p in (agent, customer)]
        return _Response(200, {"id": record["id"], "participants": participants, "selfUri": record["selfUri"]})

    def _destination_fields(self, record: dict) -> dict[str, Any]:
        if record["phoneNumber"]:
            address = f"tel:{record['phoneNumber']}"
            return {"purpose": "customer", "address": address, "dnis": address}
        if record["callUserId"]:
            user = self.org.users.get(record["callUserId"])
            return {"purpose": "user", "user": {"id": record["callUserId"]}, "name": user.name if user else None}
        queue = self.org.queues.get(record["callQueueId"])
        return {"purpose": "acd", "queue": {"id": record["callQueueId"]}, "name": queue.name if queue else None}

    def _customer_state(self, record: dict) -> dict[str, Any]:
        """State of the destination participant: forced by set_call_state, else the time-based script."""
        forced = record["forced"]
        if forced is not None:
            state = forced["state"]
            return {
                "state": state,
                "disconnectType": forced["disconnectType"],
                "errorInfo": forced["errorInfo"],
                "connectedTime": forced["connectedAt"],
                "endTime": forced["at"] if state in ("disconnected", "terminated") else None,
            }
        elapsed = time.monotonic() - record["createdAt"]
        number = record["phoneNumber"]
        failure = None
        if number in self.org.unreachable_numbers:
            failure = (
                "error",
                "error.ininedgecontrol.connection.dialplan.notReachable",
                "The number is not reachable.",
            )
        elif number in self.org.busy_numbers:
            failure = ("peer", "error.ininedgecontrol.session.busy", "The callee is busy.")
        if failure and elapsed >= 0.5:
            disconnect_type, code, message = failure
            return {
                "state": "disconnected",
                "disconnectType": disconnect_type,
                "errorInfo": {"code": code, "message": message},
                "endTime": _now_iso(),
            }
        answer, hang_up = self.org.answer_after_seconds, self.org.hang_up_after_seconds
        if failure is None and answer is not None and elapsed >= answer:
            started = _parse_time(record["startTime"])
            connected = {"connectedTime": _iso(started + timedelta(seconds=answer))}
            if hang_up is not None and elapsed >= answer + hang_up:
                ended = _iso(started + timedelta(seconds=answer + hang_up))
                return {"state": "disconnected", "disconnectType": "peer", **connected, "endTime": ended}
            return {"state": "connected", **connected}
        return {"state": "contacting" if elapsed < 1.0 else "alerting"}

    def _dids(self, request: RecordedRequest) -> _Response:
        self._require("telephony:plugin:all")
        wanted_number = request.query.get("phoneNumber")
        wanted_owner = request.query.get("ownerId")
        entities = []
        for did in self.org.dids:
            owner_id = did.owner_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"owner:{did.phone_number}"))
            if (wanted_number and did.phone_number != wanted_number) or (wanted_owner and owner_id != wanted_owner):
                continue
            entities.append(
                {
                    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"did:{did.phone_number}")),
                    "name": did.phone_number,
                    "phoneNumber": did.phone_number,
                    "owner": {"id": owner_id},
                    "ownerType": did.owner_type,
                    "state": did.state,
                }
            )
        return self._page(request, "/api/v2/telephony/providers/edges/dids", entities)

    def _didpools(self, request: RecordedRequest) -> _Response:
        self._require("telephony:plugin:all")
        entities = [
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"didpool:{pool.start_phone_number}")),
                "name": f"{pool.start_phone_number} - {pool.end_phone_number}",
                "startPhoneNumber": pool.start_phone_number,
                "endPhoneNumber": pool.end_phone_number,
                "state": pool.state,
                "provider": "PURE_CLOUD_VOICE",
            }
            for pool in self.org.did_pools
        ]
        return self._page(request, "/api/v2/telephony/providers/edges/didpools", entities)

    def _page(self, request: RecordedRequest, path: str, entities: list[dict[str, Any]]) -> _Response:
        """One page of an entity listing, as Genesys pages them (`pageSize` 1-100, default 25)."""
        page_size = self._int_param(request.query, "pageSize", 25, 1, 100)
        page_number = self._int_param(request.query, "pageNumber", 1, 1, None)
        total = len(entities)
        page_count = math.ceil(total / page_size)
        start = (page_number - 1) * page_size

        def uri(number: int) -> str:
            return f"{path}?pageSize={page_size}&pageNumber={number}"

        page = {
            "entities": entities[start : start + page_size],
            "pageSize": page_size,
            "pageNumber": page_number,
            "total": total,
            "pageCount": page_count,
            "firstUri": uri(1),
            "selfUri": uri(page_number),
            "lastUri": uri(max(page_count, 1)),
        }
        if page_number < page_count:
            page["nextUri"] = uri(page_number + 1)
        if 1 < page_number <= page_count:
            page["previousUri"] = uri(page_number - 1)
        return _Response(200, page)

    @staticmethod
    def _int_param(query: dict[str, str], name: str, default: int, low: int, high: int | None) -> int:
        raw = query.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            value = low - 1
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise _ApiError(400, "invalid.value", f"Value [{raw}] for {name} must be {bounds}.")
        return value

    def _queue(self, request: RecordedRequest, queue_id: str) -> _Response:
        self._require("routing:queue:view")
        queue = self.org.queues.get(queue_id)
        if queue is None:
            raise _ApiError(404, "not.found", "The queue could not be found.")
        body = {"id": queue.id, "name": queue.name}
        if queue.calling_party_number is not None:
            body["callingPartyNumber"] = queue.calling_party_number
        if queue.calling_party_name is not None:
            body["callingPartyName"] = queue.calling_party_name
        body["selfUri"] = f"/api/v2/routing/queues/{queue.id}"
        return _Response(200, body)

    def _user(self, request: RecordedRequest, user_id: str) -> _Response:
        # getUser "Requires NO permissions" (platform-client-sdk UsersApi docs); its `state` query defaults to active.
        user = self.org.users.get(user_id)
        if user is None or user.state == "deleted":
            raise _ApiError(404, "not.found", "The user could not be found.")
        body = {"id": user.id, "name": user.name, "state": user.state, "selfUri": f"/api/v2/users/{user.id}"}
        return _Response(200, body)

    def _callback(self, request: RecordedRequest) -> _Response:
        self._require("conversation:callback:create")
        body = _require_json_object(request)
        numbers = body.get("callbackNumbers")
        if not numbers or not isinstance(numbers, list):
            raise _ApiError(400, "callback.error.missing.callback.numbers", "Callback numbers are required.")
        routing_data = body["routingData"] if isinstance(body.get("routingData"), dict) else {}
        queue_id = body.get("queueId") or routing_data.get("queueId")
        if not queue_id:
            raise _ApiError(400, "callback.error.missing.queue.id", "A queue id is required.")
        self._lookup(self.org.queues, queue_id, "queue")
        scheduled = body.get("callbackScheduledTime")
        if scheduled is not None:
            try:
                when = _parse_time(scheduled)
            except (TypeError, ValueError):
                raise _ApiError(400, "invalid.date", f"Invalid date: [{scheduled}].") from None
            if when > datetime.now(_UTC) + timedelta(days=MAX_CALLBACK_DAYS):
                raise _ApiError(
                    400,
                    "callback.error.scheduled.time.too.far.in.future",
                    f"The callback cannot be scheduled more than {MAX_CALLBACK_DAYS} days in the future.",
                )
        conversation_id = str(uuid.uuid4())
        with self._lock:
            self.org.callbacks.append({**body, "conversationId": conversation_id})
        return _Response(
            200,
            {
                "conversation": {
                    "id": conversation_id,
                    "selfUri": f"/api/v2/conversations/{conversation_id}",
                },
                "callbackIdentifiers": [{"type": "EXTERNAL", "id": str(uuid.uuid4())}],
            },
        )


# --------------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], emulator: GenesysEmulator) -> None:
        self.emulator = emulator
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def close_connections(self) -> None:
        """Shut down every open (possibly idle keep-alive) connection so handler threads end."""
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(OneWriteHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        self.server.emulator._handle(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def read_body(self) -> bytes:
        """The request body, by Content-Length or chunked transfer encoding."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers up to the blank line
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def drop(self) -> None:
        """Close the connection without answering."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def send(self, response: _Response, *, cut_short: bool = False) -> None:
        """Write a response with a fresh ININ-Correlation-Id and an exact Content-Length (with `cut_short`, only
        half the body follows it, and the connection closes)."""
        correlation_id = str(uuid.uuid4())
        content_type = "application/json"
        if response.raw is not None:
            payload, content_type = response.raw, "text/html"
        elif response.error is not None:
            error = response.error
            document = {
                "message": error.message,
                "code": error.code,
                "status": response.status,
                "messageParams": {},
                "contextId": correlation_id,
                "details": [],
                "errors": [],
            }
            payload = json.dumps(document).encode()
        else:
            payload = json.dumps(response.body).encode()
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("ININ-Correlation-Id", correlation_id)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2] if cut_short else payload)
            self.wfile.flush()
        except OSError:
            self.close_connection = True  # the client went away (e.g. its read timed out)
        if cut_short:
            self.drop()


def main(argv: list[str] | None = None) -> None:
    """Run a demo emulator until interrupted: ``python -m emulators.genesys [port]``."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    emulator = GenesysEmulator(port=int(args[0]) if args else 0).start()
    print(f"Genesys Cloud emulator at {emulator.base_url}")
    print(f"  GENESYS_LOGIN_BASE_URL={emulator.base_url}  GENESYS_API_BASE_URL={emulator.base_url}")
    print(f"  client id {emulator.client_id}  secret {emulator.client_secret}")
    print(f"  user {DEMO_USER_ID}  queue {DEMO_QUEUE_ID}  caller IDs {DEMO_DIDS[0]}..{DEMO_DIDS[-1]}")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
