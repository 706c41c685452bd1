"""MegaDetector batch output format: build its entries, read a results file back.

The format (https://lila.science/megadetector-output-format, version 1.6, the one the ``megadetector``
package writes and its ``validate_batch_results`` checks) is what Timelapse and AddaxAI read:

* ``info``: ``format_version`` (a string), ``detector``, ``detection_completion_time``, ``detector_metadata``
  with ``typical_detection_threshold`` / ``conservative_detection_threshold`` (Timelapse's default slider);
* ``detection_categories``: ``{"1": "animal", "2": "person", "3": "vehicle"}`` (string ids);
* ``images``: ``{"file": relative/path.jpg, "detections": [{"category": "1", "conf": 0.93,
  "bbox": [x_min, y_min, width, height] normalised to 0..1, optional "classifications": [["12", 0.8], ...]}]}``,
  or ``{"file": ..., "failure": "reason", "detections": null}`` for an unreadable image;
* optional ``classification_categories`` ``{"12": "Vulpes vulpes", ...}``.

Writing a results file, checkpoints and resume live in :mod:`.writer`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ...errors import UserInputError
from ..data.matching import to_posix

logger = logging.getLogger(__name__)

FORMAT_VERSION = "1.6"
DEFAULT_DETECTION_CATEGORIES: dict[str, str] = {"1": "animal", "2": "person", "3": "vehicle"}
# MegaDetector's own rounding: boxes to 4 decimals (0.1 px on a 1000 px image), confidences to 3.
COORD_DIGITS = 4
CONF_DIGITS = 3


def make_info(
    detector: str,
    *,
    typical_detection_threshold: float = 0.2,
    conservative_detection_threshold: float = 0.1,
    classifier: str | None = None,
    extra_detector_metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``info`` block. ``detection_completion_time`` is filled in by :meth:`ResultsWriter.finalize`.

    Args:
        detector: model name or checkpoint file name (shown by Timelapse).
        typical_detection_threshold: the confidence Timelapse and AddaxAI use as their default threshold.
        conservative_detection_threshold: a lower threshold for "don't miss anything" review.
        classifier: name of the species classifier, when ``classifications`` are written.
        extra_detector_metadata: more ``detector_metadata`` entries (e.g. ``image_size``).
    """
    metadata = {
        "typical_detection_threshold": float(typical_detection_threshold),
        "conservative_detection_threshold": float(conservative_detection_threshold),
    }
    metadata.update(extra_detector_metadata or {})
    info: dict[str, Any] = {"format_version": FORMAT_VERSION, "detector": detector, "detector_metadata": metadata}
    if classifier is not None:
        info["classifier"] = classifier
    return info


def detection_entry(
    category: int | str,
    conf: float,
    box_xyxy: Sequence[float],
    image_width: int,
    image_height: int,
    classifications: Iterable[tuple[int | str, float]] | None = None,
) -> dict[str, Any]:
    """One MD detection from an absolute-pixel ``[x0, y0, x1, y1]`` box.

    Args:
        category: detection category id (key of ``detection_categories``).
        conf: detector score in 0..1.
        box_xyxy: box corners in pixels of the image the model saw.
        image_width, image_height: size of that image (boxes are normalised by it and clipped to it).
        classifications: optional ``(classification category id, confidence)`` pairs, best first.
    """
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    x0, x1 = (min(max(v / image_width, 0.0), 1.0) for v in (x0, x1))
    y0, y1 = (min(max(v / image_height, 0.0), 1.0) for v in (y0, y1))
    entry: dict[str, Any] = {
        "category": str(category),
        # float(): the validator rejects ints, and numpy floats are not JSON-serialisable.
        "conf": round(float(conf), CONF_DIGITS),
        "bbox": [
            round(x0, COORD_DIGITS),
            round(y0, COORD_DIGITS),
            round(x1 - x0, COORD_DIGITS),
            round(y1 - y0, COORD_DIGITS),
        ],
    }
    if classifications is not None:
        pairs = sorted(((str(c), round(float(p), CONF_DIGITS)) for c, p in classifications), key=lambda pair: -pair[1])
        entry["classifications"] = [list(pair) for pair in pairs]
    return entry


def image_entry(file: str, detections: list[dict[str, Any]]) -> dict[str, Any]:
    """A successfully processed image (``file`` relative to the input root; detections may be empty)."""
    return {"file": to_posix(str(file)), "detections": sorted(detections, key=lambda d: -d["conf"])}


def failure_entry(file: str, reason: str) -> dict[str, Any]:
    """An image that could not be processed: ``failure`` string and ``detections: null``, as the spec asks."""
    return {"file": to_posix(str(file)), "failure": str(reason), "detections": None}


def normalized_to_absolute_xywh(bbox: Sequence[float], width: int, height: int) -> list[float]:
    """MD's normalised ``[x, y, w, h]`` to COCO's absolute-pixel ``[x, y, w, h]``."""
    x, y, w, h = bbox
    return [x * width, y * height, w * width, h * height]


class ResultsFileError(UserInputError):
    """An existing results file cannot be used (not JSON, not MD format, other categories)."""


def load_results(path: str | os.PathLike) -> dict[str, Any]:
    """Read an MD results file and check the parts tools rely on; a clear :class:`ResultsFileError` otherwise.

    Checked: ``info`` (if present) and ``detection_categories`` / ``classification_categories`` are objects with
    string names; each entry has a ``file`` string, ``failure`` null or a string, and ``detections`` null or a
    list of ``{"category": a key of detection_categories, "conf": a finite number, "bbox": four finite
    numbers}``. A missing file raises ``FileNotFoundError``.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except IsADirectoryError:
        raise ResultsFileError(f"{path} is a folder, not a results file; pass the .json file") from None
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ResultsFileError(f"{path} cannot be read ({exc.strerror or exc}); check its permissions") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError (binary), nesting, huge ints
        raise ResultsFileError(
            f"{path} is not valid JSON ({exc}); it was not written by a completed checkpoint (files written by "
            "ResultsWriter are replaced atomically, so it was damaged or made by something else). "
            "Move it away and start again."
        ) from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("detection_categories"), dict)
    ):
        raise ResultsFileError(
            f"{path} is JSON but not a MegaDetector results file (needs 'images' list and 'detection_categories')"
        )
    if not isinstance(data.get("info", {}), dict):
        raise ResultsFileError(f"{path}: 'info' must be an object")
    for key in ("detection_categories", "classification_categories"):
        names = data.get(key) or {}
        if not isinstance(names, dict) or not all(isinstance(name, str) for name in names.values()):
            raise ResultsFileError(f"{path}: '{key}' must map ids to name strings")
    for i, entry in enumerate(data["images"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise ResultsFileError(f"{path}: images[{i}] has no 'file' string")
        problem = _entry_problem(entry, data["detection_categories"])
        if problem:
            raise ResultsFileError(f"{path}: images[{i}] ({entry['file']!r}) {problem}; fix or remove this entry")
    return data


def _entry_problem(entry: Mapping[str, Any], detection_categories: Mapping[str, str]) -> str | None:
    """What is wrong with one results entry for the tools that read it, or None."""

    def finite(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    if entry.get("failure") is not None and not isinstance(entry["failure"], str):
        return "has a 'failure' that is not a string"
    detections = entry.get("detections")
    if detections is None:
        return None
    if not isinstance(detections, list):
        return "has 'detections' that are not a list"
    for k, det in enumerate(detections):
        if (
            not isinstance(det, dict)
            or not isinstance(det.get("category"), str)
            or det["category"] not in detection_categories
        ):
            return f"detections[{k}] has no 'category' of detection_categories"
        if not finite(det.get("conf")):
            return f"detections[{k}] has no finite 'conf'"
        bbox = det.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(finite(v) for v in bbox):
            return f"detections[{k}] has a 'bbox' that is not four finite numbers"
    return None
