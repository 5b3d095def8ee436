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
other hours, so an entry it has since fixed is noticed.
"""

from __future__ import annotations

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
}
# Mobiles of no place, which ring anywhere in their country, that libphonenumber gives its capital's zone alone
# (its catch-all prefix) though the country keeps several hours: E.164 digits -> every zone of the country.
MOBILES_RING_ANYWHERE_IN: dict[str, tuple[str, ...]] = {
    "628": ("Asia/Jakarta", "Asia/Pontianak", "Asia/Makassar", "Asia/Jayapura"),  # Indonesia, 08xx
    "569": ("America/Santiago", "America/Punta_Arenas", "Pacific/Easter"),  # Chile, 9 xxxx xxxx
    "6757": ("Pacific/Port_Moresby", "Pacific/Bougainville"),  # Papua New Guinea, 7xxx xxxx
}
_LONGEST_PREFIX = max(map(len, [*RINGS_IN, *MOBILES_RING_ANYWHERE_IN]))


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
