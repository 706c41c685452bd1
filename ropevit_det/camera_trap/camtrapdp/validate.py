"""Validate a Camtrap DP package as TDWG's own tests do: ``frictionless.validate`` of its ``datapackage.json``.

The descriptor is validated as written (its profile and schema URLs included), against the 1.0.2 profile and
table schemas shipped in ``profile/``: frictionless fetches them through :func:`.schema.offline_http_session`,
which serves the shipped files and refuses any other URL, so no network is needed or used. Every problem comes
back as a :class:`Problem` naming the table, the row and the field.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .schema import VERSION, offline_http_session

__all__ = ["Problem", "ValidationResult", "validate_package"]


@dataclass(frozen=True)
class Problem:
    """One validation error: ``resource`` (None for the descriptor), ``row`` (CSV row, header = 1), ``field``."""

    kind: str
    message: str
    resource: str | None = None
    row: int | None = None
    field: str | None = None

    def describe(self) -> str:
        where = [
            w
            for w in (
                self.resource and f"{self.resource}.csv",
                self.row and f"row {self.row}",
                self.field and f"field {self.field}",
            )
            if w
        ]
        return f"{', '.join(where) or 'datapackage.json'}: {self.kind}: {self.message}"


@dataclass(frozen=True)
class ValidationResult:
    package: Path
    problems: tuple[Problem, ...]

    @property
    def valid(self) -> bool:
        return not self.problems

    def describe(self, limit: int = 20) -> str:
        if self.valid:
            return f"{self.package}: valid Camtrap DP {VERSION} package"
        lines = [f"{self.package}: {len(self.problems)} problem(s) against Camtrap DP {VERSION}:"]
        lines += [f"  {p.describe()}" for p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"  ... and {len(self.problems) - limit} more")
        return "\n".join(lines)


def validate_package(package: str | os.PathLike) -> ValidationResult:
    """Validate the package folder (or its ``datapackage.json``) against Camtrap DP 1.0.2, offline.

    Raises:
        FileNotFoundError: no ``datapackage.json``.
        ValueError: ``datapackage.json`` is not a JSON object.
    """
    from frictionless import system, validate

    path = Path(package)
    descriptor_path = path / "datapackage.json" if path.is_dir() else path
    if not descriptor_path.is_file():
        raise FileNotFoundError(f"{descriptor_path} does not exist; give a Camtrap DP package folder")
    try:
        descriptor = json.loads(descriptor_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{descriptor_path} is not valid JSON: {exc}") from None
    if not isinstance(descriptor, dict):
        raise ValueError(f"{descriptor_path}: the top level must be a JSON object")
    # frictionless reads resource paths relative to the working directory, not to the descriptor
    # (frictionless-py issue 956, worked around the same way in TDWG's tests).
    with contextlib.chdir(descriptor_path.parent), system.use_context(http_session=offline_http_session()):
        report = validate(descriptor)
    problems = [Problem(kind=e.type, message=e.note or e.message) for e in report.errors]
    for task in report.tasks:
        for e in task.errors:
            problems.append(
                Problem(
                    kind=e.type,
                    message=e.note or e.message,
                    resource=task.name,
                    row=getattr(e, "row_number", None),
                    field=getattr(e, "field_name", None),
                )
            )
    return ValidationResult(package=descriptor_path.parent, problems=tuple(problems))
