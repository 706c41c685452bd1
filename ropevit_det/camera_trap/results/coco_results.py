"""MD results -> COCO results JSON (``[{"image_id", "category_id", "bbox", "score"}]``), for COCO tools.

Converted from the final MD results file, so a resumed run's earlier images are included. Boxes go back to
absolute pixels of the image as displayed (EXIF orientation applied), whose size is read from each file's
header. MD rounds boxes to 4 decimals and scores to 3, so the COCO boxes are within 0.00005 x the image side
(0.2 px on a 4000 px frame) of the model's.

Image and category ids:

* with a ground-truth file (``coco_gt``, COCO or COCO Camera Traps): each results file is matched to a
  ground-truth image by path (exactly, else by file name plus parent folders, ``matching.TrailingPathMatcher``),
  and each detection category to the ground-truth category of the same name (case-insensitive); results
  files without a ground-truth image and detections of categories the ground truth lacks are left out, and
  counted;
* without one: ``image_id`` is the results ``file`` (relative path) and ``category_id`` the MD category id.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.matching import MatchReport, TrailingPathMatcher
from ..inputs.exif import image_size_from_header
from .md_format import normalized_to_absolute_xywh

__all__ = ["CocoConversionReport", "md_to_coco_results"]

logger = logging.getLogger(__name__)


@dataclass
class CocoConversionReport:
    """What the conversion left out."""

    detections: int = 0
    images_without_gt: list[str] = field(default_factory=list)
    detections_without_gt_category: dict[str, int] = field(default_factory=dict)
    match: MatchReport | None = None


def _ground_truth_maps(gt_file: str | os.PathLike) -> tuple[dict[str, Any], dict[str, int]]:
    """``({file_name: image id}, {lower-case category name: category id})`` of a COCO / CCT file."""
    with open(gt_file, encoding="utf-8") as f:
        gt = json.load(f)
    if not isinstance(gt, dict) or not isinstance(gt.get("images"), list) or not isinstance(gt.get("categories"), list):
        raise ValueError(
            f"ground-truth file {gt_file} is not a COCO / COCO Camera Traps file (needs 'images' and "
            "'categories' lists)"
        )
    images = {str(im["file_name"]): im["id"] for im in gt["images"]}
    categories = {str(c["name"]).lower(): c["id"] for c in gt["categories"]}
    return images, categories


def md_to_coco_results(
    md_results: Mapping[str, Any],
    image_root: str | os.PathLike,
    coco_gt: str | os.PathLike | None = None,
) -> tuple[list[dict[str, Any]], CocoConversionReport]:
    """COCO results for every detection of an MD results dict.

    Args:
        md_results: the MD results (``ResultsWriter.to_dict`` or ``md_format.load_results``).
        image_root: the folder the ``file`` entries are relative to (image sizes come from these files).
        coco_gt: optional ground truth whose image and category ids the results should use.

    Returns:
        ``(results, report)``.
    """
    report = CocoConversionReport()
    categories = md_results["detection_categories"]
    entries = [e for e in md_results["images"] if e.get("detections")]
    image_ids: dict[str, Any] = {e["file"]: e["file"] for e in entries}
    category_ids: dict[str, Any] = {k: int(k) for k in categories}
    if coco_gt is not None:
        gt_images, gt_categories = _ground_truth_maps(coco_gt)
        found, report.match = TrailingPathMatcher(gt_images).match_all(image_ids)
        report.images_without_gt = sorted(set(image_ids) - set(found))
        image_ids = {f: gt_images[gt_name] for f, gt_name in found.items()}
        category_ids = {
            k: gt_categories[name.lower()] for k, name in categories.items() if name.lower() in gt_categories
        }
    results: list[dict[str, Any]] = []
    root = Path(image_root)
    for entry in entries:
        if entry["file"] not in image_ids:
            continue
        width, height = image_size_from_header(root / entry["file"])
        for det in entry["detections"]:
            if det["category"] not in category_ids:
                name = categories[det["category"]]
                report.detections_without_gt_category[name] = report.detections_without_gt_category.get(name, 0) + 1
                continue
            results.append(
                {
                    "image_id": image_ids[entry["file"]],
                    "category_id": category_ids[det["category"]],
                    "bbox": [round(v, 2) for v in normalized_to_absolute_xywh(det["bbox"], width, height)],
                    "score": det["conf"],
                }
            )
    report.detections = len(results)
    if report.images_without_gt:
        logger.warning(
            "COCO results: %d images with detections are not in %s and were left out (%s)",
            len(report.images_without_gt),
            coco_gt,
            report.match.describe() if report.match else "",
        )
    if report.detections_without_gt_category:
        logger.warning(
            "COCO results: detections of categories %s are not in %s and were left out",
            report.detections_without_gt_category,
            coco_gt,
        )
    return results, report
