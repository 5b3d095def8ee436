"""Calling hours at their edges, with the moment given (a narrow test of the rule; tests/test_calling_policy.py
goes through the HTTP routes with windows chosen relative to now)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from phonenumbers import timezone as phonenumbers_timezone

from shared.errors import Problem
from shared.phone import PhoneNumber
from shared.policy import RECHECK_AFTER_SECONDS, CallPolicy
from shared.policy.calling_hours import CallingHours, next_allowed, parse_window, time_zones
from shared.policy.do_not_call import MemoryDoNotCallList
from shared.policy.missed_time_zones import (
    MOBILES_RING_ANYWHERE_IN,
    NANP_OVERLAYS,
    RINGS_IN,
    zones_libphonenumber_misses,
    zones_of_north_american_area,
)

NEW_YORK = ZoneInfo("America/New_York")
NY_NUMBER = "+12125550199"
TOLL_FREE = "+18005550199"  # 42 candidate zones, from Guam to Pago Pago


def at(day: int, hour: int, minute: int, second: int = 0, zone: ZoneInfo = NEW_YORK) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=zone)


def refusal(hours: CallingHours, number: str, moment: datetime) -> Problem:
    with pytest.raises(Problem) as refused:
        hours.check(number, "US", moment)
    assert refused.value.code == "outside_calling_hours"
    return refused.value


NINE_TO_FIVE = CallingHours(parse_window("09:00-17:00"), {})


def test_the_window_starts_on_its_minute_and_ends_before_its_last() -> None:
    NINE_TO_FIVE.check(NY_NUMBER, "US", at(2, 9, 0))
    NINE_TO_FIVE.check(NY_NUMBER, "US", at(2, 16, 59, 59))
    early = refusal(NINE_TO_FIVE, NY_NUMBER, at(2, 8, 59, 59))
    late = refusal(NINE_TO_FIVE, NY_NUMBER, at(2, 17, 0))

    assert early.extensions["nextAllowedAt"] == "2026-03-02T14:00:00Z"  # 09:00 EST
    assert late.extensions["nextAllowedAt"] == "2026-03-03T14:00:00Z"
    assert early.extensions["timeZones"] == ["America/New_York"]


def test_next_allowed_follows_daylight_saving_time() -> None:
    # 2026-03-08: New York moves from EST (UTC-5) to EDT (UTC-4) at 02:00.
    refused = refusal(NINE_TO_FIVE, NY_NUMBER, at(7, 20, 0))

    assert refused.extensions["nextAllowedAt"] == "2026-03-08T13:00:00Z"  # 09:00 EDT


def test_a_window_that_opens_in_the_skipped_hour_opens_when_the_clocks_jump() -> None:
    """02:30 does not exist in New York on 2026-03-08: the window opens at 03:00 EDT, not an hour later (the skipped
    start read with the standard time's offset)."""
    hours = CallingHours(parse_window("02:30-21:00"), {})
    refused = refusal(hours, NY_NUMBER, at(8, 1, 0))  # 01:00 EST, before the jump

    assert refused.extensions["nextAllowedAt"] == "2026-03-08T07:00:00Z"  # 03:00 EDT
    hours.check(NY_NUMBER, "US", datetime(2026, 3, 8, 7, 0, tzinfo=timezone.utc))


def test_several_zones_must_all_be_inside() -> None:
    hours = CallingHours(parse_window("08:00-21:00"), {})
    noon_in_new_york = at(2, 12, 0)  # 07:00 in Honolulu (UTC-10)

    hours.check(NY_NUMBER, "US", noon_in_new_york)
    refused = refusal(hours, TOLL_FREE, noon_in_new_york)

    assert {"America/New_York", "Pacific/Honolulu", "Pacific/Guam"} <= set(refused.extensions["timeZones"])
    allowed_at = datetime.fromisoformat(refused.extensions["nextAllowedAt"].replace("Z", "+00:00"))
    hours.check(TOLL_FREE, "US", allowed_at)  # the answer is allowed in every zone, and is the first such moment
    with pytest.raises(Problem):
        hours.check(TOLL_FREE, "US", allowed_at - timedelta(seconds=1))


def test_zones_whose_windows_never_meet_have_no_next_moment() -> None:
    window = parse_window("08:00-09:00")
    assert window is not None

    assert next_allowed(window, ("America/New_York", "Asia/Tokyo"), at(2, 12, 0)) is None


def test_per_country_window_and_off() -> None:
    hours = CallingHours(None, {"GB": parse_window("09:00-20:00")})
    london_night = datetime(2026, 3, 2, 23, 0, tzinfo=timezone.utc)

    hours.check(NY_NUMBER, "US", london_night)  # off for every other country
    with pytest.raises(Problem) as refused:
        hours.check("+442079460958", "GB", london_night)
    assert refused.value.extensions["nextAllowedAt"] == "2026-03-03T09:00:00Z"


@pytest.mark.parametrize("text", ["8-21", "21:00-08:00", "08:00-08:00", "25:00-26:00", "08:60-09:00", "00:00-24:30"])
def test_malformed_windows_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_window(text)


def test_whole_day_and_off() -> None:
    assert str(parse_window("00:00-24:00")) == "00:00-24:00"
    assert parse_window("OFF") is None


def test_a_number_whose_zones_never_share_the_window_is_told_which_setting_helps() -> None:
    """US toll-free numbers span Guam to Pago Pago: 09:00-17:00 never holds in all 42 zones at once, so waiting
    for `nextAllowedAt` cannot help and the hint names the per-country setting instead."""
    never = refusal(NINE_TO_FIVE, TOLL_FREE, at(2, 12, 0))
    answer = never.to_json("r")

    assert answer["nextAllowedAt"] is None
    assert "does not hold in all 42 of its time zones at once in the next 3 days" in answer["detail"]
    assert answer["hint"].startswith("Set CALLING_HOURS_BY_COUNTRY=US=")
    later = refusal(NINE_TO_FIVE, NY_NUMBER, at(2, 18, 0)).to_json("r")  # a number that can wait keeps its hint
    assert later["nextAllowedAt"] is not None and later["hint"].startswith("Call again at 'nextAllowedAt'")


def test_a_mobile_of_a_country_sharing_its_calling_code_loses_the_other_countries_zones() -> None:
    """libphonenumber gives a Jamaican mobile all 42 zones of +1 (and a Kazakh one every zone of +7): the call
    would be allowed only 17:00-19:30 Jamaica time. The code's main country keeps them all: a Russian mobile
    keeps Europe/Bucharest, libphonenumber's stand-in for Kaliningrad, and a toll-free number may ring anywhere
    +1 reaches."""
    jamaica = ZoneInfo("America/Jamaica")
    hours = CallingHours(parse_window("08:00-21:00"), {})

    hours.check("+18762345678", "JM", datetime(2026, 3, 2, 9, 0, tzinfo=jamaica))  # allowed: nothing raised
    with pytest.raises(Problem) as early:
        hours.check("+18762345678", "JM", datetime(2026, 3, 2, 7, 59, tzinfo=jamaica))
    assert early.value.extensions["timeZones"] == ["America/Jamaica"]
    kazakh = time_zones("+77012345678", "KZ")
    assert "Asia/Almaty" in kazakh and "Asia/Anadyr" not in kazakh  # Chukotka is Russia's
    assert "Europe/Bucharest" in time_zones("+79123456789", "RU")
    assert len(time_zones(TOLL_FREE, "US")) == 42
    with pytest.raises(Problem):  # 07:05 in Kaliningrad, 08:05 in Moscow: the Russian mobile may be in either
        hours.check("+79123456789", "RU", datetime(2026, 1, 12, 7, 5, tzinfo=ZoneInfo("Europe/Kaliningrad")))


def test_zones_libphonenumber_gives_by_a_stand_in_are_kept_and_a_missing_own_zone_is_added() -> None:
    """Labrador (+1 879, CA) is given Puerto Rico's zone as its Atlantic time beside St John's: dropping it as
    another country's allowed 07:30 in Goose Bay. Every Moroccan number is given Atlantic/Canary alone, an hour
    behind Casablanca in winter: 20:30 there is 21:30 in Casablanca."""
    hours = CallingHours(parse_window("08:00-21:00"), {})

    assert {"America/Puerto_Rico", "America/St_Johns", "America/Goose_Bay"} <= set(time_zones("+18792345678", "CA"))
    with pytest.raises(Problem):  # 08:00 in St John's is 07:30 in Goose Bay
        hours.check("+18792345678", "CA", datetime(2026, 1, 15, 8, 0, tzinfo=ZoneInfo("America/St_Johns")))
    assert "Africa/Casablanca" in time_zones("+212661234567", "MA")
    with pytest.raises(Problem):
        hours.check("+212661234567", "MA", datetime(2026, 1, 15, 20, 30, tzinfo=ZoneInfo("Atlantic/Canary")))


def test_a_stand_in_zone_brings_the_countrys_own_zone_of_its_standard_time() -> None:
    """libphonenumber names Kaliningrad by Europe/Bucharest, which keeps summer time and Kaliningrad does not.
    A Russian mobile, whose list held Moscow and the rest but not Kaliningrad, was called at 07:05 there all
    summer; a Kaliningrad landline, given Bucharest alone, got all 26 Russian zones and was refused from 11:00."""
    kaliningrad = ZoneInfo("Europe/Kaliningrad")
    hours = CallingHours(parse_window("08:00-21:00"), {})

    assert "Europe/Kaliningrad" in time_zones("+79114501234", "RU")
    with pytest.raises(Problem):  # 08:05 in Bucharest
        hours.check("+79114501234", "RU", datetime(2026, 7, 1, 7, 5, tzinfo=kaliningrad))
    assert time_zones("+74012123456", "RU") == ("Europe/Kaliningrad",)  # a landline rings where it is
    hours.check("+74012123456", "RU", datetime(2026, 7, 1, 12, 0, tzinfo=kaliningrad))  # allowed: nothing raised
    hours.check("+74012123456", "RU", datetime(2026, 7, 1, 20, 5, tzinfo=kaliningrad))  # 21:05 in Bucharest
    with pytest.raises(Problem):
        hours.check("+74012123456", "RU", datetime(2026, 7, 1, 7, 5, tzinfo=kaliningrad))


def test_a_mobile_of_a_country_sharing_its_calling_code_keeps_only_its_own_zones() -> None:
    """A Kazakh mobile kept Europe/Bucharest from the +7 list (zone.tab files it under Romania, no +7 country):
    08:30 in Almaty, 05:30 in Bucharest, was refused until 11:00."""
    almaty = ZoneInfo("Asia/Almaty")

    assert "Europe/Bucharest" not in time_zones("+77012345678", "KZ")
    CallingHours(parse_window("08:00-21:00"), {}).check(
        "+77012345678", "KZ", datetime(2026, 7, 1, 8, 30, tzinfo=almaty)
    )


def test_a_missing_own_zone_is_added_whatever_the_numbers_type() -> None:
    """libphonenumber gives a Moroccan VoIP number Atlantic/Canary and an Algerian one Europe/Paris: 20:30 in the
    Canaries is 21:30 in Casablanca in winter, 08:30 in Paris is 07:30 in Algiers in summer."""
    hours = CallingHours(parse_window("08:00-21:00"), {})

    assert "Africa/Casablanca" in time_zones("+212592401234", "MA")
    assert "Africa/Algiers" in time_zones("+213983123456", "DZ")
    with pytest.raises(Problem):
        hours.check("+212592401234", "MA", datetime(2026, 1, 15, 20, 30, tzinfo=ZoneInfo("Atlantic/Canary")))
    with pytest.raises(Problem):
        hours.check("+213983123456", "DZ", datetime(2026, 7, 15, 8, 30, tzinfo=ZoneInfo("Europe/Paris")))


DEFAULT_HOURS = CallingHours(parse_window("08:00-21:00"), {})
# (number, its country, where it rings, a local moment outside 08:00-21:00 there but inside libphonenumber's zone)
RINGING_ELSEWHERE = [
    ("+526144151234", "MX", "America/Chihuahua", datetime(2026, 1, 15, 21, 30)),  # Chihuahua city
    ("+78452271234", "RU", "Europe/Saratov", datetime(2026, 1, 15, 21, 30)),
    ("+18676671234", "CA", "America/Whitehorse", datetime(2026, 1, 15, 21, 30)),
    ("+12507851234", "CA", "America/Dawson_Creek", datetime(2026, 7, 15, 7, 30)),  # Fort St. John
    ("+12507741234", "CA", "America/Fort_Nelson", datetime(2026, 7, 15, 7, 30)),
    ("+12504281234", "CA", "America/Creston", datetime(2026, 7, 15, 7, 30)),
    ("+13068251234", "CA", "America/Edmonton", datetime(2026, 1, 15, 7, 30)),  # Lloydminster
    ("+18075971234", "CA", "America/Atikokan", datetime(2026, 7, 15, 7, 30)),
    ("+56612211234", "CL", "America/Punta_Arenas", datetime(2026, 7, 15, 21, 30)),
    ("+56672211234", "CL", "America/Punta_Arenas", datetime(2026, 7, 15, 21, 30)),  # Coyhaique
    ("+559135221234", "BR", "America/Belem", datetime(2026, 1, 15, 21, 30)),  # Para, outside Belem
    ("+559332211234", "BR", "America/Santarem", datetime(2026, 1, 15, 21, 30)),
    ("+559432211234", "BR", "America/Belem", datetime(2026, 1, 15, 21, 30)),  # Maraba
    ("+559734121234", "BR", "America/Eirunepe", datetime(2026, 1, 15, 7, 30)),
    ("+528688123456", "MX", "America/Matamoros", datetime(2026, 7, 15, 21, 30)),  # US daylight saving time
    ("+528978123456", "MX", "America/Matamoros", datetime(2026, 7, 15, 21, 30)),  # Miguel Aleman
    ("+6281234567890", "ID", "Asia/Jayapura", datetime(2026, 7, 15, 22, 30)),  # a mobile: anywhere in Indonesia
    ("+6281234567890", "ID", "Asia/Makassar", datetime(2026, 7, 15, 21, 30)),
    ("+56961234567", "CL", "Pacific/Easter", datetime(2026, 7, 15, 6, 30)),  # a mobile: anywhere in Chile
    ("+67571234567", "PG", "Pacific/Bougainville", datetime(2026, 7, 15, 21, 30)),
    # North American area codes that span clocks: any zone of the code, and of the codes an overlay overlays
    ("+18679751234", "CA", "America/Toronto", datetime(2026, 7, 15, 23, 30)),  # Iqaluit; unplaced: Fort Nelson's
    ("+18506811234", "US", "America/New_York", datetime(2026, 7, 15, 21, 30)),  # Tallahassee, filed under Chicago
    ("+14742001234", "CA", "America/Regina", datetime(2026, 7, 15, 7, 10)),  # Saskatchewan's overlay: Winnipeg
    ("+14482001234", "US", "America/Chicago", datetime(2026, 7, 15, 7, 10)),  # Pensacola's overlay: New York
    ("+14582001234", "US", "America/Denver", datetime(2026, 7, 15, 21, 30)),  # Ontario, on Oregon's overlay
    ("+17782001234", "CA", "America/Edmonton", datetime(2026, 1, 15, 21, 30)),  # Cranbrook, British Columbia's
    ("+14322831234", "US", "America/Denver", datetime(2026, 7, 15, 7, 10)),  # Van Horn
    ("+12705551234", "US", "America/Chicago", datetime(2026, 7, 15, 7, 10)),  # unplaced: New York's clock
    ("+19075811234", "US", "America/Anchorage", datetime(2026, 7, 15, 22, 30)),  # Unalaska, filed under Honolulu
    ("+13342911234", "US", "America/New_York", datetime(2026, 7, 15, 21, 30)),  # Phenix City, on Columbus's clock
    ("+56322100100", "CL", "Pacific/Easter", datetime(2026, 7, 15, 7, 30)),  # Rapa Nui, filed under Santiago
    ("+903922271234", "TR", "Asia/Famagusta", datetime(2026, 1, 15, 7, 10)),  # Northern Cyprus in winter
    ("+6433071234", "NZ", "Pacific/Auckland", datetime(2026, 7, 15, 7, 20)),  # Ashburton, filed under Chatham
    ("+6432613000", "NZ", "Pacific/Chatham", datetime(2026, 7, 15, 21, 30)),  # Waitangi, filed under Auckland
    ("+68940920000", "PF", "Pacific/Gambier", datetime(2026, 7, 15, 21, 30)),  # Gambier, filed under Tahiti
]


@pytest.mark.parametrize(
    ("number", "region", "rings_in", "local"), RINGING_ELSEWHERE, ids=[case[0] for case in RINGING_ELSEWHERE]
)
def test_a_number_libphonenumber_files_under_other_hours_is_refused_outside_them_where_it_rings(
    number: str, region: str, rings_in: str, local: datetime
) -> None:
    """libphonenumber's own zone for it is inside the window at that moment: with it alone the call was placed."""
    moment = local.replace(tzinfo=ZoneInfo(rings_in))
    libphonenumbers_zones = phonenumbers_timezone.time_zones_for_number(phonenumbers.parse(number))
    assert rings_in not in libphonenumbers_zones  # else the entry in RINGS_IN is no longer needed
    assert all(DEFAULT_HOURS.window_for(region).contains(moment.astimezone(ZoneInfo(z))) for z in libphonenumbers_zones)

    with pytest.raises(Problem) as refused:
        DEFAULT_HOURS.check(number, region, moment)

    assert refused.value.code == "outside_calling_hours"
    assert rings_in in time_zones(number, region)


def _a_valid_number(prefix: str) -> phonenumbers.PhoneNumber:
    """A valid number starting with `prefix` (E.164 digits), the prefix's own digits followed by some others."""
    for length in range(len(prefix) + 3, 16):  # Chatham: 7 digits of prefix, 3 more
        for filler in ("2345678901", "5551234567", "9876543210", "3456789012"):
            number = phonenumbers.parse("+" + prefix + filler[: length - len(prefix)])
            if phonenumbers.is_valid_number(number):
                return number
    raise AssertionError(f"no valid number starts with {prefix}")


def _hours(zone: str) -> tuple[object, ...]:
    january, july = datetime(2026, 1, 15, 12, tzinfo=timezone.utc), datetime(2026, 7, 15, 12, tzinfo=timezone.utc)
    return tuple(moment.astimezone(ZoneInfo(zone)).utcoffset() for moment in (january, july))


@pytest.mark.parametrize("prefix", sorted(RINGS_IN))
def test_every_prefix_of_numbers_ringing_elsewhere_is_still_given_other_hours_by_libphonenumber(prefix: str) -> None:
    """When libphonenumber gives a prefix the hours of where it rings, its entry in RINGS_IN can go."""
    number = _a_valid_number(prefix)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    given = phonenumbers_timezone.time_zones_for_number(number)

    assert zones_libphonenumber_misses(e164) == (RINGS_IN[prefix],)
    assert _hours(RINGS_IN[prefix]) not in {_hours(zone) for zone in given}, given
    assert RINGS_IN[prefix] in time_zones(e164, phonenumbers.region_code_for_number(number))


@pytest.mark.parametrize("prefix", sorted(MOBILES_RING_ANYWHERE_IN))
def test_every_mobile_range_listed_is_still_given_one_zone_by_libphonenumber(prefix: str) -> None:
    """When libphonenumber gives such mobiles their country's zones, their entry can go."""
    number = _a_valid_number(prefix)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    region = phonenumbers.region_code_for_number(number)

    kinds = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)  # Chile's 9
    assert phonenumbers.number_type(number) in kinds
    assert len(phonenumbers_timezone.time_zones_for_number(number)) == 1
    assert set(time_zones(e164, region)) == set(MOBILES_RING_ANYWHERE_IN[prefix])
    assert len({_hours(zone) for zone in MOBILES_RING_ANYWHERE_IN[prefix]}) > 1  # of other hours, or not needed


@pytest.mark.parametrize(
    ("number", "region", "local"),
    [
        ("+13065221234", "CA", datetime(2026, 1, 15, 8, 30, tzinfo=ZoneInfo("America/Regina"))),  # Lloydminster's
        ("+14326831234", "US", datetime(2026, 7, 15, 8, 30, tzinfo=ZoneInfo("America/Chicago"))),  # Van Horn's
        ("+19072771234", "US", datetime(2026, 7, 15, 8, 30, tzinfo=ZoneInfo("America/Anchorage"))),  # Unalaska's
    ],
    ids=["regina", "midland", "anchorage"],
)
def test_an_exchange_corrected_for_its_own_town_does_not_narrow_its_area(
    number: str, region: str, local: datetime
) -> None:
    """One exchange's correction (Lloydminster on Alberta's clock, Van Horn on Mountain time, Unalaska filed under
    Honolulu) narrowed the hours of its whole area code: Regina, Midland and Anchorage were refused at 08:30."""
    DEFAULT_HOURS.check(number, region, local)  # not refused


@pytest.mark.parametrize("overlay", sorted(NANP_OVERLAYS))
def test_every_overlay_listed_is_still_given_fewer_hours_by_libphonenumber_than_the_codes_it_overlays(
    overlay: str,
) -> None:
    """When libphonenumber gives an overlay every clock of the codes it overlays, its entry can go."""
    number = _a_valid_number("1" + overlay)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    overlaid = zones_of_north_american_area(e164)

    given = {_hours(zone) for zone in phonenumbers_timezone.time_zones_for_number(number)}

    assert {_hours(zone) for zone in overlaid} - given
    assert overlaid <= set(time_zones(e164, phonenumbers.region_code_for_number(number)))


def test_a_callback_scheduled_a_moment_ago_is_checked_at_now_when_genesys_runs_it() -> None:
    """A `scheduledTime` up to the clock-skew allowance in the past is accepted, and Genesys runs it at once:
    20:59:45 asked at 21:00:40 local must meet the 21:00 close, not the moment asked."""
    new_york = ZoneInfo("America/New_York")
    now = datetime(2026, 1, 15, 21, 0, 40, tzinfo=new_york)
    policy = CallPolicy(
        None, MemoryDoNotCallList(), CallingHours(parse_window("08:00-21:00"), {}), None, clock=now.timestamp
    )
    to = PhoneNumber("+12125550199", "US", "fixed_line_or_mobile")

    with pytest.raises(Problem) as refused:
        policy.check(to, callback=True, scheduled=now - timedelta(seconds=55))
    assert refused.value.code == "outside_calling_hours"
    assert policy.check(to, callback=True, scheduled=now + timedelta(hours=12)) is None  # 09:00:40 the next day


def test_a_send_that_comes_after_the_window_closed_is_refused_though_the_check_came_before() -> None:
    """Checked at 20:59:58 local, sent at 21:00:03 after a Genesys 429's Retry-After: the hours hold at the send,
    for a callback at its time or now if that has passed. A send within RECHECK_AFTER_SECONDS of the check is as
    the check found it."""
    new_york = ZoneInfo("America/New_York")
    checked = datetime(2026, 1, 15, 20, 59, 58, tzinfo=new_york).timestamp()
    clock = [checked + 5]
    policy = CallPolicy(
        None, MemoryDoNotCallList(), CallingHours(parse_window("08:00-21:00"), {}), None, clock=lambda: clock[0]
    )
    to = PhoneNumber("+12125550199", "US", "fixed_line_or_mobile")

    with pytest.raises(Problem) as refused:
        policy.recheck(to, checked, scheduled=None)
    assert refused.value.code == "outside_calling_hours"
    with pytest.raises(Problem):  # a callback for 20:59:59, sent at 21:00:03: Genesys runs it at once
        policy.recheck(to, checked, scheduled=datetime(2026, 1, 15, 20, 59, 59, tzinfo=new_york))
    policy.recheck(to, checked, scheduled=datetime(2026, 1, 16, 9, 0, tzinfo=new_york))  # checked at its own time
    checked = datetime(2026, 1, 15, 20, 59, 59, 500_000, tzinfo=new_york).timestamp()
    clock[0] = checked + RECHECK_AFTER_SECONDS / 2
    policy.recheck(to, checked, scheduled=None)  # 21:00:00.5, but within the allowance of a check at 20:59:59.5


def test_the_hours_are_those_of_the_tz_data_the_app_ships_not_the_hosts(tmp_path: Path) -> None:
    """ZoneInfo reads the host's tz database first: an image's older release gave the offsets, while the zones
    of each country came from the tzdata package (a country that changed its clocks since, Mexico in 2022, was
    called by the old ones). Here the host's New York keeps Tokyo's clock; a fresh process, so no cache helps."""
    host = tmp_path / "zoneinfo"
    (host / "America").mkdir(parents=True)
    tokyo = resources.files("tzdata.zoneinfo").joinpath("Asia", "Tokyo").read_bytes()
    (host / "America" / "New_York").write_bytes(tokyo)
    probe = (
        "from datetime import datetime, timezone; from zoneinfo import ZoneInfo;"
        "from shared.policy.calling_hours import CallingHours, parse_window;"
        "assert ZoneInfo('America/New_York').utcoffset(datetime(2026, 7, 15)).total_seconds() == 9 * 3600;"
        "CallingHours(parse_window('08:00-21:00'), {}).check("
        "'+12125550199', 'US', datetime(2026, 7, 15, 16, 0, tzinfo=timezone.utc))"  # noon in New York, 01:00 in Tokyo
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONTZPATH": str(host)},
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr[-2000:]


def test_a_window_starting_in_the_hour_clocks_go_back_opens_at_its_second_pass_too() -> None:
    """01:30 comes twice on the night clocks go back: at 01:15 on the second pass (after the first 01:30), the
    window opened 15 minutes later, not the next night."""
    window = parse_window("01:30-21:00")
    second_pass = datetime(2026, 11, 1, 6, 15, tzinfo=timezone.utc)  # 01:15 EST in New York, clocks went back at 06:00

    assert next_allowed(window, ("America/New_York",), second_pass) == datetime(2026, 11, 1, 6, 30, tzinfo=timezone.utc)
