"""Species labels added to an existing MegaDetector-format results file (ours, MegaDetector's, RDE's output).

Each detection at or above the threshold is cropped from the full image (as displayed: EXIF rotation applied),
classified, and given MegaDetector's ``classifications`` (``[[category id, probability], ...]``, best first);
the file gets the classifier's ``classification_categories``. Labels the input already had are replaced, since
their ids belong to another classifier's categories. Videos, failed images and images not found are left as they
are and counted.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.matching import check_relative_paths, to_posix
from ..inputs.decoding import read_image_rgb
from ..inputs.video import is_video_file
from ..results.md_format import CONF_DIGITS
from .classifier import SpeciesClassifier

__all__ = ["ClassifySummary", "add_species"]

logger = logging.getLogger(__name__)


@dataclass
class ClassifySummary:
    images: int = 0  # images read and looked at
    classified: int = 0  # detections given classifications
    below_threshold: int = 0
    missing: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    videos: int = 0
    failed: int = 0  # entries whose detection had failed


def _box_xyxy(bbox: list[float], width: int, height: int) -> np.ndarray:
    """MD's normalised ``[x, y, w, h]`` -> ``[x0, y0, x1, y1]`` in the pixels of the decoded image."""
    x, y, w, h = bbox
    return np.array([x * width, y * height, (x + w) * width, (y + h) * height], dtype=np.float64)


def add_species(
    results: Mapping[str, Any], image_dir: str | os.PathLike, classifier: SpeciesClassifier, *, threshold: float
) -> tuple[dict[str, Any], ClassifySummary]:
    """A copy of ``results`` (an MD results dict, see ``results.md_format.load_results``) with species labels.

    Raises:
        FileNotFoundError: ``image_dir`` is not a folder.
        ValueError: an entry's path leads outside ``image_dir`` (nothing outside it is read).
    """
    root = Path(image_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    check_relative_paths([str(e["file"]) for e in results["images"]], source="the results", root=str(root))
    data = copy.deepcopy(dict(results))
    summary = ClassifySummary()
    for entry in data["images"]:
        detections = entry.get("detections")
        for det in detections or ():
            det.pop("classifications", None)  # another classifier's ids
        if entry.get("failure") is not None or detections is None:
            summary.failed += 1
            continue
        if is_video_file(entry["file"]):
            summary.videos += 1
            continue
        chosen = [d for d in detections if float(d["conf"]) >= threshold]
        summary.below_threshold += len(detections) - len(chosen)
        if not chosen:
            continue
        path = root / to_posix(str(entry["file"]))
        if not path.is_file():
            summary.missing.append(entry["file"])
            continue
        read = read_image_rgb(path)
        if read.image is None:
            summary.unreadable.append(entry["file"])
            continue
        summary.images += 1
        image = read.image
        height, width = image.shape[:2]
        crops = [classifier.preprocess(image, _box_xyxy(d["bbox"], width, height)) for d in chosen]
        for det, top_k in zip(chosen, classifier.classify(crops)):
            det["classifications"] = [
                [str(cid), round(float(p), CONF_DIGITS)] for cid, p in sorted(top_k, key=lambda pair: -pair[1])
            ]
        summary.classified += len(chosen)
    data["classification_categories"] = dict(classifier.categories)
    info = dict(data.get("info") or {})
    info["classifier"] = classifier.name
    data["info"] = info
    return data, summary
