"""Recall of ground-truth boxes by object size at the detection threshold: does tiling (or a larger test size) pay?

Sizes are COCO's area bands in full-image pixels (small: under 32 x 32, medium: up to 96 x 96, large: above),
so small and distant animals show up as the ``small`` band. A ground-truth box counts as found when a
detection of its category at or above the threshold overlaps it with IoU >= 0.5; each detection finds at most one
box, the most confident detections choosing first (COCO's matching).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pycocotools import mask as mask_util

from ..data.class_mapping import normalize_name
from ..results.md_format import normalized_to_absolute_xywh
from .ground_truth import GroundTruthImage, md_class_of

__all__ = ["SIZE_BANDS", "recall_by_size", "size_band"]

# COCO's area ranges (cocoeval.Params.areaRng), in pixels of the full image.
SIZE_BANDS: dict[str, tuple[float, float]] = {
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, float("inf")),
}


def size_band(area: float) -> str:
    return next(name for name, (low, high) in SIZE_BANDS.items() if low <= area < high)


def recall_by_size(
    pairs: Sequence[tuple[GroundTruthImage, dict[str, Any]]],
    detection_categories: Mapping[str, str],
    mapping: Mapping[str, str],
    threshold: float,
    min_iou: float = 0.5,
) -> dict[str, Any]:
    """``{band: {"boxes": n, "found": k, "recall": k / n or None}}`` plus ``skipped_images``.

    Images without a known size or with labels but no boxes are left out, as for box AP; ground-truth categories
    are matched to result categories by name, else through their MD class.
    """
    result_ids = {normalize_name(name): int(cat_id) for cat_id, name in detection_categories.items()}

    def gt_category(name: str) -> int | None:
        if normalize_name(name) in result_ids:
            return result_ids[normalize_name(name)]
        return result_ids.get(normalize_name(md_class_of(name, mapping)))

    boxes = {band: 0 for band in SIZE_BANDS}
    found = {band: 0 for band in SIZE_BANDS}
    skipped = 0
    for gt_image, entry in pairs:
        if gt_image.has_unboxed_label or gt_image.only_ignored or not gt_image.width or not gt_image.height:
            skipped += 1
            continue
        dets = sorted((d for d in entry.get("detections") or () if d["conf"] >= threshold), key=lambda d: -d["conf"])
        det_boxes = [normalized_to_absolute_xywh(d["bbox"], gt_image.width, gt_image.height) for d in dets]
        gt_boxes = [bbox for _, bbox in gt_image.boxes]
        gt_cats = [gt_category(name) for name, _ in gt_image.boxes]
        for _, bbox in gt_image.boxes:
            boxes[size_band(bbox[2] * bbox[3])] += 1
        if not det_boxes or not gt_boxes:
            continue
        ious = mask_util.iou(
            np.asarray(det_boxes, dtype=np.float64), np.asarray(gt_boxes, dtype=np.float64), [0] * len(gt_boxes)
        )
        taken = [False] * len(gt_boxes)
        for d, det in enumerate(dets):
            candidates = [
                g
                for g in range(len(gt_boxes))
                if not taken[g] and gt_cats[g] == int(det["category"]) and ious[d, g] >= min_iou
            ]
            if candidates:
                best = max(candidates, key=lambda g: ious[d, g])
                taken[best] = True
                found[size_band(gt_boxes[best][2] * gt_boxes[best][3])] += 1
    out: dict[str, Any] = {
        band: {"boxes": boxes[band], "found": found[band], "recall": found[band] / boxes[band] if boxes[band] else None}
        for band in SIZE_BANDS
    }
    out["threshold"] = threshold
    out["skipped_images"] = skipped
    return out
