"""The rows of a Camtrap DP package: media ids and types, scientific names, who classified, event-level
observations, and CSV tables with every column of their schema in schema order."""

from __future__ import annotations

import csv
import hashlib
import mimetypes
from collections import Counter
from pathlib import Path
from typing import Any

from ..inputs.video import is_video_file
from ..species.taxonomy import RANKS, parse_inat21_name
from .schema import field_names

_MEDIATYPE_FALLBACK = {
    ".mkv": "video/x-matroska",
    ".avi": "video/x-msvideo",
    ".mov": "video/quicktime",
    ".mp4": "video/mp4",
    ".webp": "image/webp",
}


def media_id(path: str) -> str:
    """A stable id of a medium: the first 16 hex digits of the SHA-1 of its path (a re-export keeps it)."""
    return hashlib.sha1(path.encode("utf-8")).hexdigest()[:16]


def media_type(path: str) -> str:
    guessed, _ = mimetypes.guess_type(path)
    suffix = Path(path).suffix.lower()
    if guessed and guessed.split("/")[0] in ("image", "video"):
        return guessed
    return _MEDIATYPE_FALLBACK.get(suffix, "video/unknown" if is_video_file(path) else "image/unknown")


def scientific_name(label: str) -> tuple[str, dict[str, str]]:
    """``(scientificName, {rank: taxon})`` of a classifier label: iNat21 names give their binomial and ranks,
    other labels are taken as written."""
    lineage = parse_inat21_name(label)
    if lineage is None:
        return label.strip(), {}
    return lineage[-1], dict(zip(RANKS[:-1], lineage[:-1]))


def classified_by(info: dict[str, Any]) -> str:
    from ... import __version__

    metadata = info.get("detector_metadata") or {}
    detector = str(info.get("detector", "unknown detector"))
    # ropevit-det infer names the checkpoint file and its config; MegaDetector writes megadetector_version.
    version = metadata.get("megadetector_version") or metadata.get("model_version") or metadata.get("version")
    extra = [str(v) for v in (version, metadata.get("config") and f"config {metadata['config']}") if v]
    parts = [f"detector {detector}" + (f" ({', '.join(extra)})" if extra else "")]
    if info.get("classifier"):
        parts.append(f"classifier {info['classifier']}")
    return f"ropevit-det {__version__} (MegaDetector format {info.get('format_version', '?')}): " + "; ".join(parts)


def event_observations(per_event: dict[str, list[dict[str, Any]]], classified_by: str) -> list[dict[str, Any]]:
    """Per event and (observationType, scientificName): ``count`` = the most of them in one medium."""
    rows = []
    for event_id in sorted(per_event):
        media = per_event[event_id]
        first = media[0]["rows"][0]
        start = min(m["time"] for m in media).isoformat(timespec="seconds")
        end = max(m["time"] for m in media).isoformat(timespec="seconds")
        counts: dict[tuple[str, str], int] = {}
        probability: dict[tuple[str, str], float] = {}
        for m in media:
            in_frame = Counter(
                (r["observationType"], r.get("scientificName", ""))
                for r in m["rows"]
                if r["observationType"] != "blank"
            )
            for key, n in in_frame.items():
                counts[key] = max(counts.get(key, 0), n)
            for r in m["rows"]:
                key = (r["observationType"], r.get("scientificName", ""))
                if key in in_frame:
                    probability[key] = max(probability.get(key, 0.0), float(r["classificationProbability"]))
        keys = sorted(counts) or [("blank", "")]
        for i, key in enumerate(keys, 1):
            row = {
                "observationID": f"{event_id}_{i}",
                "deploymentID": first["deploymentID"],
                "eventID": event_id,
                "eventStart": start,
                "eventEnd": end,
                "observationLevel": "event",
                "observationType": key[0],
                "classificationMethod": "machine",
                "classifiedBy": classified_by,
            }
            if key[0] != "blank":
                row.update(
                    scientificName=key[1], count=str(counts[key]), classificationProbability=f"{probability[key]:.3f}"
                )
            rows.append(row)
    return rows


def write_csv(path: Path, table: str, rows: list[dict[str, Any]]) -> None:
    columns = field_names(table)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="raise", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})
