"""`scripts/run-local.sh` (emulators/stack.py) as a newcomer meets it: a busy port is one clear line and a
non-zero exit, and SIGTERM stops every child process, Azurite's included."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
START_SECONDS = 120  # Azurite, the emulators and the whole demo
STOP_SECONDS = 30


def stack_process(
    *args: str, stderr: int = subprocess.PIPE, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "emulators.stack", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env,
    )


def children_of(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of each direct child, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid:
            found.append((int(entry.name), command))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.mark.timeout(START_SECONDS + STOP_SECONDS)
def test_a_busy_port_is_one_clear_line_and_a_non_zero_exit(busy_port: int) -> None:
    process = stack_process("--port", str(busy_port), "--exit-after-demo")
    _, stderr = process.communicate(timeout=START_SECONDS)

    assert process.returncode == 1
    assert f"error: port {busy_port} is already in use" in stderr
    assert "Traceback" not in stderr


@pytest.mark.timeout(START_SECONDS + STOP_SECONDS)
def test_the_demo_runs_on_a_machine_whose_proxy_cannot_reach_loopback() -> None:
    """A corporate machine's HTTP_PROXY without 127.0.0.1 in NO_PROXY carried the demo's requests and the app's own
    to the emulators: a ProxyError traceback and exit status 1."""
    dead_proxy = "http://127.0.0.1:9"  # discard: nothing listens
    machine = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "http_proxy", "https_proxy")}
    environment = {**machine, "HTTP_PROXY": dead_proxy, "HTTPS_PROXY": dead_proxy, "NO_PROXY": "localhost"}

    process = stack_process("--port", "0", "--exit-after-demo", env=environment)
    stdout, stderr = process.communicate(timeout=START_SECONDS)

    assert process.returncode == 0, stdout[-2000:] + stderr[-2000:]
    assert "Demo succeeded." in stdout


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
@pytest.mark.timeout(START_SECONDS + STOP_SECONDS)
def test_sigterm_stops_the_stack_and_azurite() -> None:
    process = stack_process("--port", "0", stderr=subprocess.STDOUT)  # one pipe, drained below
    serving = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("Serving "):
                serving.set()
        serving.set()  # exited: the asserts below say why

    threading.Thread(target=read, daemon=True).start()
    azurite: list[int] = []
    try:
        assert serving.wait(START_SECONDS) and process.poll() is None, "the stack never started serving"
        azurite = [pid for pid, command in children_of(process.pid) if "azurite" in command]
        assert azurite, children_of(process.pid)

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=STOP_SECONDS) == 0
        assert not [pid for pid in azurite if alive(pid)], "Azurite was left running"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=STOP_SECONDS)
        for pid in azurite:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)  # the Azurite this test started, by its id
