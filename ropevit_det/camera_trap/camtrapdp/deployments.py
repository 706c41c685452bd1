"""The deployments file a user writes: where each camera stood, when, in which time zone, and where its media are.

One CSV row per deployment, with the columns :data:`REQUIRED_COLUMNS`:

* ``deploymentID``: unique, any text;
* ``latitude`` / ``longitude``: WGS84 decimal degrees;
* ``deploymentStart`` / ``deploymentEnd``: ISO 8601 (``2024-05-01T09:30:00``, ``2024-05-01 09:30``, or a date,
  which means the start or the end of that day); without an offset they are local times of ``timezone``;
* ``timezone``: an IANA name (``Europe/Berlin``) or a fixed offset (``+02:00``, ``Z``): the camera clock's zone,
  applied to the capture times, which cameras write without one;
* ``folder``: where the deployment's media are, relative to the image root (``""`` or ``.`` for the root).

Other columns of the Camtrap DP deployments table (``locationName``, ``cameraModel``, ``setupBy``, ...) are passed
through to the package; a column that is neither is an error, so nothing is dropped without a word.

Everything is checked when the file is read, before any work: a missing column, a bad coordinate or datetime, an
unknown time zone, two deployments whose folders nest, and later (:meth:`Deployments.assign`) a media file that no
deployment's folder holds, each raise :class:`DeploymentsError` naming the line and the field.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ...errors import UserInputError
from .schema import field_names

__all__ = ["REQUIRED_COLUMNS", "Deployment", "Deployments", "DeploymentsError", "parse_timezone", "read_deployments"]

REQUIRED_COLUMNS: tuple[str, ...] = (
    "deploymentID",
    "latitude",
    "longitude",
    "deploymentStart",
    "deploymentEnd",
    "timezone",
    "folder",
)
# Columns of the user's file that are not columns of the Camtrap DP deployments table.
OWN_COLUMNS: frozenset[str] = frozenset({"timezone", "folder"})
_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


class DeploymentsError(UserInputError):
    """A deployments file (or a media file's place in it) is wrong; ``line`` and ``field`` say where."""

    def __init__(self, message: str, *, line: int | None = None, field: str | None = None):
        super().__init__(message)
        self.line = line
        self.field = field


@dataclass(frozen=True)
class Deployment:
    """One row of the deployments file, checked.

    Attributes:
        deployment_id, latitude, longitude: as written.
        start, end: time-zone-aware datetimes.
        tz: the camera clock's zone; ``timezone_text`` is how the file wrote it.
        folder: POSIX path relative to the image root, ``""`` for the root itself.
        line: line of the CSV file (the header is line 1).
        columns: the row's values of the Camtrap DP deployments columns (``deploymentStart`` / ``deploymentEnd``
            in ISO 8601 with their offset), for the package's ``deployments.csv``.
    """

    deployment_id: str
    latitude: float
    longitude: float
    start: datetime
    end: datetime
    tz: tzinfo
    timezone_text: str
    folder: str
    line: int
    columns: Mapping[str, str] = field(default_factory=dict)

    def localize(self, naive: datetime) -> datetime:
        """A camera's capture time (no offset) as an aware datetime of this deployment's zone."""
        if naive.tzinfo is not None:
            return naive
        return naive.replace(tzinfo=self.tz)

    def holds(self, path: str) -> bool:
        """Whether ``path`` (relative to the image root, POSIX) lies in this deployment's folder."""
        return not self.folder or path.startswith(self.folder + "/")


def parse_timezone(text: str) -> tzinfo:
    """An IANA zone name or a ``+HH:MM`` / ``Z`` offset as a :class:`~datetime.tzinfo`.

    Raises:
        ValueError: neither.
    """
    value = text.strip()
    if value in ("Z", "UTC", "utc"):
        return timezone.utc
    match = _OFFSET.match(value)
    if match:
        sign, hours, minutes = match.groups()
        offset = timedelta(hours=int(hours), minutes=int(minutes))
        if offset > timedelta(hours=14) or int(minutes) >= 60:
            raise ValueError(f"{text!r} is not a valid UTC offset (at most +14:00 / -12:00)")
        return timezone(-offset if sign == "-" else offset)
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{text!r} is neither an IANA time zone name (e.g. Europe/Berlin) nor a UTC offset (e.g. +02:00)"
        ) from None


def _parse_datetime(text: str, tz: tzinfo, *, end_of_day: bool) -> datetime:
    value = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            day = datetime.fromisoformat(value)
            moment = datetime.combine(day.date(), time(23, 59, 59) if end_of_day else time(0, 0, 0))
        else:
            moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 date-time; write e.g. 2024-05-01T09:30:00 (a local time "
            "of the timezone column) or 2024-05-01T09:30:00+02:00"
        ) from None
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment


def _coordinate(text: str, name: str, limit: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number (decimal degrees, WGS84)") from None
    if math.isnan(value) or not -limit <= value <= limit:
        raise ValueError(
            f"{text!r} is outside -{limit:g}..{limit:g}: {name} is in decimal degrees "
            f"{'(north positive)' if name == 'latitude' else '(east positive)'}"
        )
    return value


def _normalise_folder(text: str) -> str:
    folder = text.strip().replace("\\", "/")
    parts = [p for p in folder.split("/") if p not in ("", ".")]
    if folder.startswith("/") or re.match(r"^[A-Za-z]:", folder) or ".." in parts:
        raise ValueError(f"{text!r} is not a folder relative to the image root (no absolute path, no '..')")
    return "/".join(parts)


class Deployments:
    """The checked deployments of one file, in file order.

    Use :func:`read_deployments` to make one; :meth:`assign` gives each media file its deployment.
    """

    def __init__(self, deployments: Iterable[Deployment], *, source: str = "deployments file"):
        self.deployments: tuple[Deployment, ...] = tuple(deployments)
        self.source = source
        self.by_id: dict[str, Deployment] = {d.deployment_id: d for d in self.deployments}

    def __iter__(self):
        return iter(self.deployments)

    def __len__(self) -> int:
        return len(self.deployments)

    def deployment_of(self, path: str) -> Deployment | None:
        """The deployment whose folder holds ``path`` (relative to the image root), or None."""
        path = path.replace("\\", "/")
        for deployment in self.deployments:
            if deployment.holds(path):
                return deployment
        return None

    def assign(self, paths: Iterable[str]) -> dict[str, Deployment]:
        """``{path: deployment}`` for every media path.

        Raises:
            DeploymentsError: a path that no deployment's folder holds (all such paths are counted, the first
                few named).
        """
        found: dict[str, Deployment] = {}
        orphans: list[str] = []
        for path in paths:
            deployment = self.deployment_of(path)
            if deployment is None:
                orphans.append(path)
            else:
                found[path] = deployment
        if orphans:
            folders = ", ".join(repr(d.folder) for d in self.deployments)
            raise DeploymentsError(
                f"{len(orphans)} media file(s) belong to no deployment, e.g. {', '.join(orphans[:3])}: no 'folder' "
                f"of {self.source} holds them (folders: {folders}); add a deployment row for their folder",
                field="folder",
            )
        return found


def read_deployments(path: str | os.PathLike) -> Deployments:
    """Read and check a deployments CSV file (see the module docstring for its columns).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DeploymentsError: the first problem found, naming its line and field.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"deployments file {path} does not exist")
    name = path.name
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise DeploymentsError(
                f"{name} line 1 (header): missing column(s) {', '.join(missing)}; a deployments "
                f"file needs {', '.join(REQUIRED_COLUMNS)}",
                line=1,
                field=missing[0],
            )
        table_columns = field_names("deployments")
        unknown = [c for c in header if c not in table_columns and c not in OWN_COLUMNS]
        if unknown:
            raise DeploymentsError(
                f"{name} line 1 (header): column {unknown[0]!r} is not a column of the Camtrap DP deployments table "
                f"(nor timezone / folder), so it would be lost; rename it to one of {', '.join(table_columns)}, "
                "or remove it",
                line=1,
                field=unknown[0],
            )
        rows = []
        for row in reader:
            if None in row:  # DictReader's key for values beyond the header
                raise DeploymentsError(
                    f"{name} line {reader.line_num}: {len(row[None])} more value(s) than the "
                    f"header has columns ({row[None]}); quote values that hold a comma",
                    line=reader.line_num,
                )
            rows.append(({k.strip(): (v or "").strip() for k, v in row.items()}, reader.line_num))
    if not rows:
        raise DeploymentsError(f"{name} has a header but no deployment rows; add one row per deployment", line=2)
    deployments = [_read_row(row, line, name, table_columns) for row, line in rows]
    _check_unique_ids(deployments, name)
    _check_folders(deployments, name)
    return Deployments(deployments, source=name)


def _read_row(row: dict[str, str], line: int, name: str, table_columns: list[str]) -> Deployment:
    def fail(field_name: str, problem: str) -> DeploymentsError:
        return DeploymentsError(f"{name} line {line}, field {field_name}: {problem}", line=line, field=field_name)

    for column in REQUIRED_COLUMNS:
        if column != "folder" and not row.get(column):
            raise fail(column, "is empty; every deployment needs one")
    try:
        tz = parse_timezone(row["timezone"])
    except ValueError as exc:
        raise fail("timezone", str(exc)) from None
    values: dict[str, object] = {}
    for column, limit in (("latitude", 90.0), ("longitude", 180.0)):
        try:
            values[column] = _coordinate(row[column], column, limit)
        except ValueError as exc:
            raise fail(column, str(exc)) from None
    for column in ("deploymentStart", "deploymentEnd"):
        try:
            values[column] = _parse_datetime(row[column], tz, end_of_day=column == "deploymentEnd")
        except ValueError as exc:
            raise fail(column, str(exc)) from None
    start, end = values["deploymentStart"], values["deploymentEnd"]
    if end < start:  # type: ignore[operator]
        raise fail("deploymentEnd", f"{row['deploymentEnd']!r} is before deploymentStart {row['deploymentStart']!r}")
    try:
        folder = _normalise_folder(row.get("folder", ""))
    except ValueError as exc:
        raise fail("folder", str(exc)) from None
    columns = {c: row.get(c, "") for c in table_columns}
    columns["deploymentStart"] = start.isoformat(timespec="seconds")  # type: ignore[union-attr]
    columns["deploymentEnd"] = end.isoformat(timespec="seconds")  # type: ignore[union-attr]
    return Deployment(
        deployment_id=row["deploymentID"],
        latitude=values["latitude"],  # type: ignore[arg-type]
        longitude=values["longitude"],
        start=start,
        end=end,  # type: ignore[arg-type]
        tz=tz,
        timezone_text=row["timezone"],
        folder=folder,
        line=line,
        columns=columns,
    )


def _check_unique_ids(deployments: list[Deployment], name: str) -> None:
    seen: dict[str, int] = {}
    for d in deployments:
        if d.deployment_id in seen:
            raise DeploymentsError(
                f"{name} line {d.line}, field deploymentID: {d.deployment_id!r} is also on line "
                f"{seen[d.deployment_id]}; deployment ids must be unique",
                line=d.line,
                field="deploymentID",
            )
        seen[d.deployment_id] = d.line


def _check_folders(deployments: list[Deployment], name: str) -> None:
    for i, a in enumerate(deployments):
        for b in deployments[i + 1 :]:
            outer, inner = (a, b) if len(a.folder) <= len(b.folder) else (b, a)
            if outer.holds(inner.folder + "/x") or outer.folder == inner.folder:
                what = (
                    "the same folder"
                    if outer.folder == inner.folder
                    else (f"folder {outer.folder or '.'!r} (line {outer.line}) contains {inner.folder!r}")
                )
                raise DeploymentsError(
                    f"{name} line {b.line}, field folder: deployments {a.deployment_id!r} (line {a.line}) and "
                    f"{b.deployment_id!r} (line {b.line}) overlap: {what}, so a media file there would belong to "
                    "both; give each deployment its own folder, none inside another",
                    line=b.line,
                    field="folder",
                )
