"""Local stand-ins for Azure managed identity (App Service style) and Key Vault secrets.

The real ``azure.identity`` credentials and ``azure.keyvault.secrets.SecretClient`` talk to these servers:

- ``ManagedIdentityEmulator``: plain HTTP on 127.0.0.1, found through ``IDENTITY_ENDPOINT`` and
  ``IDENTITY_HEADER``.
- ``KeyVaultEmulator``: HTTPS on 127.0.0.1 with a ``trustme`` certificate; put ``ca_bundle_path`` in
  ``REQUESTS_CA_BUNDLE`` and build the client with ``verify_challenge_resource=False``.

Both servers accept ``VaultFault`` objects (errors, delays, dropped connections), one consumed per request.
"""

from __future__ import annotations

import base64
import collections
import json
import os
import re
import secrets
import shutil
import socket
import socketserver
import ssl
import tempfile
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import trustme

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["KeyVaultEmulator", "ManagedIdentityEmulator", "VaultFault"]

VAULT_RESOURCE = "https://vault.azure.net"


@dataclass
class VaultFault:
    """One misbehaviour, consumed by one request.

    ``status=None`` with ``delay>0`` means a slow but otherwise normal answer. ``drop`` closes the connection
    without answering (after ``delay``, if any).
    """

    status: int | None = 500
    delay: float = 0.0
    drop: bool = False
    retry_after: int | str | None = None  # a str is sent as given (a malformed one, such as "soon")


# --------------------------------------------------------------------------------------------- HTTP plumbing


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the owning emulator; quiet; HTTP/1.1 with Content-Length."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = -1  # buffered: headers and body leave in one write (flushed after each request)
    server: _Server

    def do_GET(self) -> None:
        self.server.app._handle(self)

    do_PUT = do_POST = do_DELETE = do_PATCH = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def url_path(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> int:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        return status

    def drop(self) -> None:
        """Close the connection without answering."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Server(ThreadingHTTPServer):
    """Threaded server on an ephemeral 127.0.0.1 port; TLS handshakes happen in the worker threads."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, app: _Emulator, ssl_context: ssl.SSLContext | None) -> None:
        self.app = app
        self.ssl_context = ssl_context
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # skips HTTPServer's getfqdn() lookup
        host, self.server_port = self.socket.getsockname()[:2]
        self.server_name = str(host)

    def finish_request(self, request: Any, client_address: Any) -> None:
        conn = request
        if self.ssl_context is not None:
            conn = self.ssl_context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        with self._lock:
            self._connections.add(conn)
        try:
            if isinstance(conn, ssl.SSLSocket):
                conn.do_handshake()
            _Handler(conn, client_address, self)
        finally:
            with self._lock:
                self._connections.discard(conn)
            conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # quiet: clients that go away or refuse the certificate are expected

    def close_connections(self) -> None:
        """Wake delayed handlers and cut kept-alive connections so clients see the server gone."""
        self.stopping.set()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Emulator:
    """Start/stop, fault queue and fault application shared by both emulators."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: collections.deque[VaultFault] = collections.deque()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def _ssl_context(self) -> ssl.SSLContext | None:
        return None

    def _on_start(self, port: int) -> None:
        pass

    def _handle(self, handler: _Handler) -> None:
        raise NotImplementedError

    def _fault_body(self, status: int) -> dict[str, Any]:
        raise NotImplementedError

    def _fault_headers(self, status: int) -> dict[str, str]:
        return {}

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._server = _Server(self, self._ssl_context())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self._on_start(self._server.server_port)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close_connections()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def inject(self, *faults: VaultFault) -> None:
        """Queue faults; each request consumes the next one."""
        with self._lock:
            self._faults.extend(faults)

    def pending_faults(self) -> int:
        """Faults no request has taken yet (a request takes its fault as it arrives, before any delay)."""
        with self._lock:
            return len(self._faults)

    def _apply_fault(self, handler: _Handler) -> tuple[bool, int | None]:
        """Apply the next queued fault, if any. Returns (answered, status); status None means dropped."""
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault is None:
            return False, None
        stopped = fault.delay > 0 and handler.server.stopping.wait(fault.delay)
        if stopped or fault.drop:
            handler.drop()
            return True, None
        if fault.status is None:
            return False, None
        headers = self._fault_headers(fault.status)
        retry_after = fault.retry_after
        if retry_after is None and fault.status == 429:
            retry_after = 1  # the real service always sends one; keep tests fast
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        return True, handler.reply(fault.status, self._fault_body(fault.status), headers)


# ---------------------------------------------------------------------------------------- managed identity


def _normalize_resource(resource: str) -> str:
    return resource.rstrip("/").removesuffix("/.default")


class ManagedIdentityEmulator(_Emulator):
    """App Service style managed identity endpoint (IDENTITY_ENDPOINT / IDENTITY_HEADER, 2019-08-01).

    ``allowed_client_ids=None`` accepts any ``client_id`` or none (system-assigned). A set accepts only those
    user-assigned client ids; a request without ``client_id`` is then refused too.
    """

    path = "/msi/token"
    api_version = "2019-08-01"
    token_lifetime = 3600

    def __init__(self, *, allowed_client_ids: set[str] | None = None) -> None:
        super().__init__()
        self.allowed_client_ids = allowed_client_ids
        self.header_secret = secrets.token_hex(16)
        self.endpoint = ""
        self.system_client_id = str(uuid.uuid4())
        self.tenant_id = str(uuid.uuid4())
        self._tokens: dict[str, tuple[str, float]] = {}  # token -> (resource, expires_on)
        self._log: list[dict] = []

    def _on_start(self, port: int) -> None:
        self.endpoint = f"http://127.0.0.1:{port}{self.path}"

    def environment(self) -> dict[str, str]:
        """The variables App Service sets for the platform's identity endpoint."""
        return {"IDENTITY_ENDPOINT": self.endpoint, "IDENTITY_HEADER": self.header_secret}

    def requests(self) -> list[dict]:
        """Every token request: {"resource", "client_id", "mi_res_id", "api_version"}."""
        with self._lock:
            return [dict(entry) for entry in self._log]

    def issued_tokens(self) -> list[str]:
        """Every token issued (tests check none reaches a log)."""
        with self._lock:
            return list(self._tokens)

    def is_valid_token(self, token: str, resource: str | None = None) -> bool:
        """True for an unexpired token issued here (and for ``resource``, if given)."""
        with self._lock:
            issued = self._tokens.get(token)
        if issued is None or issued[1] <= time.time():
            return False
        return resource is None or issued[0] == _normalize_resource(resource)

    def _handle(self, handler: _Handler) -> None:
        handler.read_body()
        if handler.url_path != self.path:
            handler.reply(404, _identity_error(404, "Not found."))
            return
        query = handler.query
        client_id = query.get("client_id")
        with self._lock:
            self._log.append(
                {
                    "resource": query.get("resource"),
                    "client_id": client_id,
                    "mi_res_id": query.get("mi_res_id"),  # a user-assigned identity named by its resource id
                    "api_version": query.get("api-version"),
                }
            )
        answered, _ = self._apply_fault(handler)
        if not answered:
            handler.reply(*self._token_response(handler, query, client_id))

    def _token_response(
        self, handler: _Handler, query: dict[str, str], client_id: str | None
    ) -> tuple[int, dict[str, Any]]:
        if not secrets.compare_digest(handler.headers.get("X-IDENTITY-HEADER", ""), self.header_secret):
            return 401, _identity_error(401, "X-IDENTITY-HEADER is missing or invalid.")
        if query.get("api-version") != self.api_version:
            return 400, _identity_error(400, f"Unsupported api-version; expected {self.api_version}.")
        resource = query.get("resource")
        if not resource:
            return 400, _identity_error(400, "The resource parameter is required.")
        if self.allowed_client_ids is not None and client_id not in self.allowed_client_ids:
            message = f"Unable to load the proper Managed Identity (client_id={client_id})."
            return 400, _identity_error(400, message)
        expires_on = int(time.time()) + self.token_lifetime
        token = self._jwt(_normalize_resource(resource), client_id or self.system_client_id, expires_on)
        with self._lock:
            self._tokens[token] = (_normalize_resource(resource), expires_on)
        return 200, {
            "access_token": token,
            "expires_on": str(expires_on),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client_id or self.system_client_id,
        }

    def _fault_body(self, status: int) -> dict[str, Any]:
        return _identity_error(status, f"Injected fault {status}.")

    def _jwt(self, audience: str, client_id: str, expires_on: int) -> str:
        """A token shaped like Entra ID's: services that read its claims (Azurite with `--oauth basic` checks
        `aud`, `iss`, `nbf`, `iat` and `exp`) accept it. The signature is random: nothing here verifies it."""
        now = int(time.time())
        claims = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": expires_on,
            "appid": client_id,
            "oid": client_id,
            "tid": self.tenant_id,
            "jti": uuid.uuid4().hex,
        }
        parts = [{"alg": "RS256", "typ": "JWT"}, claims]
        encoded = [base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode() for part in parts]
        return ".".join([*encoded, secrets.token_urlsafe(32)])


def _identity_error(status: int, message: str) -> dict[str, Any]:
    """App Service shape (statusCode/message, which MSAL reads) plus the OAuth error fields."""
    error = {400: "invalid_request", 401: "unauthorized_client", 404: "not_found", 429: "too_many_requests"}
    return {
        "statusCode": status,
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "error": error.get(status, "temporarily_unavailable" if status >= 500 else "invalid_request"),
        "error_description": message,
    }


# --------------------------------------------------------------------------------------------- Key Vault


@dataclass
class _SecretVersion:
    version: str
    value: str
    created: int


_SECRET_PATH = re.compile(r"^/secrets/(?P<name>[0-9A-Za-z-]{1,127})(?:/(?P<version>[0-9A-Za-z]*))?/?$")
_CHALLENGE = (
    'Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000", '
    f'resource="{VAULT_RESOURCE}"'
)


def _vault_error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


class KeyVaultEmulator(_Emulator):
    """HTTPS Key Vault secrets endpoint with a trustme certificate for 127.0.0.1.

    Tokens must come from ``identity`` for ``https://vault.azure.net``. Supports GET (latest or one version)
    and PUT (set) on ``/secrets/{name}[/{version}]``, any api-version.
    """

    def __init__(self, identity: ManagedIdentityEmulator, secrets: dict[str, str] | None = None) -> None:
        super().__init__()
        self.identity = identity
        self.vault_url = ""
        self.ca_bundle_path = ""
        self._ca = trustme.CA()
        self._cert = self._ca.issue_cert("127.0.0.1", "localhost")
        self._tmpdir: weakref.finalize | None = None  # removes the CA bundle directory, at the latest at exit
        self._secrets: dict[str, list[_SecretVersion]] = {}
        self._disabled: set[str] = set()  # answered 403 SecretDisabled, as Key Vault answers a disabled secret
        self._reads: collections.Counter[str] = collections.Counter()
        self._log: list[dict] = []
        for name, value in (secrets or {}).items():
            self.set_secret(name, value)

    # -- lifecycle

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._cert.configure_cert(context)
        return context

    def _on_start(self, port: int) -> None:
        self.vault_url = f"https://127.0.0.1:{port}/"
        self._remove_ca_bundle()
        directory = tempfile.mkdtemp(prefix="kv-emulator-")
        self._tmpdir = weakref.finalize(self, shutil.rmtree, directory, ignore_errors=True)
        bundle = Path(directory, "ca-bundle.pem")
        bundle.write_bytes(_ca_bundle(self._ca.cert_pem.bytes()))
        self.ca_bundle_path = str(bundle)

    def stop(self, *, keep_ca_bundle: bool = False) -> None:
        """Stop serving and delete the CA bundle.

        ``keep_ca_bundle=True`` keeps the bundle so that REQUESTS_CA_BUNDLE stays valid and clients see a
        vault that is down (connection refused) instead of requests failing on a missing bundle file
        (OSError). A later ``stop()`` or leaving the ``with`` block deletes it.
        """
        super().stop()
        if not keep_ca_bundle:
            self._remove_ca_bundle()

    def _remove_ca_bundle(self) -> None:
        if self._tmpdir is not None:
            self._tmpdir()
            self._tmpdir = None

    def issue_server_certificate(self, directory: Path) -> tuple[Path, Path]:
        """A certificate and key (PEM files in `directory`) for another local HTTPS server, such as Azurite
        with OAuth, signed by this vault's CA: clients trust it through the same REQUESTS_CA_BUNDLE."""
        leaf = self._ca.issue_cert("127.0.0.1", "localhost")
        certificate, key = directory / "server-cert.pem", directory / "server-key.pem"
        certificate.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        key.write_bytes(leaf.private_key_pem.bytes())
        return certificate, key

    # -- test controls

    def set_secret(self, name: str, value: str) -> str:
        """Add a new version of ``name``; returns the version id."""
        version = _SecretVersion(uuid.uuid4().hex, value, int(time.time()))
        with self._lock:
            self._secrets.setdefault(name, []).append(version)
        return version.version

    def delete_secret(self, name: str) -> None:
        with self._lock:
            self._secrets.pop(name, None)
            self._disabled.discard(name)

    def disable_secret(self, name: str) -> None:
        """Disable ``name`` (the portal's Enabled: No), as an operator may retire a rotation's previous secret."""
        with self._lock:
            self._disabled.add(name)

    def secret_reads(self, name: str | None = None) -> int:
        """Number of successful (200) secret GETs, optionally for one name."""
        with self._lock:
            return self._reads[name] if name is not None else sum(self._reads.values())

    def requests(self) -> list[dict]:
        """Every request: {"method", "path", "authorized", "status"}; status None when dropped."""
        with self._lock:
            return [dict(entry) for entry in self._log]

    def reset(self) -> None:
        """Forget reads, the request log and queued faults (between tests)."""
        with self._lock:
            self._reads.clear()
            self._log.clear()
            self._faults.clear()

    # -- serving

    def _handle(self, handler: _Handler) -> None:
        body = handler.read_body()
        authorization = handler.headers.get("Authorization", "")
        token = authorization[len("Bearer ") :] if authorization.startswith("Bearer ") else ""
        authorized = bool(token) and self.identity.is_valid_token(token, VAULT_RESOURCE)
        answered, status = self._apply_fault(handler)
        if not answered:
            status = handler.reply(*self._answer(handler, token, authorized, body))
        with self._lock:
            self._log.append(
                {
                    "method": handler.command,
                    "path": handler.url_path,
                    "authorized": authorized,
                    "status": status,
                }
            )

    def _answer(
        self, handler: _Handler, token: str, authorized: bool, body: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        challenge = {"WWW-Authenticate": _CHALLENGE}
        if not token:
            return (
                401,
                _vault_error("Unauthorized", "AKV10000: Request is missing a Bearer or PoP token."),
                challenge,
            )
        if not authorized:
            message = f"AKV10022: Invalid audience. Expected {VAULT_RESOURCE}, found: unknown."
            return 401, _vault_error("Unauthorized", message), challenge
        match = _SECRET_PATH.match(handler.url_path)
        if match is None:
            return 404, _vault_error("NotFound", f"Unknown path {handler.url_path}."), {}
        name, version = match["name"], match["version"] or ""
        if handler.command == "GET":
            return self._get(name, version)
        if handler.command == "PUT" and not version:
            return self._put(name, body)
        return 405, _vault_error("BadParameter", f"Method {handler.command} is not supported here."), {}

    def _get(self, name: str, version: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            versions = self._secrets.get(name, [])
            found = [v for v in versions if v.version == version] if version else versions[-1:]
            disabled = name in self._disabled
            if found and not disabled:
                self._reads[name] += 1
        if found and disabled:
            message = "Operation get is not allowed on a disabled secret."
            return 403, _vault_error("Forbidden", message, innererror={"code": "SecretDisabled"}), {}
        if not found:
            message = (
                f"A secret with (name/id) {name}{'/' + version if version else ''} was not found in this key "
                "vault. If you recently deleted this secret you may be able to recover it using the correct "
                "recovery command. For help resolving this issue, please see "
                "https://go.microsoft.com/fwlink/?linkid=2125182"
            )
            return 404, _vault_error("SecretNotFound", message), {}
        return 200, self._bundle(name, found[0]), {}

    def _put(self, name: str, body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        try:
            value = json.loads(body or b"{}")["value"]
        except (ValueError, KeyError, TypeError):
            return 400, _vault_error("BadParameter", "Property 'value' is required."), {}
        version = self.set_secret(name, str(value))
        with self._lock:
            stored = next(v for v in self._secrets[name] if v.version == version)
        return 200, self._bundle(name, stored), {}

    def _bundle(self, name: str, version: _SecretVersion) -> dict[str, Any]:
        return {
            "value": version.value,
            "id": f"{self.vault_url}secrets/{name}/{version.version}",
            "attributes": {
                "enabled": True,
                "created": version.created,
                "updated": version.created,
                "recoveryLevel": "Recoverable+Purgeable",
            },
            "tags": {},
        }

    def _fault_headers(self, status: int) -> dict[str, str]:
        return {"WWW-Authenticate": _CHALLENGE} if status == 401 else {}

    def _fault_body(self, status: int) -> dict[str, Any]:
        if status == 401:
            return _vault_error("Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
        if status == 403:
            message = (
                "Caller is not authorized to perform action on resource. If role assignments, deny "
                "assignments or role definitions were changed recently, please observe propagation time. "
                "Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action' Resource: 'emulator' "
                "Assignment: (not found) DenyAssignmentId: null DecisionReason: null "
                "Vault: emulator;location=local"
            )
            return _vault_error("Forbidden", message, innererror={"code": "ForbiddenByRbac"})
        if status == 404:
            return _vault_error("SecretNotFound", "A secret with (name/id) was not found in this key vault.")
        if status == 429:
            return _vault_error("Throttled", "Rate limit is exceeded. Try again in 10 seconds.")
        if status >= 500:
            return _vault_error("InternalServerError", f"Injected server error {status}.")
        return _vault_error("BadParameter", f"Injected error {status}.")


_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def _ca_bundle(ca_pem: bytes) -> bytes:
    """Our CA plus certifi's bundle and any bundle already configured, so that REQUESTS_CA_BUNDLE=<this file>
    keeps other HTTPS working (also behind a proxy with its own CA). Duplicate certificates are dropped."""
    sources = [ca_pem]
    try:
        import certifi

        sources.append(Path(certifi.where()).read_bytes())
    except (ImportError, OSError):
        pass
    for variable in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        path = os.environ.get(variable)
        if path and os.path.isfile(path):
            sources.append(Path(path).read_bytes())
    certificates = dict.fromkeys(cert for source in sources for cert in _PEM_CERT.findall(source))
    return b"\n".join(certificates) + b"\n"
