"""Where the cameras of a deployments file stand, as geofencing needs it: one country (and US state), offline.

The deployments file is the Camtrap DP export's (``camtrapdp/deployments.py`` reads and checks it). Each camera's
coordinates become a country through :func:`~.location.region_for`; a run's label policy holds one place, so the
cameras must share a country. An explicit ``--country`` wins over this answer (the caller applies it).
"""

from __future__ import annotations

import os

from ...errors import UserInputError
from ..camtrapdp.deployments import read_deployments
from .location import Region, region_for


def deployments_region(path: str | os.PathLike) -> Region:
    """The one country (and US state, when all cameras share one) where the deployments of ``path`` stand.

    ``caveat`` gathers the cameras whose answer may be wrong (near a border, remote), by deployment id.

    Raises:
        UserInputError: the cameras stand in several countries, or in none that the offline data knows.
        DeploymentsError: the file is not a valid deployments file (names the row and field).
    """
    regions = {d.deployment_id: region_for(d.latitude, d.longitude) for d in read_deployments(path)}
    countries = sorted({region.iso3 or "unknown" for region in regions.values()})
    if len(countries) != 1 or countries == ["unknown"]:
        where = ", ".join(f"{dep} in {region.iso3 or 'an unknown country'}" for dep, region in regions.items())
        raise UserInputError(
            f"{os.fspath(path)}: the cameras stand in {', '.join(countries)} ({where}); a run geofences for one "
            "country: run each country's folders separately, or name the country with --country",
            argument="deployments",
        )
    states = {region.admin1 for region in regions.values()}
    caveats = [f"{dep}: {region.caveat}" for dep, region in regions.items() if region.caveat]
    return Region(countries[0], states.pop() if len(states) == 1 else None, "; ".join(caveats) or None)
