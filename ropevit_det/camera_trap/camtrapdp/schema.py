"""The Camtrap DP 1.0.2 profile and table schemas, shipped in ``profile/``, and the URLs they stand for.

A package names its profile and table schemas by URL (``https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/
...``), and the profile itself refers to the Data Package and GeoJSON schemas by URL. :func:`offline_http_session`
answers exactly those URLs from the shipped files (see ``profile/SOURCES.md``) and refuses every other one, so a
package is validated as published, byte for byte, without a network.
"""

from __future__ import annotations

import io
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "PROFILE_URL",
    "SHIPPED",
    "TABLES",
    "VERSION",
    "field_names",
    "offline_http_session",
    "profile_dir",
    "table_schema",
    "table_schema_url",
]

VERSION = "1.0.2"
BASE_URL = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{VERSION}/"
PROFILE_URL = BASE_URL + "camtrap-dp-profile.json"
TABLES: tuple[str, ...] = ("deployments", "media", "observations")

# URL -> file in profile/. The schemastore URL is written with http in the profile; https is the same file.
SHIPPED: dict[str, str] = {
    PROFILE_URL: "camtrap-dp-profile.json",
    **{f"{BASE_URL}{table}-table-schema.json": f"{table}-table-schema.json" for table in TABLES},
    "https://specs.frictionlessdata.io/schemas/data-package.json": "data-package.json",
    "http://json.schemastore.org/geojson.json": "geojson.json",
    "https://json.schemastore.org/geojson.json": "geojson.json",
    "https://geojson.org/schema/GeoJSON.json": "GeoJSON.json",
}


def profile_dir() -> Path:
    """The folder of the shipped files (package data)."""
    return Path(str(resources.files(__package__) / "profile"))


def table_schema_url(table: str) -> str:
    """The 1.0.2 URL of a table's schema (what ``datapackage.json`` names)."""
    if table not in TABLES:
        raise ValueError(f"Camtrap DP has no table {table!r}; its tables are {', '.join(TABLES)}")
    return f"{BASE_URL}{table}-table-schema.json"


@cache
def table_schema(table: str) -> dict[str, Any]:
    """The shipped table schema of ``table`` (a JSON Table Schema)."""
    url = table_schema_url(table)
    return json.loads((profile_dir() / SHIPPED[url]).read_text(encoding="utf-8"))


def field_names(table: str) -> list[str]:
    """Every column of ``table``, in schema order (the order the CSV files are written in)."""
    return [field["name"] for field in table_schema(table)["fields"]]


class OfflineError(ConnectionError):
    """Validation asked for a URL that is not shipped (it never reaches the network)."""


def offline_http_session():
    """A ``requests`` session that answers the :data:`SHIPPED` URLs from the package and refuses any other.

    frictionless fetches profiles and schemas through its ``http_session``; with this one
    (``system.use_context(http_session=...)``) validation needs no network, and a package that names another
    Camtrap DP version fails with :class:`OfflineError` naming the URL instead of hanging on a download.
    """
    import requests
    from requests.adapters import BaseAdapter
    from requests.models import Response

    folder = profile_dir()

    class ShippedFiles(BaseAdapter):
        def send(self, request, **kwargs):
            url = request.url
            if url not in SHIPPED:
                raise OfflineError(
                    f"{url} is not one of the Camtrap DP {VERSION} files shipped with ropevit_det "
                    f"(nothing is downloaded): the package must name the {VERSION} profile and "
                    f"schemas ({PROFILE_URL})"
                )
            response = Response()
            response.status_code = 200
            response.url = url
            response.request = request
            response.raw = io.BytesIO((folder / SHIPPED[url]).read_bytes())
            return response

        def close(self) -> None:
            pass

    session = requests.Session()
    adapter = ShippedFiles()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
