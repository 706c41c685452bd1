"""Where a camera stands: coordinates -> ISO 3166-1 alpha-3 country and first-level region, offline.

``reverse_geocoder`` (the package SpeciesNet itself uses) ships GeoNames' places of 1,000 people or more and
answers with the nearest one; nothing is downloaded. Its country code is ISO 3166-1 alpha-2 and becomes alpha-3
through ``pycountry``, because SpeciesNet's geofence file is keyed by alpha-3 codes (``"USA"``, ``"KEN"``).

The region follows SpeciesNet (``speciesnet/geolocation.py::find_admin1_region``): its geofence rules use
first-level regions only in the United States, written as the two-letter state code (``"WY"``, the part after
``US-`` of the ISO 3166-2 code), and SpeciesNet finds no region elsewhere. So :func:`region_for` gives a region
only inside the United States and leaves it None in every other country; the GeoNames region name is kept on
:class:`Location` for the record.

The caveat. The nearest place is not the place the camera is in: near a border (a national park on a state
line, a river between two countries) the nearest town can lie on the other side. :func:`locate` therefore looks
at the places about as near as the nearest one, and when they lie in more than one country, or more than one
US state, it says so; a camera far from any place (a national park, a desert, the sea) gets a caveat too: a
border nearer than the nearest place would not show. An explicit country (``--country``) always
wins over coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["Location", "Region", "camera_region", "locate", "region_for", "us_state_code"]

# A place counts as "about as near" as the nearest one when it is at most this much farther (ratio, plus km).
_NEIGHBOUR_RATIO, _NEIGHBOUR_SLACK_KM = 2.0, 10.0
_NEIGHBOURS = 10  # nearest places looked at
_FAR_KM = 25.0  # nearest place farther than this: a border nearer than it would not be seen
_EARTH_RADIUS_KM = 6371.0
# reverse_geocoder's spelling of a US region that pycountry spells otherwise.
_US_REGION_ALIASES = {"Washington, D.C.": "District of Columbia"}
_US_TERRITORIES = frozenset({"AS", "GU", "MP", "PR", "UM", "VI"})  # GeoNames gives them their own country code


class Region(NamedTuple):
    """What geofencing needs: ``iso3`` (None when unknown), ``admin1`` (a US state code, else None) and
    ``caveat`` (why the answer may be wrong, else None)."""

    iso3: str | None
    admin1: str | None
    caveat: str | None


@dataclass(frozen=True)
class Location:
    """The nearest GeoNames place to a coordinate and what it says about the camera's country and region."""

    latitude: float
    longitude: float
    iso3: str | None
    admin1: str | None
    place: str
    place_country: str  # ISO 3166-1 alpha-2, as GeoNames writes it
    place_region: str  # GeoNames' first-level region name
    distance_km: float
    caveat: str | None

    @property
    def region(self) -> Region:
        return Region(self.iso3, self.admin1, self.caveat)


def _geocoder():
    try:
        import reverse_geocoder
    except ImportError as exc:
        raise ImportError(
            "coordinates need the reverse_geocoder package: pip install reverse_geocoder (or pip install -e .[camtrap])"
        ) from exc
    # mode 1: one process; the default mode forks workers for each query, too heavy for a handful of cameras.
    return reverse_geocoder.RGeocoder(mode=1, verbose=False)


def _alpha3(alpha2: str) -> str | None:
    try:
        import pycountry
    except ImportError as exc:
        raise ImportError(
            "country codes need the pycountry package: pip install pycountry (or pip install -e .[camtrap])"
        ) from exc
    country = pycountry.countries.get(alpha_2=alpha2)
    return None if country is None else country.alpha_3


def us_state_code(region_name: str) -> str | None:
    """GeoNames' name of a US state (or DC) -> its two-letter code (``"Wyoming"`` -> ``"WY"``), else None."""
    import pycountry

    name = _US_REGION_ALIASES.get(region_name, region_name)
    for subdivision in pycountry.subdivisions.get(country_code="US"):
        if subdivision.name == name and subdivision.type in ("State", "District"):
            return subdivision.code.split("-", 1)[1]
    return None


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def locate(latitude: float, longitude: float) -> Location:
    """The country and region of a coordinate, from the nearest GeoNames places (see the module docstring).

    Raises:
        ValueError: the coordinate is not on Earth (latitude outside -90..90, longitude outside -180..180).
        ImportError: reverse_geocoder or pycountry is missing (the message says how to install it).
    """
    latitude, longitude = float(latitude), float(longitude)
    if not (-90.0 <= latitude <= 90.0 and -180.0 <= longitude <= 180.0) or math.isnan(latitude + longitude):
        raise ValueError(
            f"({latitude}, {longitude}) is not a latitude, longitude pair in degrees (latitude "
            "-90..90, longitude -180..180); were the two swapped?"
        )
    geocoder = _geocoder()
    _, indices = geocoder.tree.query([(latitude, longitude)], k=_NEIGHBOURS)
    places = [geocoder.locations[int(i)] for i in indices[0]]
    distances = [_km(latitude, longitude, float(p["lat"]), float(p["lon"])) for p in places]
    order = sorted(range(len(places)), key=distances.__getitem__)  # the tree measures degrees, not km
    places, distances = [places[i] for i in order], [distances[i] for i in order]
    nearest, nearest_km = places[0], distances[0]
    iso3 = _alpha3(nearest["cc"])
    admin1 = us_state_code(nearest["admin1"]) if nearest["cc"] == "US" else None
    near = [p for p, d in zip(places, distances) if d <= nearest_km * _NEIGHBOUR_RATIO + _NEIGHBOUR_SLACK_KM]
    caveats = []
    countries = sorted({p["cc"] for p in near})
    if len(countries) > 1:
        caveats.append(
            f"near a border: the nearest places lie in {', '.join(_alpha3(c) or c for c in countries)}; "
            "the country may be wrong, give it explicitly"
        )
    states = sorted({p["admin1"] for p in near if p["cc"] == "US"})
    if nearest["cc"] == "US" and len(states) > 1:
        caveats.append(
            f"near a state line: the nearest places lie in {', '.join(states)}; the region may be "
            "wrong, give it explicitly"
        )
    if nearest_km > _FAR_KM:
        caveats.append(
            f"the nearest place ({nearest['name']}, {nearest['admin1']}) is {nearest_km:.0f} km away: a "
            "border nearer than that would not show; check the country and region"
        )
    if iso3 is None:
        caveats.append(
            f"GeoNames country code {nearest['cc']!r} has no ISO 3166-1 alpha-3 code; give the country explicitly"
        )
    return Location(
        latitude=latitude,
        longitude=longitude,
        iso3=iso3,
        admin1=admin1,
        place=nearest["name"],
        place_country=nearest["cc"],
        place_region=nearest["admin1"],
        distance_km=nearest_km,
        caveat="; ".join(caveats) or None,
    )


def region_for(latitude: float, longitude: float) -> Region:
    """``(iso3, admin1, caveat)`` of a camera at a coordinate: the call a deployments reader makes per camera.

    ``admin1`` is a US state code or None (SpeciesNet's geofence rules use no other region); ``caveat`` says why
    the answer may be wrong (near a border, remote), else None. An explicit country given by the user wins over
    this answer: the caller applies it.
    """
    return locate(latitude, longitude).region


def camera_region(
    *,
    country: str | None = None,
    admin1: str | None = None,
    latitude: float | None = None,
    longitude: float | None = None,
) -> Region:
    """The camera's region from what the user gave: an explicit country wins over coordinates.

    With a country and coordinates, the coordinates only supply the region, and only when they lie in that
    country (as SpeciesNet's ``find_admin1_region`` does); an explicit region wins over both.
    """
    if country:
        country = country.upper()
        if admin1 or latitude is None or longitude is None:
            return Region(country, admin1.upper() if admin1 else None, None)
        found = locate(latitude, longitude)
        if country == "USA" and found.place_country in _US_TERRITORIES:
            # SpeciesNet's find_admin1_region: a US territory inside "USA" is written as its region.
            return Region(country, found.place_country, found.caveat)
        if found.iso3 != country:
            return Region(
                country,
                None,
                f"the coordinates lie in {found.iso3 or found.place_country}, not {country}: region left unknown",
            )
        return Region(country, found.admin1, found.caveat if found.admin1 else None)
    if latitude is None or longitude is None:
        return Region(None, admin1.upper() if admin1 else None, None)
    found = locate(latitude, longitude)
    return Region(found.iso3, admin1.upper() if admin1 else found.admin1, found.caveat)
