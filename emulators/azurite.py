"""Start Azurite (npm `azurite`, pinned in package.json) on free loopback ports and hand out its connection."""

from __future__ import annotations

import contextlib
import re
import subprocess
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented by Microsoft): not a secret.
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_LISTENING = re.compile(r"Azurite (Blob|Queue|Table) service is successfully listening at https?://127\.0\.0\.1:(\d+)")
_ACCESS = re.compile(r'"[A-Z]+ \S+ HTTP/[\d.]+" \d{3}')  # Azurite's access-log line (printed unless --silent)
START_TIMEOUT_SECONDS = 30


class Azurite:
    """Blob, queue and table services; `connection_string` points the Azure SDKs at them.

    In memory by default; with `location` the data lives on disk, so `restart()` (a stop and a start on the
    same ports) loses nothing written before the stop, as a storage outage does. With `oauth_tls` (a certificate
    and key) it serves HTTPS and takes Entra ID bearer tokens (`--oauth basic`), as identity-based storage
    connects: `identity_settings()` are the app settings for that. With `access_log`, every request line
    Azurite prints (`"POST /devstoreaccount1/Tables HTTP/1.1" 201`) is appended to that file, so benchmarks
    count storage requests from the emulator's own log."""

    def __init__(
        self,
        location: Path | None = None,
        oauth_tls: tuple[Path, Path] | None = None,
        access_log: Path | None = None,
    ) -> None:
        self.location = location
        self.oauth_tls = oauth_tls
        self.access_log = access_log
        self.ports: dict[str, int] = {}
        self._process: subprocess.Popen[str] | None = None
        self._output: list[str] = []

    @property
    def connection_string(self) -> str:
        base = "http://127.0.0.1"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={base}:{self.ports['Blob']}/{ACCOUNT};"
            f"QueueEndpoint={base}:{self.ports['Queue']}/{ACCOUNT};"
            f"TableEndpoint={base}:{self.ports['Table']}/{ACCOUNT};"
        )

    @property
    def pid(self) -> int:
        """The Azurite (node) process, for benchmarks that read its CPU time."""
        assert self._process is not None, "Azurite is not running"
        return self._process.pid

    def service_uri(self, service: str) -> str:
        """`https://127.0.0.1:<port>/devstoreaccount1` (http without TLS) for Blob, Queue or Table."""
        scheme = "https" if self.oauth_tls else "http"
        return f"{scheme}://127.0.0.1:{self.ports[service]}/{ACCOUNT}"

    def identity_settings(self, client_id: str) -> dict[str, str]:
        """Identity-based `AzureWebJobsStorage__*` settings, as the azd template sets them in Azure."""
        return {
            "AzureWebJobsStorage__credential": "managedidentity",
            "AzureWebJobsStorage__clientId": client_id,
            **{f"AzureWebJobsStorage__{s.lower()}ServiceUri": self.service_uri(s) for s in ("Blob", "Queue", "Table")},
        }

    def start(self) -> Azurite:
        binary = ROOT / "node_modules" / ".bin" / "azurite"
        if not binary.exists():
            raise RuntimeError("Azurite is not installed: run scripts/bootstrap.sh (npm ci)")
        storage = ["--location", str(self.location)] if self.location else ["--inMemoryPersistence"]
        if self.oauth_tls:
            storage += ["--oauth", "basic", "--cert", str(self.oauth_tls[0]), "--key", str(self.oauth_tls[1])]
        addresses = []
        for service in ("Blob", "Queue", "Table"):
            port = str(self.ports.get(service, 0))  # 0: any free port; on a restart, the same ones as before
            addresses += [f"--{service.lower()}Host", "127.0.0.1", f"--{service.lower()}Port", port]
        self._output = []
        self.ports = {}
        self._process = subprocess.Popen(
            [str(binary), *storage, "--disableTelemetry", "--skipApiVersionCheck", *addresses],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = threading.Event()
        threading.Thread(target=self._read_output, args=(ready,), daemon=True).start()
        if not ready.wait(START_TIMEOUT_SECONDS) or len(self.ports) < 3:
            self.stop()
            raise RuntimeError(
                f"Azurite did not start within {START_TIMEOUT_SECONDS} s: {''.join(self._output)[-2000:]}"
            )
        return self

    def _read_output(self, ready: threading.Event) -> None:
        """Collect the listening ports, then keep draining the output so Azurite never blocks on it."""
        assert self._process is not None and self._process.stdout is not None
        with contextlib.ExitStack() as stack:
            log = stack.enter_context(self.access_log.open("a", buffering=1)) if self.access_log else None
            for line in self._process.stdout:
                if len(self._output) < 100:
                    self._output.append(line)
                match = _LISTENING.search(line)
                if match:
                    self.ports[match.group(1)] = int(match.group(2))
                    if len(self.ports) == 3:
                        ready.set()
                elif log is not None and _ACCESS.search(line):
                    log.write(line)
        ready.set()  # Azurite exited: start() reports what it printed

    def stop(self) -> None:
        """SIGTERM: Azurite closes its servers and saves its database, as a service being stopped does."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)

    def restart(self) -> Azurite:
        """Stop, then start on the same ports (so clients' connection strings stay valid)."""
        ports = dict(self.ports)
        self.stop()
        self.ports = ports
        return self.start()

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
