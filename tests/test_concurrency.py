"""Fifty simultaneous deliveries of one request, across two app instances sharing one Azurite: one call."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from emulators.genesys import DEMO_QUEUE_ID, Fault
from tests.conftest import Stack

ROOT = Path(__file__).resolve().parent.parent
DELIVERIES = 50


def start_instance() -> tuple[subprocess.Popen[str], str]:
    """A second worker process, as another Functions instance would be: own memory, same settings."""
    process = subprocess.Popen(
        [sys.executable, "-m", "emulators.local_host", "0"],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    first_line: list[str] = []
    read = threading.Thread(target=lambda: first_line.append(process.stdout.readline()), daemon=True)
    read.start()
    read.join(timeout=30)
    if not first_line or not first_line[0].startswith("listening "):
        process.kill()
        raise RuntimeError(f"instance did not start: {first_line}")
    return process, first_line[0].split()[1]


@pytest.fixture
def instances(stack: Stack) -> Iterator[list[str]]:
    started = [start_instance() for _ in range(2)]
    yield [url for _, url in started]
    for process, _ in started:
        process.kill()
        process.wait(timeout=10)


def deliver(urls: list[str], body: dict, headers: dict[str, str]) -> list[requests.Response]:
    def one(i: int) -> requests.Response:
        return requests.post(f"{urls[i % len(urls)]}/api/calls", json=body, headers=headers, timeout=60)

    with ThreadPoolExecutor(DELIVERIES) as pool:
        return list(pool.map(one, range(DELIVERIES)))


def assert_one_call(stack: Stack, answers: list[requests.Response]) -> str:
    [create] = stack.creates()
    conversation_ids = {a.json()["conversationId"] for a in answers if a.status_code == 201}
    assert len(conversation_ids) == 1
    in_progress = [a for a in answers if a.status_code != 201]
    assert all(a.status_code == 409 and a.json()["code"] == "request_in_progress" for a in in_progress)
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == len(answers) - len(in_progress) - 1
    assert create.json["phoneNumber"] == "+12125550199"
    return conversation_ids.pop()


def test_fifty_deliveries_with_one_key_on_two_instances_dial_once(stack: Stack, instances: list[str]) -> None:
    stack.genesys.inject("create_call", Fault(delay=0.5, then_succeed=True))  # keep the first one in flight

    answers = deliver(instances, {"to": "(212) 555-0199"}, {"Idempotency-Key": "flow-run-42"})

    first = assert_one_call(stack, answers)
    different_key = requests.post(
        f"{instances[1]}/api/calls",
        json={"to": "(212) 555-0199"},
        headers={"Idempotency-Key": "flow-run-43"},
        timeout=60,
    )
    assert different_key.status_code == 201
    assert different_key.json()["conversationId"] != first
    assert len(stack.creates()) == 2


def test_fifty_deliveries_without_key_inside_the_window_dial_once(stack: Stack, instances: list[str]) -> None:
    stack.genesys.inject("create_call", Fault(delay=0.5, then_succeed=True))

    answers = deliver(instances, {"to": "+1 212 555 0199"}, {})

    assert_one_call(stack, answers)


def test_a_keyless_retry_on_an_instance_that_read_the_queues_new_caller_id_is_the_same_call(
    stack: Stack, instances: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without `from`, a queue call's caller ID is the queue's, read from Genesys and cached per instance: the
    number changed in Genesys between the call and its retry, which an instance with a fresh cache reads."""
    call = {"to": "+12125550199", "queueId": DEMO_QUEUE_ID}
    first = requests.post(f"{instances[0]}/api/calls", json=call, timeout=60)
    monkeypatch.setattr(stack.genesys.org.queues[DEMO_QUEUE_ID], "calling_party_number", "+13175550102")

    retry = requests.post(f"{instances[1]}/api/calls", json=call, timeout=60)

    assert (first.status_code, retry.status_code) == (201, 201), retry.text
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["conversationId"] == first.json()["conversationId"]
    assert len(stack.creates()) == 1
