"""``datapackage.json`` of an exported package: what the user's metadata file says, the rest derived or defaulted.

The user's file (YAML or JSON, ``--package-metadata``) holds the package-level properties of the Camtrap DP
profile that no detector can know: ``title``, ``contributors``, ``project``, ``licenses``, ``description``,
``bibliographicCitation``, ... Its values are used as written. Derived from the data unless the file sets them:
``spatial`` (bounding box of the deployments), ``temporal`` (first and last deployment day), ``taxonomic`` (the
scientific names observed). The properties the profile requires and neither gives get a default that validates
and says it is one; :func:`package_descriptor` returns the list, which the command prints.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from ...errors import UserInputError
from .deployments import Deployment
from .schema import PROFILE_URL, TABLES, table_schema_url

__all__ = ["MetadataError", "package_descriptor", "read_package_metadata"]

DEFAULT_CONTRIBUTOR = {"title": "UNSET: name the contact person in --package-metadata contributors", "role": "contact"}
# Computed by the export, never taken from the metadata file.
_COMPUTED = ("resources", "profile", "created")


class MetadataError(UserInputError):
    """The package metadata file is unreadable or not a mapping."""


def read_package_metadata(path: str | os.PathLike | None) -> dict[str, Any]:
    """The metadata file as a dict (``{}`` without one). YAML needs PyYAML (the ``camtrap`` extra)."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"package metadata file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except ImportError:
        raise MetadataError(
            f"{path}: reading YAML needs PyYAML (pip install 'ropevit_det[camtrap]'), or write the metadata as JSON"
        ) from None
    except Exception as exc:  # yaml.YAMLError / json.JSONDecodeError
        raise MetadataError(f"{path} is not valid {path.suffix.lstrip('.').upper() or 'JSON'}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise MetadataError(
            f"{path}: the top level must be a mapping of datapackage.json properties "
            "(title, contributors, project, ...)"
        )
    for key in _COMPUTED:
        if key in data:
            raise MetadataError(f"{path}: {key!r} is written by the export itself; remove it from the metadata file")
    for key, kind in (("project", dict), ("contributors", list), ("licenses", list)):
        if key in data and not isinstance(data[key], kind):
            raise MetadataError(
                f"{path}: {key!r} must be a {'mapping' if kind is dict else 'list'} "
                "(see https://camtrap-dp.tdwg.org/metadata/)"
            )
    return data


def _spatial(deployments: Sequence[Deployment]) -> dict[str, Any]:
    lats = [d.latitude for d in deployments]
    lons = [d.longitude for d in deployments]
    if len(set(zip(lats, lons))) == 1:
        return {"type": "Point", "coordinates": [lons[0], lats[0]]}
    w, e, s, n = min(lons), max(lons), min(lats), max(lats)
    if w == e or s == n:  # cameras on one meridian or parallel: the box would have no area
        return {"type": "MultiPoint", "coordinates": [[d.longitude, d.latitude] for d in deployments]}
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def package_descriptor(
    meta: Mapping[str, Any],
    *,
    deployments: Sequence[Deployment],
    media_times: Sequence[datetime],
    taxa: Mapping[str, Mapping[str, str]],
    capture_methods: Sequence[str],
    created: datetime,
) -> tuple[dict[str, Any], list[str]]:
    """``(datapackage.json dict, the defaults used, one line each)``."""
    from ... import __version__

    defaults: list[str] = []
    resources = [
        {
            "name": table,
            "path": f"{table}.csv",
            "profile": "tabular-data-resource",
            "format": "csv",
            "mediatype": "text/csv",
            "encoding": "utf-8",
            "schema": table_schema_url(table),
        }
        for table in TABLES
    ]
    descriptor: dict[str, Any] = {
        "resources": resources,
        "profile": PROFILE_URL,
        "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if "title" not in meta:
        defaults.append("title: 'Camera-trap observations' (the package title)")
    descriptor["title"] = meta.get("title", "Camera-trap observations")
    if not meta.get("contributors"):
        defaults.append(f"contributors: [{DEFAULT_CONTRIBUTOR['title']!r}, role contact] (required by Camtrap DP)")
    descriptor["contributors"] = meta.get("contributors") or [dict(DEFAULT_CONTRIBUTOR)]
    project = dict(meta.get("project") or {})
    project_defaults = {
        "title": descriptor["title"],
        "samplingDesign": "opportunistic",
        "captureMethod": sorted(set(capture_methods)),
        "individualAnimals": False,
        "observationLevel": ["media", "event"],
    }
    for key, value in project_defaults.items():
        if key not in project:
            project[key] = value
            if key not in ("captureMethod", "observationLevel"):  # these two are facts of the export
                defaults.append(f"project.{key}: {value!r}")
    descriptor["project"] = project
    if "spatial" not in meta:
        descriptor["spatial"] = _spatial(deployments)
    if "temporal" not in meta:
        start = min(min(d.start for d in deployments), min(media_times, default=min(d.start for d in deployments)))
        end = max(max(d.end for d in deployments), max(media_times, default=max(d.end for d in deployments)))
        descriptor["temporal"] = {"start": start.date().isoformat(), "end": end.date().isoformat()}
    if "taxonomic" not in meta:
        descriptor["taxonomic"] = [
            {"scientificName": name, **({"taxonRank": "species"} if ranks else {}), **dict(ranks)}
            for name, ranks in sorted(taxa.items())
        ]
    descriptor["sources"] = [{"title": "ropevit-det", "version": __version__}]
    for key, value in meta.items():
        if key != "project":
            descriptor[key] = value
    return descriptor, defaults
