"""A Camtrap DP 1.0 package with boxes -> a COCO Camera Traps file that ``train_net.py`` and ``split-cct`` take.

Platforms such as Agouti and Trapper export their human-made boxes as Camtrap DP. Per medium (image) found on
disk, one CCT image (``file_name`` relative to the image root, ``width`` / ``height`` read from the file as a
viewer shows it, ``location`` = ``deploymentID``, ``seq_id`` = ``eventID``, ``datetime`` = ``timestamp``), and
per media-level observation one annotation: the category is the ``scientificName`` or, without one, the
``observationType`` (``blank`` becomes CCT's ``empty``); the normalised ``bboxX/Y/Width/Height`` become pixels.

A medium is looked for at ``ROOT/filePath`` (a relative path), then at ``ROOT/fileName`` (media published as URLs,
such as TDWG's example, whose files a user downloaded into one folder). A medium found at neither is reported with
its observations, never guessed. Videos are reported and left out (CCT boxes are per image).
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import UserInputError
from ..inputs.exif import image_size_from_header
from ..inputs.video import is_video_file

__all__ = ["ImportReport", "PackageError", "package_to_cct"]

EMPTY_CATEGORY = "empty"


class PackageError(UserInputError):
    """The folder is not a Camtrap DP 1.x package this reader understands."""


@dataclass
class ImportReport:
    images: int = 0
    boxes: int = 0
    labels_without_box: int = 0
    missing_media: list[str] = field(default_factory=list)
    missing_boxes: int = 0
    videos: int = 0
    event_observations: int = 0
    categories: Counter = field(default_factory=Counter)

    def describe(self) -> str:
        categories = ", ".join(f"{n} {c}" for c, n in self.categories.most_common())
        lines = [
            f"{self.images} images, {self.boxes} boxes, {self.labels_without_box} labels without a box; "
            + f"categories: {categories}"
        ]
        if self.missing_media:
            lines.append(
                f"{len(self.missing_media)} media not found under the image root (with {self.missing_boxes} "
                f"boxes), left out, e.g. {', '.join(self.missing_media[:3])}"
            )
        if self.videos:
            lines.append(f"{self.videos} videos left out (CCT boxes are per image)")
        if self.event_observations:
            lines.append(f"{self.event_observations} event-level observations not used (they name no medium)")
        return "\n".join(lines)


def _read_table(folder: Path, descriptor: dict[str, Any], name: str) -> list[dict[str, str]]:
    resource = next((r for r in descriptor.get("resources", []) if r.get("name") == name), None)
    if resource is None:
        raise PackageError(f"{folder}/datapackage.json has no {name!r} resource; is it a Camtrap DP 1.x package?")
    path = resource.get("path")
    if not isinstance(path, str) or "://" in path:
        raise PackageError(f"{name} resource path {path!r}: only a CSV file inside the package is read")
    with open(folder / path, newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def _float(row: dict[str, str], key: str) -> float | None:
    value = (row.get(key) or "").strip()
    return float(value) if value not in ("", "NA", "NaN", "nan") else None


def package_to_cct(package: str | os.PathLike, images: str | os.PathLike) -> tuple[dict[str, Any], ImportReport]:
    """``(CCT dict, report)`` of a Camtrap DP 1.x package; see the module docstring.

    Raises:
        FileNotFoundError: no ``datapackage.json`` in ``package``, or ``images`` is not a folder.
        PackageError: a pre-1.0 package (it has ``events.csv`` and other columns) or a missing table.
    """
    folder = Path(package)
    root = Path(images)
    descriptor_path = folder / "datapackage.json"
    if not descriptor_path.is_file():
        raise FileNotFoundError(f"{descriptor_path} does not exist; give the folder of a Camtrap DP package")
    if not root.is_dir():
        raise FileNotFoundError(f"--images {root} is not a folder")
    descriptor = json.loads(descriptor_path.read_text(encoding="utf-8"))
    profile = str(descriptor.get("profile", ""))
    if "camtrap-dp/0." in profile or any(r.get("name") == "events" for r in descriptor.get("resources", [])):
        raise PackageError(
            f"{descriptor_path} is a pre-1.0 Camtrap DP package (profile {profile}); this reader takes "
            "1.x packages: export the data again from the platform as Camtrap DP 1.0 or later"
        )
    media = _read_table(folder, descriptor, "media")
    observations = _read_table(folder, descriptor, "observations")
    report = ImportReport()

    by_media: dict[str, list[dict[str, str]]] = defaultdict(list)
    events_by_deployment: dict[str, list[dict[str, str]]] = defaultdict(list)
    for obs in observations:
        if obs.get("observationLevel") == "event" or not obs.get("mediaID"):
            report.event_observations += 1
            events_by_deployment[obs.get("deploymentID", "")].append(obs)
        else:
            by_media[obs["mediaID"]].append(obs)

    category_ids: dict[str, int] = {}
    cct_images, annotations = [], []
    for row in media:
        mid = row["mediaID"]
        file_path, file_name = row.get("filePath", ""), row.get("fileName", "")
        if is_video_file(file_name or file_path) or row.get("fileMediatype", "").startswith("video/"):
            report.videos += 1
            continue
        candidates = ([file_path] if file_path and "://" not in file_path else []) + ([file_name] if file_name else [])
        found = next((c for c in candidates if (root / c).is_file()), None)
        if found is None:
            report.missing_media.append(file_path or file_name or mid)
            report.missing_boxes += sum(_float(o, "bboxX") is not None for o in by_media.get(mid, []))
            continue
        width, height = image_size_from_header(root / found)
        image = {
            "id": mid,
            "file_name": found.replace("\\", "/"),
            "width": width,
            "height": height,
            "location": row.get("deploymentID", ""),
            "datetime": row.get("timestamp", ""),
        }
        event_id = next((o["eventID"] for o in by_media.get(mid, []) if o.get("eventID")), None) or _event_containing(
            events_by_deployment.get(row.get("deploymentID", ""), []), row.get("timestamp", "")
        )
        if event_id:
            image["seq_id"] = event_id
        cct_images.append(image)
        report.images += 1
        for obs in by_media.get(mid, []):
            obs_type = obs.get("observationType", "") or "unknown"
            name = (obs.get("scientificName") or "").strip() or (EMPTY_CATEGORY if obs_type == "blank" else obs_type)
            category_ids.setdefault(name, len(category_ids) + 1)
            annotation: dict[str, Any] = {
                "id": obs.get("observationID") or f"{mid}_{len(annotations)}",
                "image_id": mid,
                "category_id": category_ids[name],
            }
            box = [_float(obs, k) for k in ("bboxX", "bboxY", "bboxWidth", "bboxHeight")]
            if all(v is not None for v in box):
                x, y, w, h = box
                annotation["bbox"] = [x * width, y * height, w * width, h * height]  # type: ignore[operator]
                report.boxes += 1
            else:
                report.labels_without_box += 1
            report.categories[name] += 1
            annotations.append(annotation)
    categories = [{"id": i, "name": n} for n, i in category_ids.items()]
    if EMPTY_CATEGORY not in category_ids:
        categories.insert(0, {"id": 0, "name": EMPTY_CATEGORY})
    info = {
        "description": f"converted by ropevit-det camtrapdp import from {descriptor.get('title') or folder}",
        "camtrap_dp_profile": profile,
    }
    return {"info": info, "images": cct_images, "annotations": annotations, "categories": categories}, report


def _event_containing(events: list[dict[str, str]], timestamp: str) -> str | None:
    """The eventID of the event-level observation whose start..end holds ``timestamp`` (1.0 links media to events
    that way: media.csv has no eventID)."""
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    for obs in events:
        try:
            start = datetime.fromisoformat(obs["eventStart"])
            end = datetime.fromisoformat(obs["eventEnd"])
        except (KeyError, ValueError):
            continue
        if start <= moment <= end and obs.get("eventID"):
            return obs["eventID"]
    return None
