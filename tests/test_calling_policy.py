"""Who may be called, and when, through the HTTP routes: country, do-not-call, calling hours, the cap.

Windows are chosen relative to now in the callee's zone, so no test depends on the time of day.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from azure.core.exceptions import ResourceNotFoundError
from requests import Response

from emulators.azurite import Azurite
from emulators.genesys import DEMO_QUEUE_ID, Fault
from shared.idempotency import Record
from shared.services import services
from tests.conftest import Stack, app_store, app_table, backdate, wait_for
from tests.table_front import table_front, through_front
from tests.test_async_mode import ASYNC, follow, queue_listener_away

ROOT = Path(__file__).resolve().parent.parent
NEW_YORK, LONDON = ZoneInfo("America/New_York"), ZoneInfo("Europe/London")
NY_NUMBER, LONDON_NUMBER, TOLL_FREE = "+12125550199", "+442079460958", "+18005550199"


def window_excluding_now(zone: ZoneInfo) -> tuple[str, datetime]:
    """A one-hour window that does not contain the present moment in `zone`, and its next start (UTC)."""
    local = datetime.now(zone)
    start_hour = 1 if local.hour >= 12 else 20
    start = local.replace(hour=start_hour, minute=0, second=0, microsecond=0)
    if start <= local:
        start += timedelta(days=1)
    return f"{start_hour:02d}:00-{start_hour + 1:02d}:00", start.astimezone(timezone.utc)


def window_including_now(zone: ZoneInfo) -> str:
    """Two hours around the present hour in `zone` (ending at midnight at the latest)."""
    hour = min(datetime.now(zone).hour, 22)
    return f"{hour:02d}:00-{hour + 2:02d}:00"


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- calling hours -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["/api/calls", "/api/calls/validate"])
def test_outside_the_callees_hours_is_refused_with_the_next_allowed_moment(stack: Stack, configure, route) -> None:
    window, next_start = window_excluding_now(NEW_YORK)
    configure(CALLING_HOURS=window)

    response = stack.post(route, {"to": "(212) 555-0199"})

    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "outside_calling_hours"
    assert problem["nextAllowedAt"] == rfc3339(next_start)
    assert problem["timeZones"] == ["America/New_York"]
    assert problem["retryable"] is False  # not by an automatic retry: at nextAllowedAt
    assert stack.creates() == []


def test_inside_the_callees_hours_the_call_is_placed(stack: Stack, configure) -> None:
    configure(CALLING_HOURS=window_including_now(NEW_YORK))

    assert stack.post("/api/calls", {"to": NY_NUMBER}).status_code == 201
    assert len(stack.creates()) == 1


def test_a_number_with_several_zones_must_be_inside_in_every_one(stack: Stack, configure) -> None:
    window = window_including_now(NEW_YORK)  # two hours: Honolulu and Guam are far outside it
    configure(CALLING_HOURS=window)

    toll_free = stack.post("/api/calls", {"to": TOLL_FREE})
    new_york = stack.post("/api/calls", {"to": NY_NUMBER})

    assert toll_free.status_code == 422
    assert {"America/New_York", "Pacific/Honolulu", "Pacific/Guam"} <= set(toll_free.json()["timeZones"])
    assert new_york.status_code == 201
    assert [c.json["phoneNumber"] for c in stack.creates()] == [NY_NUMBER]


def test_a_country_window_overrides_the_default(stack: Stack, configure) -> None:
    window, next_start = window_excluding_now(LONDON)
    configure(CALLING_HOURS="off", CALLING_HOURS_BY_COUNTRY=f"GB={window}")

    london = stack.post("/api/calls", {"to": LONDON_NUMBER})
    new_york = stack.post("/api/calls", {"to": NY_NUMBER})

    assert london.status_code == 422
    assert london.json()["nextAllowedAt"] == rfc3339(next_start)
    assert new_york.status_code == 201


def test_a_callback_asked_for_now_outside_the_hours_is_scheduled_at_their_start(stack: Stack, configure) -> None:
    window, next_start = window_excluding_now(NEW_YORK)
    configure(CALLING_HOURS=window)

    response = stack.post("/api/calls", {"mode": "callback", "to": NY_NUMBER, "queueId": DEMO_QUEUE_ID})

    assert response.status_code == 201, response.text
    expected = next_start.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert response.json()["scheduledTime"] == expected
    assert response.json()["scheduledByCallingHours"] is True
    assert stack.genesys.requests("callback")[0].json["callbackScheduledTime"] == expected


@pytest.mark.parametrize("idempotency_key", [None, "callback-retried-at-opening"])
def test_a_callback_retried_once_the_hours_opened_is_the_same_callback(
    stack: Stack, configure, idempotency_key: str | None
) -> None:
    """The first attempt came outside the hours and was scheduled at their start; its retry comes inside them
    (here: the hours now include the present). It is the same request, so it is answered, not created again."""
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    request = {"mode": "callback", "to": NY_NUMBER, "queueId": DEMO_QUEUE_ID}
    configure(CALLING_HOURS=window_excluding_now(NEW_YORK)[0])
    first = stack.post("/api/calls", request, headers=headers)
    configure(CALLING_HOURS=window_including_now(NEW_YORK))

    retry = stack.post("/api/calls", request, headers=headers)

    assert first.status_code == 201, first.text
    assert retry.status_code == 201, retry.text
    assert retry.json() == first.json()
    assert len(stack.genesys.requests("callback")) == 1


def test_a_callbacks_scheduled_time_is_checked_at_that_time(stack: Stack, configure) -> None:
    window, next_start = window_excluding_now(NEW_YORK)
    configure(CALLING_HOURS=window)
    inside = rfc3339(next_start + timedelta(minutes=30))
    outside = rfc3339(next_start + timedelta(hours=2))

    refused = stack.post(
        "/api/calls", {"mode": "callback", "to": NY_NUMBER, "queueId": DEMO_QUEUE_ID, "scheduledTime": outside}
    )
    accepted = stack.post(
        "/api/calls", {"mode": "callback", "to": NY_NUMBER, "queueId": DEMO_QUEUE_ID, "scheduledTime": inside}
    )

    assert refused.status_code == 422
    assert refused.json()["field"] == "scheduledTime"
    assert accepted.status_code == 201, accepted.text
    assert "scheduledByCallingHours" not in accepted.json()


# ---- countries and the do-not-call list ----------------------------------------------------------------------


@pytest.mark.parametrize("route", ["/api/calls", "/api/calls/validate"])
def test_a_country_outside_the_allowed_list_is_refused(stack: Stack, configure, route: str) -> None:
    configure(ALLOWED_COUNTRIES="US,CA")

    response = stack.post(route, {"to": LONDON_NUMBER})

    assert response.status_code == 403
    assert response.json()["code"] == "destination_not_allowed"
    assert response.json()["reason"] == "country_not_allowed"
    assert response.json()["country"] == "GB"
    assert "GB" in response.json()["detail"]
    assert stack.creates() == []


@pytest.fixture
def numbers_in_client_urls() -> Iterator[None]:
    """The do-not-call route carries the number in its path (the contract): this test's own HTTP client would
    log it at DEBUG, which the session's log audit rightly flags. The app never logs it."""
    client = logging.getLogger("urllib3.connectionpool")
    previous = client.level
    client.setLevel(logging.INFO)
    yield
    client.setLevel(previous)


def dnc(stack: Stack, method: str, number: str, **kwargs):
    return stack.session.request(
        method, f"{stack.host.base_url}/api/do-not-call/{quote(number, safe='')}", timeout=30, **kwargs
    )


def test_do_not_call_list_is_managed_and_enforced(stack: Stack, numbers_in_client_urls: None) -> None:
    added = dnc(stack, "PUT", "(212) 555-0199", json={"reason": "asked on 2026-11-01"})
    looked_up = dnc(stack, "GET", "+1 212-555-0199")
    refused = stack.post("/api/calls", {"to": "tel:+12125550199"})
    validated = stack.post("/api/calls/validate", {"to": NY_NUMBER})
    removed = dnc(stack, "DELETE", "12125550199", params={"region": "US"})
    placed = stack.post("/api/calls", {"to": NY_NUMBER})

    assert added.status_code == 200, added.text
    assert added.json()["number"] == NY_NUMBER and added.json()["listed"] is True
    assert looked_up.json()["listed"] is True and looked_up.json()["reason"] == "asked on 2026-11-01"
    assert (refused.status_code, refused.json()["code"]) == (403, "do_not_call")
    assert (validated.status_code, validated.json()["code"]) == (403, "do_not_call")
    assert removed.json() == {**removed.json(), "listed": False, "removed": True}
    assert placed.status_code == 201
    assert len(stack.creates()) == 1


def test_a_do_not_call_table_deleted_under_a_running_app_is_an_outage_never_an_empty_list(
    stack: Stack, configure, numbers_in_client_urls: None
) -> None:
    """Its lookups' 404s read as "not listed": every listed number was called until a restart. The call meeting
    the deleted table is refused as an outage; the next use makes the default table again, where the list is
    imported."""
    configure(DO_NOT_CALL_TABLE=None)
    assert dnc(stack, "PUT", NY_NUMBER).status_code == 200
    app_table("donotcall").delete_table()

    refused = stack.post("/api/calls", {"to": NY_NUMBER})
    listed_again = dnc(stack, "PUT", NY_NUMBER)
    refused_again = stack.post("/api/calls", {"to": NY_NUMBER})

    assert (refused.status_code, refused.json()["code"]) == (503, "idempotency_store_unavailable"), refused.text
    assert listed_again.status_code == 200, listed_again.text
    assert refused_again.json()["code"] == "do_not_call"
    assert stack.creates() == []


def test_a_named_do_not_call_table_deleted_under_a_running_app_is_never_made_again_by_it(
    stack: Stack, numbers_in_client_urls: None
) -> None:
    """Made again by a listing, it held that number alone, and every other number of the list was called."""
    assert dnc(stack, "PUT", NY_NUMBER).status_code == 200
    app_table(os.environ["DO_NOT_CALL_TABLE"]).delete_table()

    stack.post("/api/calls", {"to": NY_NUMBER})  # meets the table gone: an outage, then looked for again
    listing = dnc(stack, "PUT", "+12125550142")
    refused = stack.post("/api/calls", {"to": NY_NUMBER})

    assert (listing.status_code, listing.json()["code"]) == (500, "configuration_error"), listing.text
    assert (refused.status_code, refused.json()["code"]) == (500, "configuration_error"), refused.text
    assert stack.creates() == []


def test_a_do_not_call_table_name_that_names_no_table_refuses_every_call(
    stack: Stack, configure, numbers_in_client_urls: None
) -> None:
    """A mistyped DO_NOT_CALL_TABLE made a new, empty table on the first lookup, and every listed number was called."""
    configure(DO_NOT_CALL_TABLE="donotcal1")

    refused = stack.post("/api/calls", {"to": NY_NUMBER})
    listing = dnc(stack, "PUT", "+12125550142")  # an opt-out flow: it would make the table, holding that alone
    ready = stack.get("/api/health/ready")

    assert (refused.status_code, refused.json()["code"]) == (500, "configuration_error"), refused.text
    assert (listing.status_code, listing.json()["code"]) == (500, "configuration_error"), listing.text
    assert "'donotcal1'" in refused.json()["detail"] and "DO_NOT_CALL_TABLE" in refused.json()["detail"]
    assert ready.status_code == 503
    assert stack.creates() == []
    with pytest.raises(ResourceNotFoundError):  # not made by the lookups
        app_table("donotcal1").get_entity("a", "b")


def listing(stack: Stack, number: str) -> tuple[list[int], Callable[[], None]]:
    """A `before_answer` that lists `number` through the admin route (the fault's answer waits for it), and the
    statuses it got."""
    statuses: list[int] = []
    return statuses, lambda: statuses.append(dnc(stack, "PUT", number).status_code)


def test_a_number_listed_while_a_call_to_it_waited_behind_its_key_is_not_dialed(
    stack: Stack, configure, numbers_in_client_urls: None
) -> None:
    """The second attempt of a key checked the list, then waited for the first, which failed without placing the
    call (Genesys refused it). The number was listed meanwhile: the second's send checks the list again."""
    configure(GENESYS_READ_TIMEOUT_SECONDS="10")  # the first's create is answered after 5 s (the deadline is 8 s)
    statuses, list_it = listing(stack, NY_NUMBER)
    stack.genesys.inject("create_call", Fault(status=400, code="invalid.value", delay=5, before_answer=list_it))
    key = {"Idempotency-Key": "listed-while-waiting"}
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(stack.post, "/api/calls", {"to": NY_NUMBER}, headers=key)
        assert wait_for(lambda: stack.genesys.requests("create_call"), 10)  # the first holds the key now
        second = pool.submit(stack.post, "/api/calls", {"to": NY_NUMBER}, headers=key)
        answers = first.result(timeout=30), second.result(timeout=30)

    assert statuses == [200]
    assert answers[0].json()["code"] == "genesys_rejected_request", answers[0].text
    assert (answers[1].status_code, answers[1].json()["code"]) == (403, "do_not_call"), answers[1].text
    assert len(stack.creates()) == 1  # the first attempt's, which Genesys refused


def test_a_number_listed_during_a_genesys_429_wait_is_not_dialed(stack: Stack, numbers_in_client_urls: None) -> None:
    statuses, list_it = listing(stack, NY_NUMBER)
    stack.genesys.inject("create_call", Fault(status=429, retry_after=3, before_answer=list_it))

    refused = stack.post("/api/calls", {"to": NY_NUMBER})

    assert statuses == [200]
    assert (refused.status_code, refused.json()["code"]) == (403, "do_not_call"), refused.text
    assert len(stack.creates()) == 1  # the one answered 429: nothing was re-sent


def test_a_bad_number_in_the_path_is_a_clear_400(stack: Stack) -> None:
    response = dnc(stack, "PUT", "not a number")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_phone_number"
    assert response.json()["field"] == "number"


def test_a_slash_in_the_number_and_a_region_given_twice_are_read_or_named(
    stack: Stack, numbers_in_client_urls: None
) -> None:
    """The host keeps `%2F` encoded in a route value (decoded, it would match another route): `030/12345678` was
    refused as "not a phone number: '030%2F12345678'". A query parameter given twice reaches the app joined by a
    comma, and was refused as no country code."""
    listed = dnc(stack, "PUT", "030/12345678", params={"region": "DE"})
    twice = stack.session.get(f"{stack.host.base_url}/api/do-not-call/0301234567?region=US&region=GB", timeout=30)
    same_twice = stack.session.get(f"{stack.host.base_url}/api/do-not-call/0301234567?region=DE&Region=DE", timeout=30)

    assert (listed.status_code, listed.json()["number"]) == (200, "+493012345678"), listed.text
    assert (twice.status_code, twice.json()["field"]) == (400, "region")
    assert "given more than once" in twice.json()["detail"]
    assert (same_twice.status_code, same_twice.json()["number"]) == (200, "+49301234567")


def test_a_national_number_is_read_in_the_region_named_by_any_spelling_of_region(
    stack: Stack, numbers_in_client_urls: None
) -> None:
    """ASP.NET Core reads a query case-insensitively and the host hands the names over as sent: `?Region=GB`."""
    added = dnc(stack, "PUT", "07911 123456", params={"Region": "GB"})

    assert added.status_code == 200, added.text
    assert added.json()["number"] == "+447911123456"


def test_the_country_is_checked_before_the_do_not_call_list(
    stack: Stack, configure, numbers_in_client_urls: None
) -> None:
    configure(ALLOWED_COUNTRIES="US")
    dnc(stack, "PUT", LONDON_NUMBER)

    response = stack.post("/api/calls", {"to": LONDON_NUMBER})

    assert response.json()["code"] == "destination_not_allowed"


@pytest.mark.parametrize(("body", "field"), [({"region": "GB"}, "region"), ({"reasn": "asked"}, "reasn")])
def test_a_listing_with_a_field_it_does_not_take_is_refused(
    stack: Stack, numbers_in_client_urls: None, body: dict[str, str], field: str
) -> None:
    """A `region` in the body was ignored: 020 7946 0958 was listed as a US number, and the London one stayed
    callable."""
    refused = dnc(stack, "PUT", "020 7946 0958", json=body)

    assert refused.status_code == 400, refused.text
    assert (refused.json()["code"], refused.json()["field"]) == ("validation_failed", field)
    assert dnc(stack, "GET", LONDON_NUMBER).json()["listed"] is False
    assert dnc(stack, "GET", "+12079460958").json()["listed"] is False


def import_listing(
    stack: Stack, listing: Path, *arguments: str, **environment: str
) -> subprocess.CompletedProcess[str]:
    """scripts/import_do_not_call.py on `listing` (national numbers read in US unless `arguments` say otherwise),
    against the test's storage and table unless `environment` says otherwise, once the app has made its table (as
    a deployed app has, by its first call or readiness check)."""
    assert dnc(stack, "GET", "+12125550100").status_code == 200
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "import_do_not_call.py"),
            str(listing),
            *(arguments or ("--region", "US")),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **environment},
        check=False,
    )


def test_a_csv_list_is_imported_in_bulk(stack: Stack, tmp_path: Path) -> None:
    listing = tmp_path / "dnc.csv"
    listing.write_text(
        "Number (E.164),reason\n(212) 555-0199,opted out\n+44 20 7946 0958,\nnot-a-number,\n212-555-0199,dup\n"
    )

    imported = import_listing(stack, listing)

    assert imported.returncode == 1, imported.stderr  # a line not listed fails the run: its number can be called
    assert f"imported 2 numbers into table {os.environ['DO_NOT_CALL_TABLE']!r} (national numbers read in US)" in (
        imported.stdout
    )
    assert "NOT listed: 1 unreadable lines (line 4)" in imported.stderr  # named by line, not by its content
    assert "not-a-number" not in imported.stdout + imported.stderr
    assert stack.post("/api/calls", {"to": NY_NUMBER}).json()["code"] == "do_not_call"
    assert stack.post("/api/calls", {"to": LONDON_NUMBER}).json()["code"] == "do_not_call"


def test_an_unreadable_first_line_with_digits_is_no_header(stack: Stack, tmp_path: Path) -> None:
    """The first line was always skipped as a header: a number there that could not be read (an extension) went
    unlisted, and the import said nothing."""
    listing = tmp_path / "dnc.csv"
    listing.write_text("(212) 555-0100 x12,front desk\n(212) 555-0199,opted out\n")

    imported = import_listing(stack, listing)

    assert imported.returncode == 1, imported.stderr
    assert "imported 1 numbers" in imported.stdout
    assert "(line 1)" in imported.stderr


def test_the_import_reads_national_numbers_in_the_region_it_is_given(stack: Stack, configure, tmp_path: Path) -> None:
    """The region came from the operator's shell (or US), not the app: for an app reading numbers in MX, Mexico
    City's 55 1234 5678 was listed as the New Jersey +1 551 234 5678, and the Mexican number stayed callable.
    It is required now, and checked."""
    configure(DEFAULT_PHONE_REGION="MX", ALLOWED_COUNTRIES=None)
    listing = tmp_path / "dnc.csv"
    listing.write_text("55 1234 5678\n")

    missing = import_listing(stack, listing, "--table", os.environ["DO_NOT_CALL_TABLE"])
    unknown = import_listing(stack, listing, "--region", "UK")
    imported = import_listing(stack, listing, "--region", "mx")

    assert missing.returncode == 2 and "--region" in missing.stderr
    assert unknown.returncode == 2 and "ISO country code" in unknown.stderr
    assert imported.returncode == 0, imported.stderr
    assert "(national numbers read in MX)" in imported.stdout
    assert dnc(stack, "GET", "+525512345678").json()["listed"] is True
    assert dnc(stack, "GET", "+15512345678").json()["listed"] is False
    assert stack.post("/api/calls", {"to": "55 1234 5678"}).json()["code"] == "do_not_call"


def test_the_import_writes_into_the_table_it_is_told_and_only_one_that_is_there(stack: Stack, tmp_path: Path) -> None:
    """`--table` over DO_NOT_CALL_TABLE: the operator's shell may not hold the app's table name. A name mistyped
    made and filled a table the app never reads, and the import said it had listed every number."""
    listing = tmp_path / "dnc.csv"
    listing.write_text("+12125550199\n")
    table = os.environ["DO_NOT_CALL_TABLE"]
    mistyped = f"x{uuid.uuid4().hex}"

    refused = import_listing(stack, listing, "--region", "US", "--table", mistyped)
    imported = import_listing(stack, listing, "--region", "US", "--table", table, DO_NOT_CALL_TABLE="elsewhere")
    created = import_listing(stack, listing, "--region", "US", "--table", mistyped, "--create-table")

    assert refused.returncode == 2 and f"There is no table {mistyped!r}" in refused.stderr
    assert imported.returncode == 0, imported.stderr
    assert stack.post("/api/calls", {"to": NY_NUMBER}).json()["code"] == "do_not_call"
    assert created.returncode == 0 and f"into table {mistyped!r}" in created.stdout


def test_rows_the_import_cannot_take_whole_are_listed_or_named_by_their_line(stack: Stack, tmp_path: Path) -> None:
    """A reason longer than a table property holds failed its whole transaction and ended the import with a
    traceback; a row with its first cell empty was skipped unreported; a reason spanning lines shifted every
    later line number."""
    listing = tmp_path / "dnc.csv"
    listing.write_text(
        "number,reason\n"
        f"+12125550101,{'x' * 40_000}\n"  # line 2: listed, its reason cut
        '+12125550102,"asked\non the phone"\n'  # lines 3-4
        ",+12125550103\n"  # line 5: the number in the wrong column
        "\n"
        "+12125550104 x12,front desk\n"  # line 7
    )

    imported = import_listing(stack, listing)

    assert imported.returncode == 1, imported.stderr
    assert "imported 2 numbers" in imported.stdout
    assert "reasons cut to 256 characters: line 2" in imported.stdout
    assert "NOT listed: 2 unreadable lines (line 5, 7)" in imported.stderr
    assert "Traceback" not in imported.stderr
    assert dnc(stack, "GET", "+12125550101").json()["reason"] == "x" * 256
    assert dnc(stack, "GET", "+12125550102").json()["reason"] == "asked\non the phone"


def test_a_number_in_a_later_column_is_named_not_dropped(stack: Stack, tmp_path: Path) -> None:
    """A list exported with two phone columns (home, mobile) was imported with exit status 0: the second column
    was read as the first number's reason, a third cell was dropped, and half the numbers stayed callable."""
    listing = tmp_path / "dnc.csv"
    listing.write_text(
        "+1 212 555 0101,+1 212 555 0102\n"  # line 1: a second number where the reason goes
        "+1 212 555 0103,asked 2026-11-01,+1 212 555 0104\n"  # line 2: a third cell
        "+1 212 555 0105,asked by phone, on 2026-11-01\n"  # line 3: a reason with a comma, not quoted
        "+1 212 555 0106,complaint ref 2125550100,,\n"  # line 4: a reference in words, and a spreadsheet's padding
    )

    imported = import_listing(stack, listing)

    assert imported.returncode == 1, imported.stdout
    assert "imported 4 numbers" in imported.stdout
    assert "NOT listed: the numbers after the first cell of 2 lines (line 1, 2)" in imported.stderr
    listed = [dnc(stack, "GET", f"+1212555010{n}").json()["listed"] for n in (1, 2, 3, 4, 5, 6)]
    assert listed == [True, False, True, False, True, True]
    reasons = [dnc(stack, "GET", f"+1212555010{n}").json()["reason"] for n in (1, 3, 5, 6)]
    assert reasons == [None, "asked 2026-11-01", "asked by phone, on 2026-11-01", "complaint ref 2125550100"]


def test_a_quote_left_open_refuses_the_list_whole(stack: Stack, tmp_path: Path) -> None:
    """A reason's quote never closed took every later line into that reason: their numbers went unlisted, the
    import said it had listed the list, and the numbers were stored in full as the first one's reason."""
    listing = tmp_path / "dnc.csv"
    listing.write_text(
        'number,reason\n+12125550101,web form\n+12125550102,"said stop calling\n+12125550103,\n+12125550104,email\n'
    )

    refused = import_listing(stack, listing)

    assert refused.returncode == 2, refused.stdout
    assert "line 3 (to 5) is not CSV" in refused.stderr and "nothing was imported" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert dnc(stack, "GET", "+12125550101").json()["listed"] is False  # nothing of it was imported


def test_rows_a_stray_quote_took_into_a_reason_are_named_not_swallowed(stack: Stack, tmp_path: Path) -> None:
    """A quote that closes at the end of a later line is valid CSV: the lines between are one reason. The row's
    own number is listed; the numbers it took in are named by their lines."""
    listing = tmp_path / "dnc.csv"
    listing.write_text(
        '+12125550101,"said stop\n+12125550102,web form\n+12125550103,asked"\n'  # lines 1-3: one record
        '+12125550104,"asked\non the phone"\n'  # lines 4-5: a reason of two lines, no number in it
    )

    imported = import_listing(stack, listing)

    assert imported.returncode == 1, imported.stderr
    assert "imported 2 numbers" in imported.stdout
    assert "NOT listed: 2 unreadable lines (line 2, 3)" in imported.stderr
    assert [dnc(stack, "GET", f"+1212555010{n}").json()["listed"] for n in (1, 2, 3, 4)] == [True, False, False, True]
    assert dnc(stack, "GET", "+12125550101").json()["reason"] == "said stop"  # not the numbers it took in


def test_a_list_that_is_not_utf8_is_refused_whole(stack: Stack, tmp_path: Path) -> None:
    """Excel's default CSV in many locales is cp1252: it ended in a UnicodeDecodeError traceback."""
    listing = tmp_path / "dnc.csv"
    listing.write_bytes("+12125550199,opted out\n+12125550198,pr\u00e9f\u00e8re pas\n".encode("cp1252"))

    refused = import_listing(stack, listing)

    assert refused.returncode == 2
    assert "line 2 is not UTF-8" in refused.stderr and "CSV UTF-8" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert dnc(stack, "GET", NY_NUMBER).json()["listed"] is False  # nothing of it was imported


def test_an_import_that_storage_stops_names_what_it_did_not_list_and_a_rerun_finishes_it(
    stack: Stack, configure, azurite: Azurite, tmp_path: Path
) -> None:
    """A transaction storage refused ended the import with a traceback, saying neither what was written nor what
    was not."""
    listing = tmp_path / "dnc.csv"
    numbers = [f"+1212555{n:04d}" for n in range(250)]
    listing.write_text("".join(f"{number}\n" for number in numbers))
    with table_front(azurite.ports["Table"]) as front:
        front.failing_write_when = lambda body: b"+12125550150" in body  # the second transaction of three
        stopped = import_listing(stack, listing, AzureWebJobsStorage=through_front(azurite, front))

    assert stopped.returncode == 1, stopped.stderr
    assert "imported 100 numbers" in stopped.stdout
    assert "NOT listed: 150 numbers (line 101, 102," in stopped.stderr and "and 130 more" in stopped.stderr
    assert "import the list again" in stopped.stderr
    assert dnc(stack, "GET", numbers[99]).json()["listed"] is True
    assert dnc(stack, "GET", numbers[100]).json()["listed"] is False

    rerun = import_listing(stack, listing)

    assert rerun.returncode == 0, rerun.stderr
    assert all(dnc(stack, "GET", number).json()["listed"] for number in (numbers[100], numbers[249]))


def test_a_number_imported_again_keeps_the_date_it_was_listed(stack: Stack, tmp_path: Path) -> None:
    """Importing over a list (the way to replace one) set every listing's date to the import's: the date a person
    asked not to be called was lost."""
    assert dnc(stack, "PUT", NY_NUMBER, json={"reason": "asked by phone"}).status_code == 200
    table = app_table(os.environ["DO_NOT_CALL_TABLE"])
    (entity,) = table.query_entities("Number eq @n", parameters={"n": NY_NUMBER})
    entity["AddedAt"] = 1_700_000_000.0  # listed in November 2023
    table.update_entity(entity)
    listing = tmp_path / "dnc.csv"
    listing.write_text(f"{NY_NUMBER}\n+12125550198\n")

    imported = import_listing(stack, listing)

    assert imported.returncode == 0, imported.stderr
    kept = dnc(stack, "GET", NY_NUMBER).json()
    assert (kept["addedAt"], kept["reason"]) == ("2023-11-14T22:13:20Z", "asked by phone")  # a row without a reason
    added = datetime.strptime(dnc(stack, "GET", "+12125550198").json()["addedAt"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs(added.replace(tzinfo=timezone.utc).timestamp() - time.time()) < 120  # a new one: now


@pytest.mark.parametrize(
    ("storage", "says"),
    [
        ({}, "AzureWebJobsStorage__accountName"),
        ({"AzureWebJobsStorage__tableServiceUri": "https://st.table.core.windows.net"}, "__queueServiceUri"),
        # the SDK refuses it when the client is made: that was a traceback and exit status 1 ("not all listed")
        ({"AzureWebJobsStorage": "AccountName=x;garbage"}, "is not a storage connection string"),
    ],
    ids=["none", "table-uri-only", "unreadable-connection-string"],
)
def test_the_import_without_usable_storage_says_which_setting_and_touches_nothing(
    tmp_path: Path, storage: dict[str, str], says: str
) -> None:
    listing = tmp_path / "dnc.csv"
    listing.write_text("+12125550199\n")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AzureWebJobsStorage")}

    refused = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "import_do_not_call.py"), str(listing), "--region", "US"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environment, **storage},
        check=False,
    )

    assert refused.returncode == 2
    assert says in refused.stderr
    assert "Traceback" not in refused.stderr


# ---- the cap per number --------------------------------------------------------------------------------------


def test_twenty_concurrent_requests_against_a_cap_of_three_place_exactly_three(stack: Stack, configure) -> None:
    configure(CALLS_PER_NUMBER_LIMIT="3", CALLS_PER_NUMBER_WINDOW_HOURS="24")

    def call(n: int):
        return stack.session.post(
            stack.host.base_url + "/api/calls",
            json={"to": NY_NUMBER},
            headers={"Idempotency-Key": f"cap-{n}"},
            timeout=60,
        )

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(call, range(20)))

    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 3 + [429] * 17
    refused = [a for a in answers if a.status_code == 429]
    assert all(a.json()["code"] == "call_limit_reached" for a in refused)
    assert all(0 < int(a.headers["Retry-After"]) <= 24 * 3600 for a in refused)
    assert len(stack.creates()) == 3


def test_a_replay_is_not_a_new_call_and_a_refusal_is_not_counted(stack: Stack, configure) -> None:
    configure(CALLS_PER_NUMBER_LIMIT="2")
    first = stack.post("/api/calls", {"to": NY_NUMBER}, headers={"Idempotency-Key": "cap-replay"})
    replay = stack.post("/api/calls", {"to": NY_NUMBER}, headers={"Idempotency-Key": "cap-replay"})
    refused = stack.post("/api/calls", {"to": NY_NUMBER, "from": "+15005550006"})  # caller ID not allowed
    validated = stack.post("/api/calls/validate", {"to": NY_NUMBER})
    second = stack.post("/api/calls", {"to": NY_NUMBER}, headers={"Idempotency-Key": "cap-second"})
    third = stack.post("/api/calls", {"to": NY_NUMBER}, headers={"Idempotency-Key": "cap-third"})

    assert (first.status_code, replay.headers["Idempotent-Replayed"]) == (201, "true")
    assert refused.json()["code"] == "caller_id_not_allowed"
    assert validated.status_code == 200
    assert second.status_code == 201
    assert (third.status_code, third.json()["code"]) == (429, "call_limit_reached")
    assert stack.post("/api/calls/validate", {"to": NY_NUMBER}).json()["code"] == "call_limit_reached"
    assert len(stack.creates()) == 2


def test_a_count_whose_write_answer_was_lost_is_counted_once(stack: Stack, configure, azurite: Azurite) -> None:
    """The count's insert reached the table and its answer was lost (a 503 on the way back); azure-core sent it
    again and met 409, read as another instance counting first. The count then added itself again: with a limit
    of 1 the call was refused, and the number blocked for the whole window, though nothing was dialed."""
    with table_front(azurite.ports["Table"]) as front:
        configure(AzureWebJobsStorage=through_front(azurite, front), CALLS_PER_NUMBER_LIMIT="1")
        front.lost_answers_only_for = lambda body: b'"cap:' in body  # the number's count record, first written
        front.lost_insert_answers = 1

        placed = stack.post("/api/calls", {"to": NY_NUMBER})
        again = stack.post("/api/calls", {"to": "+1 212 555 0199"}, headers={"Idempotency-Key": "a-second-call"})

    assert front.lost_insert_answers == 0  # the fault did happen
    assert placed.status_code == 201, placed.text
    assert (again.status_code, again.json()["code"]) == (429, "call_limit_reached")
    assert again.json()["callsInWindow"] == 1  # counted once
    assert len(stack.creates()) == 1


def test_a_count_whose_insert_answer_never_came_is_its_own_and_counted_once(
    stack: Stack, configure, azurite: Azurite
) -> None:
    """The count's insert landed and the connection ended with no answer (azure-core does not send a POST again):
    the request answered 503 "nothing was dialed", and its retry counted the call a second time, so a number with
    one call placed was refused at a limit of two."""
    with table_front(azurite.ports["Table"]) as front:
        configure(AzureWebJobsStorage=through_front(azurite, front), CALLS_PER_NUMBER_LIMIT="2")
        front.lost_answers_only_for = lambda body: b'"cap:' in body  # the number's count record, first written
        front.dropped_insert_answers = 1

        placed = stack.post("/api/calls", {"to": NY_NUMBER})
        second = stack.post("/api/calls", {"to": NY_NUMBER}, headers={"Idempotency-Key": "a-second-call"})

    assert front.dropped_insert_answers == 0, "the fault did not happen"
    assert placed.status_code == 201, placed.text
    assert second.status_code == 201, second.text
    assert len(stack.creates()) == 2


@pytest.mark.parametrize("idempotency_key", ["cap-full-retry", None])
def test_a_retry_of_a_placed_call_replays_it_when_the_cap_is_now_full(
    stack: Stack, configure, idempotency_key: str | None
) -> None:
    """The call filled the cap. Its retry (its answer was lost) is the same request: it replays the call
    rather than being refused, or a signed sender would redeliver until the answer expired, then dial."""
    configure(CALLS_PER_NUMBER_LIMIT="1")
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    first = stack.post("/api/calls", {"to": NY_NUMBER}, headers=headers)

    retry = stack.post("/api/calls", {"to": "(212) 555-0199"}, headers=headers)  # the same call, written otherwise
    other = stack.post("/api/calls", {"to": NY_NUMBER}, headers={"Idempotency-Key": "cap-full-other"})

    assert first.status_code == 201, first.text
    assert (retry.status_code, retry.headers.get("Idempotent-Replayed")) == (201, "true"), retry.text
    assert retry.json()["conversationId"] == first.json()["conversationId"]
    assert (other.status_code, other.json()["code"]) == (429, "call_limit_reached")
    assert len(stack.creates()) == 1


def calls_made_earlier(number: str, seconds: float) -> None:
    """Rewrite a number's cap record as if its calls had been counted `seconds` earlier."""
    store = app_store()
    counted = store.read("cap:" + number)
    assert counted is not None and counted.data is not None
    earlier = {
        "counts": [[at - seconds, token] for at, token in counted.data["counts"]],
        "calls": [at - seconds for at in counted.data["calls"]],
    }
    assert store.replace(replace(counted, expires_at=counted.expires_at - seconds, data=earlier)) is not None


def test_a_longer_window_counts_the_calls_counted_under_a_shorter_one(stack: Stack, configure) -> None:
    """Changed from 24 hours to 7 days (Regulation F's 7 in 7 days), a cap forgot the calls made before the last day:
    the record was purged a retention after the 24 h window, and every count rewrote it with that window's calls
    alone."""
    configure(CALLS_PER_NUMBER_LIMIT="2", CALLS_PER_NUMBER_WINDOW_HOURS="24")
    day = 86400.0
    assert stack.post("/api/calls", {"to": NY_NUMBER}).status_code == 201
    calls_made_earlier(NY_NUMBER, 2 * day)
    assert stack.post("/api/calls", {"to": NY_NUMBER, "from": "+13175550100"}).status_code == 201  # 1 in 24 h
    calls_made_earlier(NY_NUMBER, 1 * day)  # the calls were 3 days and 1 day ago
    services().idempotency.purge()

    configure(CALLS_PER_NUMBER_LIMIT="2", CALLS_PER_NUMBER_WINDOW_HOURS="168")
    capped = stack.post("/api/calls", {"to": NY_NUMBER, "from": "+13175550101"})

    assert (capped.status_code, capped.json().get("code")) == (429, "call_limit_reached"), capped.text
    assert capped.json()["callsInWindow"] == 2
    assert len(stack.creates()) == 2


@pytest.mark.parametrize("idempotency_key", ["dnc-unread", None], ids=["keyed", "keyless"])
def test_a_retry_of_a_placed_call_replays_it_while_the_do_not_call_list_cannot_be_read(
    stack: Stack, configure, azurite: Azurite, idempotency_key: str | None
) -> None:
    """The call was placed; its retry (its answer was lost) met a blip on the do-not-call table, read before the
    stored answer, and was told 503 "nothing was dialed ... the call was not placed" of a call Genesys had: a flow
    that then sent it anew rang the person twice. The stored answer is looked up past a storage refusal too."""
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    with table_front(azurite.ports["Table"]) as front:
        configure(AzureWebJobsStorage=through_front(azurite, front))
        first = stack.post("/api/calls", {"to": NY_NUMBER}, headers=headers)
        front.failing_reads_of = services().settings.do_not_call_table

        retry = stack.post("/api/calls", {"to": NY_NUMBER}, headers=headers)
        new = stack.post("/api/calls", {"to": NY_NUMBER}, headers={"Idempotency-Key": "dnc-unread-new"})

    assert first.status_code == 201, first.text
    assert front.refused > 0, "the do-not-call list was read"
    assert (retry.status_code, retry.headers.get("Idempotent-Replayed")) == (201, "true"), retry.text
    assert retry.json()["conversationId"] == first.json()["conversationId"]
    assert (new.status_code, new.json()["code"]) == (503, "idempotency_store_unavailable")
    assert len(stack.creates()) == 1


def test_a_retry_of_a_placed_call_replays_it_after_the_hours_closed(stack: Stack, configure) -> None:
    configure(CALLING_HOURS=window_including_now(NEW_YORK))
    first = stack.post("/api/calls", {"to": NY_NUMBER}, headers={"Idempotency-Key": "hours-closed"})
    configure(CALLING_HOURS=window_excluding_now(NEW_YORK)[0])

    retry = stack.post("/api/calls", {"to": NY_NUMBER}, headers={"Idempotency-Key": "hours-closed"})
    new = stack.post("/api/calls", {"to": NY_NUMBER}, headers={"Idempotency-Key": "hours-closed-new"})

    assert first.status_code == 201, first.text
    assert (retry.status_code, retry.headers.get("Idempotent-Replayed")) == (201, "true"), retry.text
    assert new.json()["code"] == "outside_calling_hours"
    assert len(stack.creates()) == 1


@pytest.mark.parametrize(
    ("fault", "counted"),
    [
        (Fault(status=429, retry_after=120), False),  # rate-limited past the deadline: never sent
        (Fault(status=400, code="invalid.value"), False),  # Genesys refused it: nothing rang
        (Fault(status=503), True),  # sent, outcome unknown: it may have rung
    ],
)
def test_a_counted_call_that_was_not_placed_is_taken_back(stack: Stack, configure, fault: Fault, counted: bool) -> None:
    configure(CALLS_PER_NUMBER_LIMIT="1")
    stack.genesys.inject("create_call", fault)

    failed = stack.post("/api/calls", {"to": NY_NUMBER}, headers={"Idempotency-Key": "not-placed"})
    again = stack.post("/api/calls", {"to": NY_NUMBER}, headers={"Idempotency-Key": "not-placed-again"})

    assert failed.status_code >= 400, failed.text
    if counted:
        assert (again.status_code, again.json()["code"]) == (429, "call_limit_reached")
    else:
        assert again.status_code == 201, again.text


def test_retry_after_counts_from_the_call_that_brings_a_number_under_a_lowered_cap(stack: Stack, configure) -> None:
    """Three calls counted 50, 33 and 17 minutes ago, then the limit lowered to one an hour: the number is under
    it again only when the newest of them leaves the window, in 43 minutes (not when the oldest does, in 10)."""
    configure(CALLS_PER_NUMBER_LIMIT="1", CALLS_PER_NUMBER_WINDOW_HOURS="1")
    now = time.time()
    calls = [now - 3000, now - 2000, now - 1000]
    app_store().create(Record("cap:" + NY_NUMBER, "", "counting", "cap", now, now + 3600, data={"calls": calls}))

    refused = stack.post("/api/calls", {"to": NY_NUMBER})

    assert refused.json()["code"] == "call_limit_reached"
    assert 2590 <= int(refused.headers["Retry-After"]) <= 2601


NON_GEOGRAPHIC = "+80012345678"  # International Freephone: a number of no country


def test_a_number_of_no_country_is_named_so(stack: Stack, configure) -> None:
    configure(ALLOWED_COUNTRIES="US")

    response = stack.post("/api/calls/validate", {"to": NON_GEOGRAPHIC})

    assert response.status_code == 403, response.text
    problem = response.json()
    assert (problem["reason"], problem["country"], problem["understood"]["region"]) == (
        "country_not_allowed",
        None,
        None,
    )
    assert "a non-geographic network" in problem["detail"]


def test_calling_hours_for_a_number_of_no_country_point_at_the_one_setting_that_works(stack: Stack, configure) -> None:
    configure(CALLING_HOURS="00:00-23:59")

    response = stack.post("/api/calls/validate", {"to": NON_GEOGRAPHIC})

    assert response.json()["code"] == "outside_calling_hours"
    assert "CALLING_HOURS=off" in response.json()["hint"]
    assert "CALLING_HOURS_BY_COUNTRY" not in response.json()["hint"]


def held_create(stack: Stack, fault: Fault) -> threading.Event:
    """The next create reaches the Genesys emulator and waits there until the returned event is set."""
    release = threading.Event()
    stack.genesys.inject("create_call", replace(fault, before_answer=lambda: release.wait(30)))
    return release


def a_retry_waits_on_the_first(stack: Stack, fault: Fault, headers: dict[str, str]) -> tuple[Response, Response]:
    """The first attempt counts the call (the cap of one is full) and is held at Genesys; the same request again
    must wait for it, not be refused at once. Then the first is answered as `fault` says."""
    release = held_create(stack, fault)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(stack.post, "/api/calls", {"to": NY_NUMBER}, headers=headers)
        while not stack.creates():  # the first has counted the call and is dialing
            time.sleep(0.01)
        retry = pool.submit(stack.post, "/api/calls", {"to": NY_NUMBER}, headers=headers)
        with pytest.raises(FutureTimeout):  # still waiting: the old code refused it with 429 at once
            retry.result(timeout=1.0)
        release.set()
        return first.result(), retry.result()


def test_a_retry_while_the_call_is_still_being_placed_waits_for_it_rather_than_being_refused(
    stack: Stack, configure
) -> None:
    configure(CALLS_PER_NUMBER_LIMIT="1")

    placed, retry = a_retry_waits_on_the_first(
        stack, Fault(status=None, then_succeed=True), {"Idempotency-Key": "cap-in-flight"}
    )

    assert placed.status_code == 201, placed.text
    assert (retry.status_code, retry.headers.get("Idempotent-Replayed")) == (201, "true"), retry.text
    assert retry.json()["conversationId"] == placed.json()["conversationId"]
    assert len(stack.genesys.org.conversations) == 1


def test_a_retry_that_waited_on_an_attempt_genesys_refused_is_not_told_the_cap_is_full(stack: Stack, configure) -> None:
    """The first attempt's count is taken back when Genesys refuses it: its waiting retry must not answer the
    cap's refusal read before the wait (429 for a day), but a prompt retry that then places the call."""
    configure(CALLS_PER_NUMBER_LIMIT="1")
    headers = {"Idempotency-Key": "cap-in-flight-refused"}

    refused, retry = a_retry_waits_on_the_first(stack, Fault(status=400, code="invalid.value"), headers)
    again = stack.post("/api/calls", {"to": NY_NUMBER}, headers=headers)

    assert refused.json()["code"] == "genesys_rejected_request"
    assert (retry.status_code, retry.json()["code"], retry.headers["Retry-After"]) == (409, "request_in_progress", "1")
    assert again.status_code == 201, again.text


def test_an_asynchronous_retry_of_a_placed_call_is_accepted_and_replays_it(stack: Stack, configure) -> None:
    configure(CALLS_PER_NUMBER_LIMIT="1", ASYNC_RETRY_AFTER_SECONDS="1")
    headers = {"Idempotency-Key": "cap-async-retry"}
    first = stack.post("/api/calls", {"to": NY_NUMBER}, headers=headers)

    accepted = stack.post("/api/calls", {"to": NY_NUMBER}, headers={**headers, **ASYNC})
    final, _ = follow(stack, accepted)
    other = stack.post("/api/calls", {"to": NY_NUMBER}, headers={"Idempotency-Key": "cap-async-other", **ASYNC})

    assert first.status_code == 201, first.text
    assert final.status_code == 201, final.text
    assert final.json()["conversationId"] == first.json()["conversationId"]
    assert (other.status_code, other.json()["code"]) == (429, "call_limit_reached")
    assert len(stack.creates()) == 1


def test_a_keyless_duplicate_queued_inside_the_window_replays_the_call_when_it_runs_after_it(
    stack: Stack, configure
) -> None:
    """Accepted inside the first call's window and run after it, the job is that call's duplicate, as the claim
    finds it: the cap that call filled must not answer it 429, which a flow would take for "not called"."""
    configure(CALLS_PER_NUMBER_LIMIT="1", ASYNC_RETRY_AFTER_SECONDS="1", DUPLICATE_WINDOW_SECONDS="1")
    first = stack.post("/api/calls", {"to": NY_NUMBER})
    with queue_listener_away(stack):
        accepted = stack.post("/api/calls", {"to": NY_NUMBER}, headers=ASYNC)
        time.sleep(1.2)  # the first call's window is over when the job runs

    final, _ = follow(stack, accepted)

    assert first.status_code == 201, first.text
    assert (final.status_code, final.headers.get("Idempotent-Replayed")) == (201, "true"), final.text
    assert final.json()["conversationId"] == first.json()["conversationId"]
    assert len(stack.creates()) == 1


def test_a_request_whose_answer_expired_is_a_new_one_and_is_refused_at_once(stack: Stack, configure) -> None:
    """Past its retention the key is free: the same request again is new, and the full cap refuses it now,
    not after it was queued."""
    configure(CALLS_PER_NUMBER_LIMIT="1")
    headers = {"Idempotency-Key": "cap-expired"}
    assert stack.post("/api/calls", {"to": NY_NUMBER}, headers=headers).status_code == 201
    backdate("key:cap-expired", services().settings.idempotency_retention_seconds + 1)  # the cap's record stays

    again = stack.post("/api/calls", {"to": NY_NUMBER}, headers={**headers, **ASYNC})

    assert (again.status_code, again.json()["code"]) == (429, "call_limit_reached"), again.text
    assert len(stack.creates()) == 1
