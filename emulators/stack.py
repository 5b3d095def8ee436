"""Run the whole product locally against its emulated default, and show it working.

Starts the Genesys emulator (demo org), the managed-identity endpoint, the HTTPS Key Vault emulator
(holding the Genesys client secret) and Azurite, points the app's settings at them, serves the function
app on http://127.0.0.1:7071 and places a demo call, printing what Genesys received; then the same
request again (replayed, not redialed) and one rejected request.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import signal
import sys
import threading
import uuid
from collections.abc import Iterator, MutableMapping
from datetime import datetime, timezone
from types import FrameType
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import phonenumbers
import requests

from emulators.azure import KeyVaultEmulator, ManagedIdentityEmulator
from emulators.azurite import Azurite
from emulators.genesys import DEMO_QUEUE_ID, DEMO_USER_ID, NO_CLI_QUEUE_ID, NO_STATION_USER_ID, GenesysEmulator
from emulators.local_host import LocalFunctionHost
from shared.config import AZURE_HOST_VARIABLES
from shared.policy.calling_hours import parse_window, time_zones

CLIENT_ID = "emulator-client-id"
CLIENT_SECRET = "emulator-client-secret"  # the emulated org's secret; it lives only in the emulated vault


REQUEST_BODY_SIZE_LIMIT = str(4 * 1024 * 1024)  # as the template sets it: tests/test_infra.py ties them


def settings_for(
    genesys: GenesysEmulator, identity: ManagedIdentityEmulator, vault: KeyVaultEmulator, azurite: Azurite
) -> dict[str, str]:
    """App settings that point the function app at the emulators (what local.settings.json would hold)."""
    return {
        "AzureWebJobsStorage": azurite.connection_string,
        "GENESYS_API_BASE_URL": genesys.base_url,
        "GENESYS_LOGIN_BASE_URL": genesys.base_url,
        "GENESYS_ALLOW_INSECURE_HTTP": "true",
        "GENESYS_CLIENT_ID": CLIENT_ID,
        "KEY_VAULT_URL": vault.vault_url,
        "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE": "false",
        "REQUESTS_CA_BUNDLE": vault.ca_bundle_path,
        "GENESYS_CALL_USER_ID": DEMO_USER_ID,
        "ALLOWED_USER_IDS": f"{DEMO_USER_ID},{NO_STATION_USER_ID}",
        "ALLOWED_QUEUE_IDS": f"{DEMO_QUEUE_ID},{NO_CLI_QUEUE_ID}",
        "CALLER_ID_SOURCE": "genesys",
        "DEFAULT_CALLER_ID": "+13175550100",
        "DEFAULT_PHONE_REGION": "US",
        "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": REQUEST_BODY_SIZE_LIMIT,
        **identity.environment(),
    }


def off_azure(environment: MutableMapping[str, str]) -> None:
    """Drop the hosting plans' variables: the emulated stack is off Azure, but a dev container sets CONTAINER_NAME,
    which the app reads as Linux Consumption (and then refuses the emulators' loopback callbacks and unverified
    vault challenges)."""
    for name in AZURE_HOST_VARIABLES:
        environment.pop(name, None)


@contextlib.contextmanager
def emulated_stack() -> Iterator[tuple[GenesysEmulator, KeyVaultEmulator]]:
    """Every emulator running, and the process's settings pointing at them."""
    # All of it is on loopback: a proxy the machine sets (HTTP_PROXY, HTTPS_PROXY) must not carry these requests,
    # the app's own to the emulators among them.
    for name in ("NO_PROXY", "no_proxy"):
        os.environ[name] = ",".join(filter(None, (os.environ.get(name), "127.0.0.1", "localhost")))
    off_azure(os.environ)
    with (
        GenesysEmulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as genesys,
        ManagedIdentityEmulator() as identity,
        KeyVaultEmulator(identity, {"genesys-client-secret": CLIENT_SECRET}) as vault,
        Azurite() as azurite,
    ):
        os.environ.update(settings_for(genesys, identity, vault, azurite))
        yield genesys, vault


# Countries whose inside-hours windows (08:00-21:00 local) never all overlap: at any moment one is at night.
_NIGHT_CANDIDATES = ("JP", "NZ", "FR", "BR", "IN")
DEMO_CAPPED_NUMBER = "+12125550142"
# Calls per number a day on the local stack: the demo shows the 11th refused, and the README's examples, which
# call one number, can be tried again and again before they meet it.
DEMO_CALLS_PER_NUMBER = 10


def _night_country(now: datetime) -> str:
    window = parse_window("08:00-21:00")
    assert window is not None
    for region in _NIGHT_CANDIDATES:
        zones = time_zones(_example_number(region), region)
        if not all(window.contains(now.astimezone(ZoneInfo(zone))) for zone in zones):
            return region
    raise AssertionError("no demo country is at night")  # impossible: their windows never all overlap


def _example_number(region: str) -> str:
    example = phonenumbers.example_number(region)
    assert example is not None, region  # libphonenumber has one for every candidate
    return phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)


def demo_policy_settings(now: datetime) -> dict[str, str]:
    """The demo org's calling policy: calling hours only for a country where it is night now (so the demo call
    works at any hour), a few allowed countries, and a cap of DEMO_CALLS_PER_NUMBER calls per number a day."""
    return {
        "ALLOWED_COUNTRIES": "US,CA,GB," + ",".join(_NIGHT_CANDIDATES),
        "CALLING_HOURS": "off",
        "CALLING_HOURS_BY_COUNTRY": f"{_night_country(now)}=08:00-21:00",
        "CALLS_PER_NUMBER_LIMIT": str(DEMO_CALLS_PER_NUMBER),
    }


def demo_refusals(base_url: str) -> bool:
    """One refusal of each calling-policy kind, each before anything reaches Genesys."""
    night = os.environ["CALLING_HOURS_BY_COUNTRY"].split("=")[0]
    requests.put(f"{base_url}/api/do-not-call/{quote('+1 212-555-0123', safe='')}", timeout=30)
    for n in range(DEMO_CALLS_PER_NUMBER):
        cap = {"Idempotency-Key": f"cap-{n}"}
        requests.post(f"{base_url}/api/calls", json={"to": DEMO_CAPPED_NUMBER}, headers=cap, timeout=30)
    tries = [
        ("a country outside ALLOWED_COUNTRIES", {"to": _example_number("DE")}, "destination_not_allowed"),
        ("a number on the do-not-call list", {"to": "(212) 555-0123"}, "do_not_call"),
        (f"night in {night} (calling hours)", {"to": _example_number(night)}, "outside_calling_hours"),
        (
            f"call {DEMO_CALLS_PER_NUMBER + 1} to a number capped at {DEMO_CALLS_PER_NUMBER}",
            {"to": DEMO_CAPPED_NUMBER},
            "call_limit_reached",
        ),
    ]
    refused = 0
    for title, call, code in tries:
        print(f"\nPOST {base_url}/api/calls ({title})\n{json.dumps(call)}")
        body = _show("Refused before dialing", requests.post(f"{base_url}/api/calls", json=call, timeout=30))
        refused += body.get("code") == code
    return refused == len(tries)


def _show(title: str, response: requests.Response) -> dict[str, Any]:
    body = response.json()
    print(f"\n== {title}: HTTP {response.status_code} {response.headers.get('Content-Type', '')}")
    print(json.dumps(body, indent=2))
    return body


DEMO_WEBHOOK_SECRET = "whsec_ZGVtby1zdGF0dXMtY2FsbGJhY2sta2V5LTMyYnl0ZXM="  # the demo's signing key, not a real one


def demo_status_callback(base_url: str, genesys: GenesysEmulator) -> bool:
    """A call with a status callback to a plain-HTTP receiver on 127.0.0.1 (allowed only under the insecure-HTTP
    flag): the emulated callee answers after 1 s and hangs up 2 s later; print each signed event as it arrives."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    arrived: list[str] = []
    ended = threading.Event()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            event = json.loads(body)
            print(
                f"\n== Status callback received: webhook-id {self.headers['webhook-id']}\n{json.dumps(event, indent=2)}"
            )
            arrived.append(event["type"])
            self.wfile.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self.close_connection = True
            if event["type"] in ("call.ended", "call.failed"):
                ended.set()

        def log_message(self, *args: object) -> None:
            pass

    genesys.org.answer_after_seconds, genesys.org.hang_up_after_seconds = 1.0, 2.0
    with ThreadingHTTPServer(("127.0.0.1", 0), Receiver) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        call = {
            "to": "+1 212-555-0177",
            "statusCallbackUrl": f"http://127.0.0.1:{server.server_address[1]}/call-events",
            "statusCallbackEvents": ["ringing", "connected", "ended"],
        }
        print(f"\nPOST {base_url}/api/calls (with a status callback)\n{json.dumps(call)}")
        _show("Our answer", requests.post(f"{base_url}/api/calls", json=call, timeout=30))
        ended.wait(timeout=20)
        server.shutdown()
    genesys.org.answer_after_seconds = genesys.org.hang_up_after_seconds = None
    return arrived == ["call.ringing", "call.connected", "call.ended"]


def demo(base_url: str, genesys: GenesysEmulator) -> bool:
    """Place one call and send one bad request; True when both answered as they should."""
    call: dict[str, Any] = {
        "to": "(212) 555-0199",
        "from": "317.555.0105",
        "queueId": DEMO_QUEUE_ID,
        "attributes": {"invoice": "A-1017"},
    }
    key = {"Idempotency-Key": f"demo-{uuid.uuid4()}"}
    print(f"POST {base_url}/api/calls  Idempotency-Key: {key['Idempotency-Key']}\n{json.dumps(call, indent=2)}")
    placed = requests.post(f"{base_url}/api/calls", json=call, headers=key, timeout=30)
    created = genesys.requests("create_call")
    if created:
        sent = created[-1]
        print(f"\n== Sent to Genesys: {sent.method} {sent.path}\n{json.dumps(sent.json, indent=2)}")
    body = _show("Our answer", placed)
    conversation = body.get("conversationId")
    print(f"\nConversation id: {conversation}\nFollow it (the README's GET /api/calls/{{id}} example, with this id):")
    print(f"  curl -s {base_url}/api/calls/{conversation}")

    retried = requests.post(f"{base_url}/api/calls", json=call, headers=key, timeout=30)
    print(
        f"\n== The same request again (a Power Automate retry): HTTP {retried.status_code}, "
        f"Idempotent-Replayed: {retried.headers.get('Idempotent-Replayed')}, "
        f"conversation {retried.json().get('conversationId')}, creates sent to Genesys: "
        f"{len(genesys.requests('create_call'))}"
    )

    rejected_call = {"to": "+12125550199", "from": "+3175550101"}
    print(f"\nPOST {base_url}/api/calls (a caller ID with its country code missing)\n{json.dumps(rejected_call)}")
    rejected = requests.post(f"{base_url}/api/calls", json=rejected_call, timeout=30)
    _show("Rejected before dialing", rejected)
    replayed = retried.headers.get("Idempotent-Replayed") == "true"
    one_call = len(genesys.requests("create_call")) == 1
    refusals = demo_refusals(base_url)
    callbacks = demo_status_callback(base_url, genesys)
    ok = placed.status_code == 201 and replayed and rejected.status_code == 422 and one_call and refusals
    return ok and callbacks


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (a service manager, `kill`, a CI runner) unwinds the stack as Ctrl-C does, so every emulator
    stops, Azurite's process included."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=7071, help="port of the function app (default 7071)")
    parser.add_argument("--exit-after-demo", action="store_true", help="stop after the demo instead of serving")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("azure", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        return _run(args.port, args.exit_after_demo)
    except KeyboardInterrupt:
        print("\nStopped.")
        return 0
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
        print(
            f"error: port {args.port} is already in use (another scripts/run-local.sh or func start?); "
            "stop it or choose another with --port N",
            file=sys.stderr,
        )
        return 1


def _run(port: int, exit_after_demo: bool) -> int:
    """Start every emulator and the app, run the demo, then serve until interrupted; the exit status."""
    with emulated_stack() as (genesys, vault):
        os.environ.update(demo_policy_settings(datetime.now(timezone.utc)))
        # Status callbacks: signed with a demo key, the call read every second.
        os.environ.update(WEBHOOK_SECRET=DEMO_WEBHOOK_SECRET, STATUS_POLL_SECONDS="1", STATUS_POLL_MAX_SECONDS="1")
        import function_app  # after the settings: the app reads them on its first request

        with LocalFunctionHost(function_app.app, port=port) as host:
            print(f"Genesys emulator {genesys.base_url} | Key Vault {vault.vault_url} | app {host.base_url}/api\n")
            ok = demo(host.base_url, genesys)
            print("\nDemo " + ("succeeded." if ok else "FAILED."))
            if exit_after_demo or not ok:
                return 0 if ok else 1
            print(
                f"\nServing {host.base_url}/api until Ctrl-C. WEBHOOK_SECRET is {DEMO_WEBHOOK_SECRET} "
                "(the README's webhook example). Try:\n"
                f"  curl -s -X POST {host.base_url}/api/calls/validate -H 'Content-Type: application/json' "
                '-d \'{"to": "020 7946 0958", "region": "GB"}\''
            )
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
