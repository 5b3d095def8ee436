"""Calling hours in the callee's local time (TCPA: 8 am to 9 pm at the called party's location).

The callee's time zones come from libphonenumber. A number may map to several (US toll-free numbers, some
area codes): a call is allowed only at a moment that is inside the window in every one of them. When
libphonenumber knows no zone for a number, its local time cannot be known, so the call is refused unless
hours are off for its country or altogether.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from functools import lru_cache
from importlib import resources
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import PhoneNumberType
from phonenumbers import timezone as number_time_zones
from phonenumbers.tzdata import TIMEZONE_DATA  # libphonenumber's zones by prefix; a calling code's own: its list

from shared.errors import Problem
from shared.policy.missed_time_zones import zones_libphonenumber_misses, zones_of_north_american_area

OFF = "off"
_WINDOW = re.compile(r"^(?P<start>\d{2}):(?P<start_m>\d{2})-(?P<end>\d{2}):(?P<end_m>\d{2})$")
SEARCH_DAYS = 3  # the next allowed moment is looked for this many days ahead (zones whose windows do not meet)


@dataclass(frozen=True)
class Window:
    """`start` inclusive, `end` exclusive, in local wall-clock time; `24:00` ends at midnight."""

    start: time
    end: time | None  # None: midnight at the end of the day

    def contains(self, local: datetime) -> bool:
        clock = local.time().replace(tzinfo=None)
        return self.start <= clock and (self.end is None or clock < self.end)

    def __str__(self) -> str:
        end = "24:00" if self.end is None else self.end.strftime("%H:%M")
        return f"{self.start.strftime('%H:%M')}-{end}"


def parse_window(text: str) -> Window | None:
    """`HH:MM-HH:MM` with the start before the end (`24:00` allowed as the end), or `off` (None)."""
    if text.strip().lower() == OFF:
        return None
    match = _WINDOW.match(text.strip())
    if not match:
        raise ValueError("must be HH:MM-HH:MM (for example 08:00-21:00) or off")
    start_h, start_m, end_h, end_m = (int(match[name]) for name in ("start", "start_m", "end", "end_m"))
    if start_h > 23 or start_m > 59 or end_m > 59 or end_h > 24 or (end_h == 24 and end_m):
        raise ValueError("holds a time that does not exist")
    start = time(start_h, start_m)
    end = None if end_h == 24 else time(end_h, end_m)
    if end is not None and end <= start:
        raise ValueError("must start before it ends (a window past midnight is not supported)")
    return Window(start, end)


@lru_cache(maxsize=1024)  # every zone: their names come from libphonenumber's data and the tz database's
def _zone(name: str) -> ZoneInfo:
    """The zone as the tzdata package has it, the release whose zone.tab gives each country's zones (below):
    `ZoneInfo(name)` reads the host's tz database first, which an image may ship years older than ours (a country
    that changed its clocks since, as Mexico did in 2022, would be called by its old ones). The host's only where
    the package lacks the zone."""
    try:
        with resources.files("tzdata.zoneinfo").joinpath(*name.split("/")).open("rb") as data:
            return ZoneInfo.from_file(data, key=name)
    except (OSError, ValueError):  # not in the package: ZoneInfo's own lookup, and its errors
        return ZoneInfo(name)


# Numbers of one country: libphonenumber gives a mobile of a country that shares its calling code (Jamaica on +1,
# Kazakhstan on +7) every zone of the code, from Adak to Guam; the other countries' zones are not where it rings.
_ONE_COUNTRY_TYPES = frozenset(
    {PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
)


@lru_cache(maxsize=1)
def _zones_by_country() -> dict[str, frozenset[str]]:
    """Each country's zones, from the tz database's zone.tab (shipped by the tzdata package)."""
    found: dict[str, set[str]] = {}
    for line in resources.files("tzdata.zoneinfo").joinpath("zone.tab").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            country, _, zone = line.split("\t")[:3]
            found.setdefault(country, set()).add(zone)
    return {country: frozenset(zones) for country, zones in found.items()}


@lru_cache(maxsize=512)
def _offsets(name: str) -> tuple[timedelta, timedelta]:
    """A zone's offsets from UTC in mid-January and mid-July this year: its winter and summer time."""
    year = datetime.now(timezone.utc).year
    zone = _zone(name)
    january, july = (datetime(year, month, 15, 12, tzinfo=zone).utcoffset() for month in (1, 7))
    assert january is not None and july is not None  # a ZoneInfo always knows its offset
    return january, july


def time_zones(e164: str, region: str | None) -> tuple[str, ...]:
    """libphonenumber's candidate zones for a number, mended where they miss where it rings; empty when it
    knows none. An area it files under a zone of other hours also gets its own, and a North American number every
    zone of its area code (`missed_time_zones`)."""
    zones = _libphonenumber_zones(e164, region)
    if not zones:
        return zones
    missed = (*zones_libphonenumber_misses(e164), *sorted(zones_of_north_american_area(e164)))
    return (*zones, *(zone for zone in dict.fromkeys(missed) if zone not in zones))


def _libphonenumber_zones(e164: str, region: str | None) -> tuple[str, ...]:
    """libphonenumber's zones for a number, with two mends for a number of a known country:
    - libphonenumber gives a number it cannot place within its calling code every zone of the code. For a fixed
      line or mobile of a country that shares the code but is not its main one (Jamaica, not the US, on +1)
      only the country's own zones are kept (else the code's other countries' zones go). Any other list is kept
      whole: the main country's numbers may ring in its territories (an Australian mobile on Christmas Island).
    - libphonenumber names some zones by a stand-in that zone.tab lists under another country (Bucharest for
      Kaliningrad, Puerto Rico for Labrador's Atlantic time, Atlantic/Canary for every Moroccan number, Paris
      for an Algerian VoIP number), whose summer time may differ. Each such zone brings the country's own zones
      of the same standard time whose winter and summer offsets no listed zone has; a list holding none of the
      country's own zones, and given none that way, gets them all. A call must fit the window in every zone, so
      this only adds zones to fit, except for a fixed line given only stand-ins and one of the country's own
      zones that way: a landline rings where it is, and that zone replaces them (a Kaliningrad landline).
    """
    number = phonenumbers.parse(e164)
    zones = tuple(
        zone for zone in number_time_zones.time_zones_for_number(number) if zone != number_time_zones.UNKNOWN_TIMEZONE
    )
    if not zones or not region:
        return zones
    by_country = _zones_by_country()
    own = by_country.get(region, frozenset())
    code = number.country_code or 0
    code_wide = zones == TIMEZONE_DATA.get(str(code)) and region != phonenumbers.region_code_for_country_code(code)
    # Classified only where the narrowing would apply: most numbers hold their own zone, and classifying costs
    if code_wide and phonenumbers.number_type(number) in _ONE_COUNTRY_TYPES:
        others = {
            zone
            for other in phonenumbers.region_codes_for_country_code(code)
            if other != region
            for zone in by_country.get(other, ())
        }
        zones = (
            tuple(zone for zone in zones if zone in own) or tuple(zone for zone in zones if zone not in others) or zones
        )
    stand_ins = {min(_offsets(zone)) for zone in zones if zone not in own}  # their standard times
    if own and stand_ins:
        listed = {_offsets(zone) for zone in zones}
        added = tuple(sorted(zone for zone in own if min(_offsets(zone)) in stand_ins and _offsets(zone) not in listed))
        if own.intersection(zones):
            return zones + added
        if added and phonenumbers.number_type(number) == PhoneNumberType.FIXED_LINE:
            return added  # a landline given only stand-ins rings in the country's zone of their standard time
        return zones + (added or tuple(sorted(own)))
    return zones


@dataclass(frozen=True)
class CallingHours:
    """The default window (`CALLING_HOURS`) and per-country ones (`CALLING_HOURS_BY_COUNTRY`); None is off."""

    default: Window | None
    by_country: Mapping[str, Window | None]

    def window_for(self, region: str | None) -> Window | None:
        if region is not None and region in self.by_country:
            return self.by_country[region]
        return self.default

    def check(self, e164: str, region: str | None, moment: datetime, field: str = "to") -> None:
        """Nothing when a call at `moment` is inside the callee's window; else `outside_calling_hours`."""
        window = self.window_for(region)
        if window is None:
            return
        zones = time_zones(e164, region)
        if not zones:
            raise Problem(
                "outside_calling_hours",
                "No time zone is known for this number, so its local time cannot be checked against the "
                f"calling hours {window}.",
                field=field,
                hint=(
                    f"Set CALLING_HOURS_BY_COUNTRY={region}=off (or CALLING_HOURS=off) to call such numbers."
                    if region
                    else "It belongs to no country: only CALLING_HOURS=off lets such numbers be called."
                ),
                extensions={"nextAllowedAt": None, "timeZones": []},
            )
        if all(window.contains(moment.astimezone(_zone(zone))) for zone in zones):
            return
        allowed_at = next_allowed(window, zones, moment)
        shown = ", ".join(zones[:3]) + (f" and {len(zones) - 3} more" if len(zones) > 3 else "")
        never = allowed_at is None  # the zones' windows do not meet: waiting days does not help, a setting does
        raise Problem(
            "outside_calling_hours",
            f"It is outside the calling hours {window} for the callee ({shown})"
            + (
                f", and {window} does not hold in all {len(zones)} of its time zones at once in the next "
                f"{SEARCH_DAYS} days (their offsets may change with daylight saving time)."
                if never
                else "."
            ),
            field=field,
            hint=_never_hint(region) if never else None,
            extensions={"nextAllowedAt": rfc3339(allowed_at) if allowed_at else None, "timeZones": list(zones)},
        )

    def next_allowed_at(self, e164: str, region: str | None, moment: datetime) -> datetime | None:
        """`moment` itself when allowed, else the next moment a call becomes allowed (None: not in SEARCH_DAYS)."""
        window = self.window_for(region)
        if window is None:
            return moment
        zones = time_zones(e164, region)
        return next_allowed(window, zones, moment) if zones else None


def _never_hint(region: str | None) -> str:
    """What lets a number be called whose zones' windows do not meet in the coming days: a setting, not waiting."""
    if region:
        return (
            f"Set CALLING_HOURS_BY_COUNTRY={region}=<a window that holds in all of its time zones> (or "
            f"{region}=off where the law allows) to call such numbers; it applies to every number of {region}."
        )
    return (
        "It belongs to no country: only a CALLING_HOURS that holds in all of its time zones (or off) lets it be called."
    )


def next_allowed(window: Window, zones: tuple[str, ...], moment: datetime) -> datetime | None:
    """The first moment at or after `moment` inside `window` in every zone.

    The allowed moments are an intersection of intervals, so the first one is `moment` itself or the start
    of some zone's window: try those in order. A start in the hour clocks go back comes twice (`fold`); one in the
    hour they skip opens the window when they jump.
    """
    candidates = [moment]
    for name in zones:
        zone = _zone(name)
        local_day = moment.astimezone(zone).date()
        for days, fold in itertools.product(range(SEARCH_DAYS + 1), (0, 1)):
            start = datetime.combine(local_day + timedelta(days=days), window.start, tzinfo=zone).replace(fold=fold)
            opens = _clocks_jump_over(start) or start
            if opens >= moment:
                candidates.append(opens.astimezone(timezone.utc))
    for candidate in sorted(candidates):
        if all(window.contains(candidate.astimezone(_zone(zone))) for zone in zones):
            return candidate.astimezone(timezone.utc)
    return None


def _clocks_jump_over(local: datetime) -> datetime | None:
    """The moment clocks jump forward over `local`, a time of day they skip that day; None for one that exists.

    A skipped time read with the offset before the jump (fold 0) is later than read with the one after (fold 1);
    the jump is between the two, found to the second."""
    zone = local.tzinfo
    early, late = int(local.replace(fold=1).timestamp()), int(local.replace(fold=0).timestamp())
    if early >= late:
        return None
    after = datetime.fromtimestamp(late, zone).utcoffset()
    while late - early > 1:
        middle = (early + late) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == after:
            late = middle
        else:
            early = middle
    return datetime.fromtimestamp(late, timezone.utc)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
