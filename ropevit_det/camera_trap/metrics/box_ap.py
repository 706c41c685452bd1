"""Box COCO AP / AP50 of MegaDetector-format detections against the ground truth's boxes (pycocotools)."""

from __future__ import annotations

import contextlib
import io
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ..data.class_mapping import normalize_name
from ..results.md_format import normalized_to_absolute_xywh
from .ground_truth import GroundTruthImage, md_class_of

logger = logging.getLogger(__name__)


def box_ap(
    pairs: Sequence[tuple[GroundTruthImage, dict[str, Any]]],
    detection_categories: Mapping[str, str],
    mapping: Mapping[str, str],
) -> dict[str, Any]:
    """COCO AP and AP50 (pycocotools, the reference implementation) over images usable for box evaluation.

    Ground-truth categories are matched to result categories by name, else through their MD class. Images
    with an animal label but no box, images with ignored classes only, and images without a known size are
    left out (their count is reported).
    """
    result_ids = {normalize_name(name): int(cat_id) for cat_id, name in detection_categories.items()}

    def gt_category(name: str) -> int | None:
        if normalize_name(name) in result_ids:
            return result_ids[normalize_name(name)]
        return result_ids.get(normalize_name(md_class_of(name, mapping)))

    gt = {
        "images": [],
        "annotations": [],
        "categories": [{"id": int(cat_id), "name": name} for cat_id, name in detection_categories.items()],
    }
    dets: list[dict[str, Any]] = []
    skipped: dict[str, int] = defaultdict(int)
    for image_id, (gt_image, entry) in enumerate(pairs, start=1):
        if gt_image.has_unboxed_label or gt_image.only_ignored:
            skipped["labels_without_boxes"] += 1
            continue
        if not gt_image.width or not gt_image.height:
            skipped["unknown_size"] += 1
            continue
        cats = [gt_category(name) for name, _ in gt_image.boxes]
        if any(c is None for c in cats):
            skipped["unmapped_category"] += 1
            continue
        gt["images"].append(
            {"id": image_id, "width": gt_image.width, "height": gt_image.height, "file_name": gt_image.file_name}
        )
        for cat, (_, bbox) in zip(cats, gt_image.boxes):
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": cat,
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": 0,
                }
            )
        for det in entry.get("detections") or ():
            dets.append(
                {
                    "image_id": image_id,
                    "category_id": int(det["category"]),
                    "score": float(det["conf"]),
                    "bbox": normalized_to_absolute_xywh(det["bbox"], gt_image.width, gt_image.height),
                }
            )
    out: dict[str, Any] = {
        "n_images": len(gt["images"]),
        "n_gt_boxes": len(gt["annotations"]),
        "n_detections": len(dets),
        "skipped_images": dict(skipped),
        "AP": None,
        "AP50": None,
    }
    if not gt["annotations"]:
        return out
    if not dets:
        out["AP"], out["AP50"] = 0.0, 0.0
        return out
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and its 12-line summary
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets)
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    ap, ap50 = float(evaluator.stats[0]), float(evaluator.stats[1])
    out["AP"] = ap if ap >= 0 else None  # COCOeval's -1 means "no ground truth for any category"
    out["AP50"] = ap50 if ap50 >= 0 else None
    return out
