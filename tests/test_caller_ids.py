"""Caller-ID policy: refused before anything reaches Genesys, with a hint when the digits were misread."""

from __future__ import annotations

import threading
from typing import cast

import pytest

from emulators.genesys import Fault
from shared.caller_ids import MISS_RELOAD_SECONDS, QUEUE_CACHE_SIZE, AllowedCallerIds, CallerIds, RefreshingValue
from shared.config import load_settings
from shared.deadline import Deadline
from shared.errors import Problem
from shared.genesys import GenesysClient
from tests.conftest import Clock, Stack, wait_for
from tests.test_configuration import MINIMAL

CALL = {"to": "+12125550199"}


def test_disallowed_caller_id_is_422_and_sends_nothing_to_genesys(stack: Stack, configure) -> None:
    configure(CALLER_ID_SOURCE="settings", ALLOWED_CALLER_IDS="+13175550100")

    response = stack.post("/api/calls", {**CALL, "from": "+12125550142"})

    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "caller_id_not_allowed"
    assert problem["field"] == "from"
    assert stack.genesys.requests() == []


def test_missing_country_code_hint_names_the_allowed_number(stack: Stack) -> None:
    problem = stack.post("/api/calls", {**CALL, "from": "+3175550101"}).json()

    assert problem["code"] == "caller_id_not_allowed"
    assert "+13175550101" in problem["hint"]
    assert stack.creates() == []


def test_national_number_read_in_another_region_hints_the_match(stack: Stack, configure) -> None:
    configure(CALLER_ID_SOURCE="settings", ALLOWED_CALLER_IDS="+44 20 7946 0958", DEFAULT_CALLER_ID=None)

    problem = stack.post("/api/calls", {**CALL, "from": "020 7946 0958"}).json()

    assert problem["code"] == "caller_id_not_allowed"
    assert "+442079460958" in problem["hint"]


def test_settings_source_accepts_any_spelling_of_an_allowed_number(stack: Stack, configure) -> None:
    configure(CALLER_ID_SOURCE="settings", ALLOWED_CALLER_IDS="(317) 555-0120, +44 20 7946 0958")

    response = stack.post("/api/calls", {**CALL, "from": "+1 317.555.0120"})

    assert response.status_code == 201, response.text
    assert stack.creates()[0].json["callerId"] == "+13175550120"
    assert stack.genesys.requests("dids") == []


def test_allowed_setting_the_org_does_not_own_surfaces_genesys_rejection(stack: Stack, configure) -> None:
    # ALLOWED_CALLER_IDS lists a number that is no DID of the org: Genesys says "Malformed participant address".
    configure(CALLER_ID_SOURCE="settings", ALLOWED_CALLER_IDS="+44 20 7946 0958")

    response = stack.post("/api/calls", {**CALL, "from": "+44 20 7946 0958"})

    assert response.status_code == 422
    assert response.json()["code"] == "genesys_rejected_address"
    assert len(stack.creates()) == 1


def test_both_sources_union(stack: Stack, configure) -> None:
    configure(CALLER_ID_SOURCE="both", ALLOWED_CALLER_IDS="+442079460958")

    from_settings = stack.post("/api/calls/validate", {**CALL, "from": "+442079460958"})
    from_genesys = stack.post("/api/calls/validate", {**CALL, "from": "+13175550129"})
    neither = stack.post("/api/calls/validate", {**CALL, "from": "+12125550142"})

    assert (from_settings.status_code, from_genesys.status_code, neither.status_code) == (200, 200, 422)


def test_with_both_sources_a_caller_id_of_the_settings_needs_no_did_list(stack: Stack, configure) -> None:
    """CALLER_ID_SOURCE=both loaded the org's DIDs for every check: a DID listing Genesys refused (a permission
    taken away) refused calls whose caller ID the settings allow, with or without `from`."""
    configure(CALLER_ID_SOURCE="both", ALLOWED_CALLER_IDS="+442079460958", DEFAULT_CALLER_ID="+442079460958")
    stack.genesys.inject("dids", *[Fault(status=403, code="missing.permissions")] * 5)

    named = stack.post("/api/calls/validate", {**CALL, "from": "+442079460958"})
    defaulted = stack.post("/api/calls/validate", CALL)
    a_did = stack.post("/api/calls/validate", {**CALL, "from": "+13175550129"})

    assert (named.status_code, defaulted.status_code) == (200, 200), named.text
    assert defaulted.json()["from"] == "+442079460958"
    assert a_did.json()["code"] == "genesys_permission_denied"  # only Genesys's list can say


def test_default_caller_id_outside_the_allowed_list_is_a_configuration_error(stack: Stack, configure) -> None:
    configure(DEFAULT_CALLER_ID="+12125550142")

    response = stack.post("/api/calls", CALL)

    assert response.status_code == 500
    assert response.json()["code"] == "configuration_error"
    assert "DEFAULT_CALLER_ID" in response.json()["detail"]
    assert stack.creates() == []


def test_did_list_failure_is_reported_and_nothing_dialed(stack: Stack) -> None:
    stack.genesys.inject("dids", Fault(status=403, code="missing.permissions"))

    response = stack.post("/api/calls", {**CALL, "from": "+13175550105"})

    assert response.json()["code"] == "genesys_permission_denied"
    assert stack.creates() == []


def test_stale_did_list_is_served_while_one_background_refresh_runs(stack: Stack, configure) -> None:
    configure(CALLER_ID_CACHE_SECONDS="0", DUPLICATE_WINDOW_SECONDS="0")
    assert stack.post("/api/calls", {**CALL, "from": "+13175550105"}).status_code == 201
    stack.genesys.inject("dids", Fault(delay=3, then_succeed=True))

    # The cache is stale at once: these calls must not wait for the slow DID refresh.
    answers = [stack.post("/api/calls", {**CALL, "from": "+13175550105"}) for _ in range(3)]

    assert [a.status_code for a in answers] == [201, 201, 201]
    assert len(stack.genesys.requests("dids")) == 2  # the first load and one refresh in flight
    assert len(stack.creates()) == 4
    # The refresh ends in this test (it reads the DID pools after the slow DIDs), not in the next one.
    assert wait_for(lambda: len(stack.genesys.requests("didpools")) == 2, 10)


@pytest.mark.parametrize("value", ["+1 555", "not-a-number"])
def test_invalid_allowed_caller_id_setting_is_a_configuration_error(stack: Stack, configure, value: str) -> None:
    configure(CALLER_ID_SOURCE="settings", ALLOWED_CALLER_IDS=f"+13175550100,{value}")

    problem = stack.post("/api/calls", CALL).json()

    assert problem["code"] == "configuration_error"
    assert "ALLOWED_CALLER_IDS" in problem["detail"]


class QueueReads:
    """A stand-in for GenesysClient.get_queue that counts the reads."""

    def __init__(self) -> None:
        self.reads: list[str] = []

    def get_queue(self, queue_id: str, deadline: Deadline) -> dict[str, str]:
        self.reads.append(queue_id)
        return {"id": queue_id, "callingPartyNumber": "+13175550101"}


class DidListings:
    """A stand-in for GenesysClient's DID listings: the org's DIDs as they are now."""

    def __init__(self, *dids: str) -> None:
        self.dids = list(dids)
        self.loads = 0

    def list_did_numbers(self, deadline: Deadline) -> list[str]:
        self.loads += 1
        return list(self.dids)

    def list_did_pool_ranges(self, deadline: Deadline) -> list[tuple[str, str]]:
        return []


def test_a_did_added_since_the_list_was_loaded_is_allowed_once_the_list_is_half_a_minute_old() -> None:
    """A miss reloads the org's list when it is older than MISS_RELOAD_SECONDS: a DID added in Genesys was refused
    422 for up to CALLER_ID_CACHE_SECONDS (5 minutes), and Power Automate never retries a 4xx."""
    clock = Clock(now=1000.0)
    genesys = DidListings("+13175550100")
    settings = load_settings({**MINIMAL, "CALLER_ID_SOURCE": "genesys"})
    caller_ids = CallerIds(settings, cast(GenesysClient, genesys), clock=clock)
    assert caller_ids.choose("+13175550100", None, "US") == "+13175550100"
    genesys.dids.append("+13175550177")

    with pytest.raises(Problem) as too_soon:  # a miss within half a minute of the load: no reload
        caller_ids.choose("+13175550177", None, "US")
    clock.now += MISS_RELOAD_SECONDS + 1
    chosen = caller_ids.choose("+13175550177", None, "US")
    with pytest.raises(Problem) as never:  # a number the org does not have: one reload per half minute at most
        caller_ids.choose("+13175550142", None, "US")

    assert too_soon.value.code == never.value.code == "caller_id_not_allowed"
    assert chosen == "+13175550177"
    assert genesys.loads == 2


def test_a_reload_after_a_miss_that_fails_keeps_the_list_and_is_not_tried_again_for_half_a_minute() -> None:
    """A failed reload was raised: a `from` the org does not own got 503 instead of 422, and every retry of it ran
    another listing of up to a deadline, one after another under the lock."""
    clock = Clock(now=1000.0)
    outcomes: list[str] = ["ok", "fail", "ok"]
    loads: list[float] = []

    def load() -> frozenset[str]:
        loads.append(clock.now)
        if outcomes.pop(0) == "fail":
            raise Problem("genesys_unavailable", "Genesys Cloud is down.")
        return frozenset({f"+1317555{len(loads):04d}"})

    dids = RefreshingValue(load, 300.0, clock=clock)
    assert dids.get() == {"+13175550001"}
    clock.now += 31

    assert dids.reloaded(30.0) == {"+13175550001"}  # the reload failed: the cached list, no failure raised
    clock.now += 10
    assert dids.reloaded(30.0) == {"+13175550001"}  # tried 10 s ago: not again
    clock.now += 21
    assert dids.reloaded(30.0) == {"+13175550003"}
    assert loads == [1000.0, 1031.0, 1062.0]


def test_a_background_refresh_that_failed_is_not_tried_again_for_half_a_minute() -> None:
    """A failed refresh left the value old, so the next use started another: Genesys answering 429 at once got
    40 DID listings in 2 s, while the org's creates were refused for its rate limit."""
    clock = Clock(now=0.0)
    loads: list[float] = []

    def load() -> str:
        loads.append(clock.now)
        if len(loads) > 1:
            raise Problem("genesys_rate_limited", "Genesys Cloud rate limit reached.")
        return "first"

    value = RefreshingValue(load, 60.0, clock=clock)
    assert value.get() == "first"

    def refreshed_once_more(at: float) -> None:
        clock.now = at
        for _ in range(5):
            assert value.get() == "first"  # the cached value, whatever the refresh does
            assert wait_for(lambda: all(t.name != "caller-id-refresh" for t in threading.enumerate()), 10)

    refreshed_once_more(61.0)
    refreshed_once_more(80.0)  # within 30 s of the failure: none
    refreshed_once_more(92.0)

    assert loads == [0.0, 61.0, 92.0]


def test_of_two_overlapping_loads_the_one_started_last_is_kept() -> None:
    """A background refresh that started before a reload and ended after it stored its older list over the
    reloaded one: the DID just found was refused again."""
    clock = Clock(now=0.0)
    refresh_may_end, refreshing = threading.Event(), threading.Event()
    versions = iter(["first", "refresh", "reload"])

    def load() -> str:
        version = next(versions)
        if version == "refresh":
            refreshing.set()
            assert refresh_may_end.wait(10)
        return version

    value = RefreshingValue(load, 60.0, clock=clock)
    assert value.get() == "first"
    clock.now = 61.0
    value.get()  # starts the background refresh, which waits
    assert refreshing.wait(10)
    clock.now = 62.0
    assert value.reloaded(30.0) == "reload"
    refresh_may_end.set()
    assert wait_for(lambda: all(t.name != "caller-id-refresh" for t in threading.enumerate()), 10)  # it stored

    assert value.get() == "reload"


def test_queue_caller_id_cache_keeps_only_the_most_recently_used_queues() -> None:
    genesys = QueueReads()
    caller_ids = CallerIds(load_settings(MINIMAL), cast(GenesysClient, genesys))
    for n in range(QUEUE_CACHE_SIZE):
        caller_ids.queue_caller_id(f"queue-{n}")
    caller_ids.queue_caller_id("queue-0")  # used again: now the most recent

    caller_ids.queue_caller_id("one-more")  # drops queue-1, the least recently used
    caller_ids.queue_caller_id("queue-0")
    caller_ids.queue_caller_id("queue-1")

    assert genesys.reads == [f"queue-{n}" for n in range(QUEUE_CACHE_SIZE)] + ["one-more", "queue-1"]


def test_queue_caller_id_cache_stays_bounded_whatever_is_asked() -> None:
    genesys = QueueReads()
    caller_ids = CallerIds(load_settings(MINIMAL), cast(GenesysClient, genesys))
    for n in range(10 * QUEUE_CACHE_SIZE):
        caller_ids.queue_caller_id(f"queue-{n}")

    genesys.reads.clear()
    for n in range(10 * QUEUE_CACHE_SIZE):  # only the last QUEUE_CACHE_SIZE queues are still cached
        caller_ids.queue_caller_id(f"queue-{n}")

    assert len(genesys.reads) == 10 * QUEUE_CACHE_SIZE  # each was evicted before it was asked again


def test_requests_that_waited_behind_a_failed_first_load_get_its_failure_and_later_ones_load_again() -> None:
    """Requests queued behind a first DID load that failed (Genesys hanging at a cold start) each loaded again in
    turn, the k-th waiting k deadlines, past Power Automate's 120 s. Now they get its failure at once. It may pass:
    the next request tries again (a failure for good is held a while: tests/test_readiness.py)."""
    clock = Clock(now=100.0)
    loading, fail_now = threading.Event(), threading.Event()
    loads: list[float] = []

    def load() -> frozenset[str]:
        loads.append(clock.now)
        if len(loads) == 1:
            loading.set()
            assert fail_now.wait(10)
            clock.now += 30  # the load used its deadline
            raise Problem("genesys_timeout", "The DID list did not come in time.")
        return frozenset({"+13175550100"})

    dids = RefreshingValue(load, 300.0, clock=clock)
    answers: dict[str, object] = {}

    def ask(name: str) -> None:
        try:
            answers[name] = dids.get()
        except Problem as problem:
            answers[name] = problem

    first = threading.Thread(target=ask, args=("first",))
    first.start()
    assert loading.wait(10)
    waiting = [threading.Thread(target=ask, args=(f"waiting-{n}",)) for n in range(3)]
    for thread in waiting:
        thread.start()  # each asks before the load fails, whenever it reaches the lock
    fail_now.set()
    for thread in [first, *waiting]:
        thread.join(10)

    assert all(isinstance(answer, Problem) and answer.code == "genesys_timeout" for answer in answers.values())
    assert len(answers) == 4 and loads == [100.0]
    assert len({id(answer) for answer in answers.values()}) == 4  # each its own copy: none holds another's frames

    clock.now += 1  # a request after the failure tries again
    assert dids.get() == frozenset({"+13175550100"})
    assert len(loads) == 2


def test_a_did_pool_holds_the_numbers_of_its_length_between_its_first_and_last() -> None:
    berlin = AllowedCallerIds(frozenset({"+13175550100"}), (("+4930123400", "+4930123499"),))

    assert "+4930123400" in berlin and "+4930123499" in berlin and "+4930123450" in berlin
    assert "+13175550100" in berlin
    assert "+493012341" not in berlin  # between the two as text, but a shorter number: not in the range
    assert "+4930123500" not in berlin and "+49301234000" not in berlin
    assert len(berlin) == 101


@pytest.mark.parametrize(
    ("refusal", "held"),
    [("genesys_permission_denied", True), ("genesys_not_found", True), ("genesys_auth_failed", False)],
)
def test_a_first_load_genesys_refused_for_good_is_held_and_a_refused_secret_is_not(refusal: str, held: bool) -> None:
    """A load refused for good was asked again by every call and probe. A refused client secret is not held here:
    the token's own REFUSED_SECRET_SECONDS already limits it, and holding it as well kept calls failing 20 s after
    the secret was put right."""
    clock = Clock(now=100.0)
    loads: list[float] = []

    def load() -> frozenset[str]:
        loads.append(clock.now)
        if len(loads) == 1:
            raise Problem(refusal, "Refused.")
        return frozenset({"+13175550100"})

    dids = RefreshingValue(load, 300.0, clock=clock)
    with pytest.raises(Problem):
        dids.get()
    clock.now += 5

    if held:
        with pytest.raises(Problem) as again:
            dids.get()
        assert again.value.code == refusal and len(loads) == 1
        clock.now += 30
    assert dids.get() == frozenset({"+13175550100"})
    assert len(loads) == 2
