"""MegaDetector-format results + a deployments file -> a Camtrap DP 1.0.2 package (what GBIF and Agouti read).

:func:`export_package` writes ``datapackage.json``, ``deployments.csv``, ``media.csv`` and ``observations.csv``,
every CSV with every column of its table schema, in schema order:

* media: one row per image and per video of the results; ``filePath`` relative to the image root (or inside the
  package with ``copy_media``), ``timestamp`` the capture time in ISO 8601 with the deployment's offset;
* media-level observations: one per detection at or above the threshold (``observationType`` animal / human /
  vehicle, the box, ``classificationMethod`` machine, ``classifiedBy``, ``classificationProbability``, and
  ``scientificName`` when a species classifier named it), and one ``blank`` observation for a medium with none;
* event-level observations: per event (:mod:`.events`) and taxon, ``count`` = the most individuals of that taxon
  in one medium of the event; a ``blank`` one for an event with no detection.

Media without a capture time and images that failed are counted and refused unless the caller skips them
(``skip_undated`` / ``skip_failed``); the report lists what was skipped and every metadata default used.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ...errors import UserInputError
from ..inputs.exif import EXIF_DATETIME_FORMAT
from ..inputs.video import is_video_file
from ..results.md_format import load_results
from .deployments import Deployment, Deployments, DeploymentsError, read_deployments
from .events import DEFAULT_EVENT_GAP_SECONDS, group_events
from .metadata import package_descriptor, read_package_metadata
from .rows import classified_by, event_observations, media_id, media_type, scientific_name, write_csv

__all__ = ["ExportError", "ExportOptions", "ExportReport", "export_package"]

# MegaDetector's class names -> Camtrap DP observationType.
OBSERVATION_TYPES: dict[str, str] = {"animal": "animal", "person": "human", "human": "human", "vehicle": "vehicle"}
DEFAULT_THRESHOLD = 0.2


class ExportError(UserInputError):
    """The results cannot become a package as asked (media without time, failures, files not found, ...)."""


@dataclass(frozen=True, kw_only=True)
class ExportOptions:
    """How :func:`export_package` turns results into observations.

    Attributes:
        threshold: detections below this confidence are not observations; None: the results' own
            ``typical_detection_threshold`` (``info.detector_metadata``), else 0.2.
        classification_threshold: a species label below this confidence leaves ``scientificName`` empty.
        event_gap_seconds: the largest gap between two media of one event.
        cct_file: group events by this CCT file's ``seq_id`` instead.
        skip_undated: leave out media without a capture time (counted) instead of refusing the export.
        skip_failed: leave out images the detector could not read (counted) instead of refusing the export.
        copy_media: copy the media into ``<output>/media/`` so ``filePath`` resolves inside the package.
        capture_method: ``media.captureMethod`` (``activityDetection`` or ``timeLapse``).
        overwrite: replace package files already in the output folder.
    """

    threshold: float | None = None
    classification_threshold: float = 0.5
    event_gap_seconds: float = DEFAULT_EVENT_GAP_SECONDS
    cct_file: str | os.PathLike | None = None
    skip_undated: bool = False
    skip_failed: bool = False
    copy_media: bool = False
    capture_method: str = "activityDetection"
    overwrite: bool = False


@dataclass
class ExportReport:
    """What :func:`export_package` wrote and left out."""

    output: Path
    threshold: float = 0.0
    images: int = 0
    videos: int = 0
    events: int = 0
    media_observations: int = 0
    event_observations: int = 0
    observation_types: Counter = field(default_factory=Counter)
    skipped_undated: list[str] = field(default_factory=list)
    skipped_failed: list[str] = field(default_factory=list)
    boxes_without_size: int = 0
    events_from_cct: int = 0
    defaults: list[str] = field(default_factory=list)

    @property
    def media(self) -> int:
        return self.images + self.videos

    def describe(self) -> str:
        types = ", ".join(f"{n} {t}" for t, n in sorted(self.observation_types.items()))
        lines = [
            (
                f"wrote {self.output}: {self.media} media ({self.images} images, {self.videos} videos) in "
                f"{self.events} events; {self.media_observations} media-level observations ({types}) at "
                f"threshold {self.threshold:g}, {self.event_observations} event-level observations"
            )
        ]
        if self.skipped_undated:
            lines.append(
                f"skipped {len(self.skipped_undated)} media without a capture time (e.g. {self.skipped_undated[0]})"
            )
        if self.skipped_failed:
            lines.append(
                f"skipped {len(self.skipped_failed)} images the detector could not read (e.g. {self.skipped_failed[0]})"
            )
        if self.boxes_without_size:
            lines.append(
                f"{self.boxes_without_size} detections with a zero-width or zero-height box were written without a box"
            )
        if self.defaults:
            lines.append("metadata defaults used (set them with --package-metadata):")
            lines += [f"  - {d}" for d in self.defaults]
        return "\n".join(lines)


def _check_output(output: Path, overwrite: bool) -> None:
    names = ["datapackage.json", "deployments.csv", "media.csv", "observations.csv"]
    present = [n for n in names if (output / n).exists()]
    if present and not overwrite:
        raise ExportError(f"{output} already holds {', '.join(present)}; pass --overwrite or choose another --output")
    if output.exists() and not output.is_dir():
        raise ExportError(f"--output {output} is a file; give a folder for the package")


def export_package(
    *,
    results: str | os.PathLike | dict[str, Any],
    deployments: str | os.PathLike | Deployments,
    images: str | os.PathLike,
    output: str | os.PathLike,
    metadata: str | os.PathLike | dict[str, Any] | None = None,
    options: ExportOptions | None = None,
) -> ExportReport:
    """Write a Camtrap DP 1.0.2 package into the folder ``output`` (see the module docstring).

    Args:
        results: an MD results file (or its dict); paths relative to ``images``.
        deployments: the deployments CSV (see :mod:`.deployments`) or its :class:`Deployments`.
        images: the image root the results' paths and the deployments' folders start from.
        output: the package folder (made if missing).
        metadata: package metadata (YAML / JSON file or dict: title, contributors, project, licenses, ...).

    Raises:
        DeploymentsError: the deployments file is wrong, or a medium belongs to no deployment or lies outside its
            deployment's start and end.
        ExportError: media without time / failed images not skipped, media files not under ``images``, an output
            that holds a package already.
    """
    options = options or ExportOptions()
    output = Path(output)
    images = Path(images)
    if not images.is_dir():
        raise ExportError(f"--images {images} is not a folder; give the root the results' paths start from")
    _check_output(output, options.overwrite)
    data = results if isinstance(results, dict) else load_results(results)
    deps = deployments if isinstance(deployments, Deployments) else read_deployments(deployments)
    meta = read_package_metadata(metadata) if not isinstance(metadata, dict) else dict(metadata)
    info = data.get("info") or {}
    threshold = options.threshold
    if threshold is None:
        threshold = float((info.get("detector_metadata") or {}).get("typical_detection_threshold", DEFAULT_THRESHOLD))
    report = ExportReport(output=output, threshold=threshold)

    # Which media go in: every entry, or a clear refusal naming what is wrong with how many.
    failed = [e["file"] for e in data["images"] if e.get("failure") or e.get("detections") is None]
    undated = [
        e["file"]
        for e in data["images"]
        if not (e.get("failure") or e.get("detections") is None) and not e.get("datetime")
    ]
    if failed and not options.skip_failed:
        raise ExportError(
            f"{len(failed)} of {len(data['images'])} images failed in the detector (e.g. {failed[0]}: "
            f"{next(e for e in data['images'] if e['file'] == failed[0]).get('failure')}); they have "
            "no observations. Pass --skip-failed to leave them out (they are counted), or rerun them"
        )
    if undated and not options.skip_undated:
        raise ExportError(
            f"{len(undated)} of {len(data['images'])} media have no capture time (no 'datetime' in the "
            f"results, e.g. {undated[0]}); Camtrap DP needs a timestamp for every medium. Pass "
            "--skip-undated to leave them out (they are counted), or set the camera clock / EXIF time"
        )
    report.skipped_failed = failed
    report.skipped_undated = undated
    skipped = set(failed) | set(undated)
    entries = [e for e in data["images"] if e["file"] not in skipped]
    if not entries:
        raise ExportError("no media left to export (all failed or undated)")
    missing = [e["file"] for e in entries if not (images / e["file"]).is_file()]
    if missing:
        raise ExportError(
            f"{len(missing)} media of the results are not under --images {images} (e.g. "
            f"{missing[0]}); give the root the results' paths are relative to"
        )
    assigned = deps.assign(e["file"] for e in entries)
    timestamps: dict[str, datetime] = {}
    for e in entries:
        d = assigned[e["file"]]
        try:
            naive = datetime.strptime(e["datetime"], EXIF_DATETIME_FORMAT)
        except ValueError:
            raise ExportError(
                f"{e['file']}: capture time {e['datetime']!r} is not EXIF's YYYY:MM:DD HH:MM:SS"
            ) from None
        moment = d.localize(naive)
        if not d.start <= moment <= d.end:
            raise DeploymentsError(
                f"{e['file']} was taken at {moment.isoformat()}, outside deployment {d.deployment_id!r} "
                f"({d.start.isoformat()} .. {d.end.isoformat()}, {deps.source} line {d.line}); fix "
                "deploymentStart / deploymentEnd, or the camera clock (timestamps)",
                line=d.line,
                field="deploymentStart" if moment < d.start else "deploymentEnd",
            )
        timestamps[e["file"]] = moment

    event_of, report.events_from_cct = group_events(
        entries,
        {f: d.deployment_id for f, d in assigned.items()},
        gap_seconds=options.event_gap_seconds,
        cct_file=options.cct_file,
    )
    report.events = len(set(event_of.values()))

    output.mkdir(parents=True, exist_ok=True)
    machine = classified_by(info)
    detection_names = data["detection_categories"]
    class_names = data.get("classification_categories") or {}
    media_rows, observation_rows = [], []
    taxa: dict[str, dict[str, str]] = {}
    per_event: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in sorted(entries, key=lambda e: (assigned[e["file"]].deployment_id, timestamps[e["file"]], e["file"])):
        path = e["file"]
        deployment: Deployment = assigned[path]
        mid = media_id(path)
        when = timestamps[path].isoformat(timespec="seconds")
        video = is_video_file(path)
        report.videos += video
        report.images += not video
        file_path = path
        if options.copy_media:
            file_path = f"media/{path}"
            (output / file_path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(images / path, output / file_path)
        media_rows.append(
            {
                "mediaID": mid,
                "deploymentID": deployment.deployment_id,
                "captureMethod": options.capture_method,
                "timestamp": when,
                "filePath": file_path,
                "filePublic": "false",
                "fileName": Path(path).name,
                "fileMediatype": media_type(path),
            }
        )
        common = {
            "deploymentID": deployment.deployment_id,
            "mediaID": mid,
            "eventID": event_of[path],
            "eventStart": when,
            "eventEnd": when,
            "observationLevel": "media",
            "classificationMethod": "machine",
            "classifiedBy": machine,
        }
        kept = [det for det in e["detections"] if det["conf"] >= threshold]
        rows = []
        for det in kept:
            row = dict(
                common,
                observationType=OBSERVATION_TYPES.get(detection_names.get(det["category"], ""), "unclassified"),
                count="1",
                classificationProbability=f"{det['conf']:.3f}",
            )
            if row["observationType"] == "animal" and det.get("classifications"):
                label_id, label_conf = det["classifications"][0]
                if label_conf >= options.classification_threshold and str(label_id) in class_names:
                    name, ranks = scientific_name(class_names[str(label_id)])
                    row["scientificName"] = name
                    row["classificationProbability"] = f"{label_conf:.3f}"
                    taxa.setdefault(name, ranks)
            x, y, w, h = det["bbox"]
            if video:
                pass  # a box on one sampled frame says nothing about the others: videos get no boxes
            elif w > 0 and h > 0:
                x, y = min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)
                w, h = min(w, 1.0 - x), min(h, 1.0 - y)
                row.update(bboxX=f"{x:.4f}", bboxY=f"{y:.4f}", bboxWidth=f"{w:.4g}", bboxHeight=f"{h:.4g}")
                if not (w > 0 and h > 0):
                    del row["bboxX"], row["bboxY"], row["bboxWidth"], row["bboxHeight"]
                    report.boxes_without_size += 1
            else:
                report.boxes_without_size += 1
            rows.append(row)
        if not rows:
            rows.append(dict(common, observationType="blank"))
        for i, row in enumerate(rows, 1):
            row["observationID"] = f"{mid}_{i}"
            report.observation_types[row["observationType"]] += 1
        observation_rows += rows
        per_event[event_of[path]].append({"time": timestamps[path], "rows": rows})
    report.media_observations = len(observation_rows)
    event_rows = event_observations(per_event, machine)
    report.event_observations = len(event_rows)

    write_csv(output / "deployments.csv", "deployments", [d.columns for d in deps])
    write_csv(output / "media.csv", "media", media_rows)
    write_csv(output / "observations.csv", "observations", event_rows + observation_rows)
    descriptor, report.defaults = package_descriptor(
        meta,
        deployments=list(deps),
        media_times=list(timestamps.values()),
        taxa=taxa,
        capture_methods=[options.capture_method],
        created=datetime.now(timezone.utc),
    )
    (output / "datapackage.json").write_text(
        json.dumps(descriptor, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return report
