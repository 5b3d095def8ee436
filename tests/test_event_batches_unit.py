"""A batch stops starting events before Event Grid's 30 s answer timeout (a narrow test with a fake clock)."""

from __future__ import annotations

from shared.idempotency import Reply
from shared.webhooks import BATCH_BUDGET_SECONDS, Event, answer_events


def test_events_not_started_within_the_budget_answer_503_and_come_back() -> None:
    now = [0.0]
    started: list[str] = []

    def slow_answer(data: object, key: str) -> tuple[Reply, bool]:
        started.append(key)
        now[0] += BATCH_BUDGET_SECONDS / 2 + 1  # each event takes over half the budget
        return Reply(201, {"conversationId": key}, {}), False

    events = [Event(f"k{n}", f"id-{n}", {"to": "+12125550199"}) for n in range(4)]
    reply, _ = answer_events(events, slow_answer, "req-1", clock=lambda: now[0])

    assert started == ["k0", "k1"]
    assert reply.status == 503
    assert reply.headers["Retry-After"]
    assert [r["status"] for r in reply.body["results"]] == [201, 201, 409, 409]
