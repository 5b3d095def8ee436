"""Where numbers ring on another clock than the zone libphonenumber gives them.

libphonenumber files some areas under a zone of their own country that keeps other hours: areas that changed
their clocks after its data was written (Chihuahua moved to UTC-6 in 2022, Yukon to UTC-7 all year in 2020,
Saratov to UTC+4 in 2016, Magallanes and Aysen to UTC-3), and areas it puts with a neighbour (Para with Amazonas,
north-east British Columbia with Alberta). With only its zone, such a number was called up to an hour outside
the calling hours. Each prefix here adds the zone where the number rings: a call must fit the window in every
zone of a number, so an added zone can only narrow when it is called, never widen it. Found by comparing
libphonenumber's geocoder (the place of each prefix) with its zone; five exchanges it names only by their province
or territory (250-261, 263, 719 and 784, 867-334) are given their neighbours' zone, which at worst narrows
their window. `tests/test_calling_hours_unit.py` checks, for every prefix, that libphonenumber still gives it
other hours, so an entry it has since fixed is noticed. A North American number libphonenumber cannot place, or of
an overlay, also gets every zone of its area code (`zones_of_north_american_area`).
"""

from __future__ import annotations

from functools import cache

from phonenumbers.timezone import UNKNOWN_TIMEZONE
from phonenumbers.tzdata import TIMEZONE_DATA  # libphonenumber's zones by prefix

# E.164 digits (country code first) -> the tz database zone where numbers starting with them ring
RINGS_IN: dict[str, str] = {
    # Mexico: the state of Chihuahua, UTC-6 since 2022 (libphonenumber: Mazatlan, UTC-7). Ojinaga (626) and
    # Ciudad Juarez (656), which keep US daylight saving time, have zones of their own there already.
    **{
        f"52{area}": "America/Chihuahua"
        for area in (614, 621, 625, 627, 628, 629, 635, 636, 639, 648, 652, 657, 659)  # 649: Mexico City's hours
    },
    # Mexico: border towns of Tamaulipas, Nuevo Leon and Coahuila on US daylight saving time since 2022
    # (libphonenumber: Mexico City, UTC-6 all year): Matamoros (868), Miguel Aleman, Mier and Guerrero (897),
    # Camargo and Diaz Ordaz (891); 873 (Nuevo Leon) and 862 (Coahuila) may serve border towns (Anahuac, Nava) and
    # inland ones: we could not tell which, and both zones holding only narrows the window.
    **{f"52{area}": "America/Matamoros" for area in (862, 868, 873, 891, 897)},
    # Canada (libphonenumber: Vancouver or Edmonton, Regina, Toronto)
    **{f"1867{exchange}": "America/Whitehorse" for exchange in (334, 393, 456, 536, 633, 667, 668, 993)},  # Yukon
    **{f"1250{exchange}": "America/Dawson_Creek" for exchange in (242, 261, 262, 263, 719, 782, 784, 785, 787, 788)},
    "1250774": "America/Fort_Nelson",
    "1250428": "America/Creston",
    "1306825": "America/Edmonton",  # Lloydminster keeps Alberta's time on the Saskatchewan side too
    "1807597": "America/Atikokan",  # Eastern Standard Time all year
    # United States: exchanges libphonenumber files with their neighbours' (Chicago, Honolulu), where the geocoder
    # names a town on other hours: Tallahassee and Port St. Joe, Terre Haute and Vevay, Unalaska
    **{f"1850{exchange}": "America/New_York" for exchange in (227, 229, 431, 681)},
    "1812478": "America/Indiana/Indianapolis",
    "1812427": "America/Indiana/Vevay",
    "1907581": "America/Anchorage",
    "1432283": "America/Denver",  # Van Horn, Texas (libphonenumber: Chicago), which may keep Mountain time
    # Phenix City, Lanett and Valley, Alabama, which keep Columbus, Georgia's Eastern time (libphonenumber: Chicago)
    **{f"1334{exchange}": "America/New_York" for exchange in (291, 297, 298, 448, 480, 576, 644, 756, 768)},
    # Russia: Saratov oblast, UTC+4 since 2016 (libphonenumber: Moscow)
    "7845": "Europe/Saratov",
    # Chile: Magallanes (61) and Aysen (67), UTC-3 all year (libphonenumber: Santiago, UTC-4 in winter)
    "5661": "America/Punta_Arenas",
    "5667": "America/Punta_Arenas",
    # Brazil: Para, UTC-3 (libphonenumber: Manaus, UTC-4), and western Amazonas, UTC-5 (its area code 97 also
    # covers places on Manaus's time: both must hold)
    "5591": "America/Belem",
    "5593": "America/Santarem",
    "5594": "America/Belem",
    "5597": "America/Eirunepe",
    # Chile: Easter Island, UTC-6 in winter, two hours behind Santiago. The geocoder names all of 32 Valparaiso;
    # Rapa Nui's landlines are 32 210 and 32 255 (the numbers its businesses and services publish)
    "5632210": "Pacific/Easter",
    "5632255": "Pacific/Easter",
    # Northern Cyprus (the geocoder's name for 392), on EU time again since 2017, an hour behind Istanbul in winter
    "9039": "Asia/Famagusta",
    # New Zealand: the Chatham Islands, 45 minutes ahead; libphonenumber gives its Waitangi exchanges Auckland's
    # zone, and 330 (Ashburton and Akaroa on the mainland too, the geocoder says) Chatham's alone
    **{
        f"643{exchange}": "Pacific/Chatham"
        for exchange in (2613, 2719, 3950, 4238, 4246, 5513, 5667, 6509, 6627, 6688, 7460, 9085, 9757, 9854)
    },
    "64330": "Pacific/Auckland",
    # French Polynesia: the geocoder's "Remote Archipelago" takes in the Gambier (UTC-9) and the Marquesas (UTC-9:30)
    # besides Tahiti's time (UTC-10); the window fits the Marquesas whenever it fits Tahiti and the Gambier
    "689409": "Pacific/Gambier",
}
# Mobiles of no place, which ring anywhere in their country, that libphonenumber gives its capital's zone alone
# (its catch-all prefix) though the country keeps several hours: E.164 digits -> every zone of the country.
MOBILES_RING_ANYWHERE_IN: dict[str, tuple[str, ...]] = {
    "628": ("Asia/Jakarta", "Asia/Pontianak", "Asia/Makassar", "Asia/Jayapura"),  # Indonesia, 08xx
    "569": ("America/Santiago", "America/Punta_Arenas", "Pacific/Easter"),  # Chile, 9 xxxx xxxx
    "6757": ("Pacific/Port_Moresby", "Pacific/Bougainville"),  # Papua New Guinea, 7xxx xxxx
}
# North American overlays of area codes that span several clocks, by the codes they overlay: libphonenumber gives an
# overlay one zone (Saskatchewan's 474 Winnipeg's, which keeps summer time), though its numbers ring anywhere the
# codes it overlays cover.
NANP_OVERLAYS: dict[str, tuple[str, ...]] = {
    **{overlay: ("250", "604") for overlay in ("236", "257", "672", "778")},  # British Columbia
    "364": ("270",),  # western Kentucky
    "367": ("418",),  # eastern Quebec
    "448": ("850",),  # Florida panhandle
    "458": ("541",),  # Oregon
    "474": ("306",),  # Saskatchewan
    "581": ("418",),
    "930": ("812",),  # southern Indiana
}
_LONGEST_PREFIX = max(map(len, [*RINGS_IN, *MOBILES_RING_ANYWHERE_IN]))
_AREA_CODE_PREFIX = len("1NXX")  # libphonenumber's prefix of a North American area code: its main zone


def zones_libphonenumber_misses(e164: str) -> tuple[str, ...]:
    """Where a number may ring, beyond libphonenumber's zones, if its prefix is one of those listed (the longest
    listed prefix wins); empty otherwise. A mobile's entry is its country's every zone, the capital's included."""
    digits = e164.removeprefix("+")
    for length in range(min(len(digits), _LONGEST_PREFIX), 0, -1):
        zone = RINGS_IN.get(digits[:length])
        if zone is not None:
            return (zone,)
        zones = MOBILES_RING_ANYWHERE_IN.get(digits[:length])
        if zones is not None:
            return zones
    return ()


def zones_of_north_american_area(e164: str) -> frozenset[str]:
    """Every zone of a North American number's area code, for a number libphonenumber cannot place (and of the codes
    it overlays, for an overlay's); empty for other numbers.

    libphonenumber places North American numbers by exchange, and gives an exchange it cannot place (most of them,
    in the area codes that span clocks) its area code's main zone: an unplaced number of Nunavut rang on Fort
    Nelson's clock, three hours behind Iqaluit's, and one of western Kentucky on New York's. Such a number may ring
    on any clock of its area, so it is called only while the window is open on all of them. An area's clocks are
    those libphonenumber gives any of its exchanges, but for the exchanges RINGS_IN corrects: Unalaska, filed under
    Honolulu, is no clock of Alaska's.
    """
    if not e164.startswith("+1") or len(e164) < 5:
        return frozenset()
    area, digits = e164[2:5], e164[1:]
    if area in NANP_OVERLAYS:
        codes: tuple[str, ...] = (area, *NANP_OVERLAYS[area])
    elif any(digits[:length] in TIMEZONE_DATA for length in range(_AREA_CODE_PREFIX + 1, len(digits) + 1)):
        return frozenset()  # placed by its exchange (and corrected by RINGS_IN where that is wrong)
    else:
        codes = (area,)
    by_area = _zones_by_north_american_area()
    return frozenset().union(*(by_area.get(code, frozenset()) for code in codes))


@cache
def _zones_by_north_american_area() -> dict[str, frozenset[str]]:
    by_area: dict[str, set[str]] = {}
    for prefix, zones in TIMEZONE_DATA.items():
        if prefix.startswith("1") and len(prefix) >= _AREA_CODE_PREFIX and prefix not in RINGS_IN:
            by_area.setdefault(prefix[1:4], set()).update(zone for zone in zones if zone != UNKNOWN_TIMEZONE)
    return {area: frozenset(zones) for area, zones in by_area.items()}
