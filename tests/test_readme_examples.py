"""The README's curl examples, replayed against `scripts/run-local.sh`'s stack as a newcomer would run them.

The stack runs as its own process (`python -m emulators.stack --port 0`); every ```sh block that calls
127.0.0.1:7071 runs in bash with the stack's address substituted, with curl when the machine has it (else
the block is skipped: no translation could prove the README's commands work). The environment holds what
the README tells the reader to set: `WEBHOOK_SECRET` (the demo key the stack prints), `CONVERSATION_ID` (the
id the demo prints) and an empty `KEY` (the local host does not check keys). Each answer must be what the
README shows: the status it names and, where a JSON sample follows, the same fields and codes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from emulators.stack import DEMO_WEBHOOK_SECRET
from tests.conftest import Stack

ROOT = Path(__file__).resolve().parent.parent
README_BASE = "http://127.0.0.1:7071"
START_SECONDS = 120
BASH = shutil.which("bash") or "/bin/bash"
_BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.DOTALL)

# What each example must answer, by the request it makes (a new example needs a line here).
EXPECTED_STATUS = {
    "POST /api/calls": 201,
    "POST /api/calls (Idempotency-Key)": 201,
    "GET /api/calls/$CONVERSATION_ID": 200,
    "POST /api/calls/validate": 422,
    "POST /api/webhooks/calls": 201,
}
# Fields whose values are the same on every run (ids, timestamps and user ids are not).
STABLE_FIELDS = ("to", "from", "status", "code", "field", "queueId", "understood", "type", "title", "retryable")


@dataclass
class Example:
    name: str
    script: str
    sample: dict[str, Any] | None  # the JSON the README shows after it, if any


def readme_examples() -> list[Example]:
    blocks = _BLOCK.findall((ROOT / "README.md").read_text())
    examples = []
    for index, (language, text) in enumerate(blocks):
        if language != "sh" or README_BASE not in text:
            continue
        after = blocks[index + 1] if index + 1 < len(blocks) else ("", "")
        sample = json.loads(after[1]) if after[0] == "json" else None
        examples.append(Example(_name(text), text, sample))
    return examples


def _name(script: str) -> str:
    method = "POST" if "-X POST" in script else "GET"
    path = re.search(re.escape(README_BASE) + r"(\S+)", script)
    assert path is not None
    name = f"{method} {path.group(1)}"
    return name + " (Idempotency-Key)" if "Idempotency-Key" in script else name


@dataclass
class RunningStack:
    base_url: str
    conversation_id: str


@pytest.fixture(scope="module")
def running_stack() -> Iterator[RunningStack]:
    process = subprocess.Popen(
        [sys.executable, "-m", "emulators.stack", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: dict[str, str] = {}
    serving = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if match := re.search(r"\| app (http://127\.0\.0\.1:\d+)/api", line):
                seen["base_url"] = match.group(1)
            if match := re.match(r"Conversation id: (\S+)", line):
                seen.setdefault("conversation_id", match.group(1))
            if line.startswith("Serving "):
                serving.set()
        serving.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert serving.wait(START_SECONDS) and process.poll() is None, "the stack never started serving"
        yield RunningStack(seen["base_url"], seen["conversation_id"])
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def test_the_readme_has_the_examples_this_test_knows() -> None:
    assert sorted(e.name for e in readme_examples()) == sorted(EXPECTED_STATUS)


@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("openssl") is None, reason="needs curl and openssl")
@pytest.mark.timeout(START_SECONDS + 60)
@pytest.mark.parametrize("example", readme_examples(), ids=lambda e: e.name)
def test_readme_example_answers_as_documented(running_stack: RunningStack, example: Example) -> None:
    script = example.script.replace(README_BASE, running_stack.base_url)
    # -w appends the status on its own line to what the example prints (curl keeps only the last -w).
    script = script.replace("curl -s", "curl -s -w '\\n%{http_code}'")
    environment = {
        **os.environ,
        "WEBHOOK_SECRET": DEMO_WEBHOOK_SECRET,
        "CONVERSATION_ID": running_stack.conversation_id,
        "KEY": "",
    }
    ran = subprocess.run(
        [BASH, "-euo", "pipefail", "-c", script], env=environment, capture_output=True, text=True, timeout=30
    )
    assert ran.returncode == 0, ran.stderr
    printed, status = ran.stdout.rsplit("\n", 1)

    assert int(status) == EXPECTED_STATUS[example.name], printed
    body = json.loads(printed.split("\n\n", 1)[1] if printed.startswith("HTTP/") else printed)
    if example.sample is not None:
        assert set(example.sample) <= set(body), set(example.sample) - set(body)
        shown = {k: example.sample[k] for k in STABLE_FIELDS if k in example.sample}
        assert shown == {k: body[k] for k in shown}
    if example.name.startswith("GET /api/calls/"):
        assert body["conversationId"] == running_stack.conversation_id


def test_the_webhook_route_without_its_secret_names_the_webhook_settings(stack: Stack, configure: Any) -> None:
    """A vault without the webhook secret and no WEBHOOK_SECRET, as a newcomer who skips the secret meets it:
    the answer names the webhook settings, never the Genesys secret's (readiness: tests/test_readiness.py)."""
    configure(WEBHOOK_SECRET=None, WEBHOOK_SECRET_NAME="no-such-webhook-secret")
    answer = stack.post(
        "/api/webhooks/calls", {"to": "+12125550199"}, headers={"X-Signature-256": "sha256=" + "0" * 64}
    )
    assert answer.json()["code"] == "secret_not_found"
    assert "WEBHOOK_SECRET" in answer.json()["hint"]
    assert "GENESYS_CLIENT_SECRET_NAME" not in answer.json()["hint"]
    assert stack.creates() == []
