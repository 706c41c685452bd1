"""One call from a results file and a ground-truth file to the whole camera-trap report."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.class_mapping import MD_CLASSES, load_md_mapping
from ..data.matching import TrailingPathMatcher
from ..results.md_format import load_results
from .box_ap import box_ap
from .ground_truth import GroundTruthImage, load_ground_truth, md_class_of
from .presence import presence_metrics
from .size_recall import recall_by_size

logger = logging.getLogger(__name__)

POSITIVE_CLASSES = (*MD_CLASSES, "any")


@dataclass
class EvalOptions:
    """Settings of :func:`evaluate_results` (see ``tools/eval_camera_trap.py`` for their meaning)."""

    threshold: float | None = None  # None: the results file's typical_detection_threshold, else 0.2
    positive_class: str = "animal"
    target_precision: float = 0.95
    target_recall: float = 0.95
    mapping_file: str | Path | None = None
    image_root: str | Path | None = None
    gt_strip_prefix: str | None = None
    gt_add_prefix: str = ""
    box_ap: bool = True


def evaluate_results(
    results_file: str | Path, gt_file: str | Path, options: EvalOptions | None = None
) -> dict[str, Any]:
    """Score an MD results file against CCT / COCO ground truth (see the module docstring).

    Results are matched to ground-truth images by relative path, else by file name plus the longest run of
    shared parent folders. Ground-truth images with no result, results with no ground truth, failed images
    and ignored-only images are counted and left out.

    Returns:
        A JSON-ready dict: ``matching``, ``image_level``, ``sequence_level`` (None without ``seq_id``), ``boxes``,
        ``recall_by_size`` (box recall at the threshold per COCO size band, :mod:`.size_recall`).
    """
    options = options or EvalOptions()
    if options.positive_class not in POSITIVE_CLASSES:
        raise ValueError(f"positive_class must be one of {POSITIVE_CLASSES}, got {options.positive_class!r}")
    results = load_results(results_file)
    gt_images, _ = load_ground_truth(
        gt_file,
        mapping_file=options.mapping_file,
        image_root=options.image_root,
        strip_prefix=options.gt_strip_prefix,
        add_prefix=options.gt_add_prefix,
    )
    mapping = load_md_mapping(options.mapping_file)
    threshold = options.threshold
    if threshold is None:
        threshold = float(results.get("info", {}).get("detector_metadata", {}).get("typical_detection_threshold", 0.2))

    gt_by_name = {im.file_name: im for im in gt_images}
    if len(gt_by_name) != len(gt_images):
        raise ValueError(f"{gt_file}: several images share a file_name; cannot match results to them")
    found, report = TrailingPathMatcher(gt_by_name).match_all(entry["file"] for entry in results["images"])
    if report.matched == 0:
        raise ValueError(
            f"no result in {results_file} matches an image of {gt_file}: {report.describe('results')}. "
            "Use gt_strip_prefix / gt_add_prefix to rewrite the ground-truth file names."
        )
    matched_gt = set(found.values())
    matching = {
        "results": report.total,
        "matched": report.matched,
        "results_without_ground_truth": len(report.unmatched) + len(report.ambiguous),
        "ground_truth_without_result": len(gt_by_name) - len(matched_gt),
        "failed_images": 0,
        "ignored_only_images": 0,
    }
    if report.unmatched or report.ambiguous:
        logger.warning("results not in the ground truth (left out): %s", report.describe("results"))
    if matching["ground_truth_without_result"]:
        logger.warning("%d ground-truth images have no result (left out)", matching["ground_truth_without_result"])

    cat_to_class = {cat_id: md_class_of(name, mapping) for cat_id, name in results["detection_categories"].items()}
    pairs: list[tuple[GroundTruthImage, dict[str, Any]]] = []
    for entry in results["images"]:
        gt_name = found.get(entry["file"])
        if gt_name is None:
            continue
        if entry.get("failure") is not None or entry.get("detections") is None:
            matching["failed_images"] += 1
            continue
        gt_image = gt_by_name[gt_name]
        if gt_image.only_ignored:
            matching["ignored_only_images"] += 1
            continue
        pairs.append((gt_image, entry))

    def score(entry: dict[str, Any]) -> float:
        confs = [
            d["conf"]
            for d in entry["detections"]
            if options.positive_class == "any" or cat_to_class.get(d["category"]) == options.positive_class
        ]
        return max(confs, default=0.0)

    def positive(gt_image: GroundTruthImage) -> bool:
        return bool(gt_image.labels) if options.positive_class == "any" else options.positive_class in gt_image.labels

    kwargs = {
        "threshold": threshold,
        "target_precision": options.target_precision,
        "target_recall": options.target_recall,
    }
    image_scores = [score(e) for _, e in pairs]
    image_level = presence_metrics(
        image_scores, [positive(g) for g, _ in pairs], [g.is_empty for g, _ in pairs], **kwargs
    )

    sequence_level = None
    sequences: dict[str, list[int]] = defaultdict(list)
    for i, (gt_image, _) in enumerate(pairs):
        if gt_image.seq_id is not None:
            sequences[gt_image.seq_id].append(i)
    if sequences:
        seq_ids = sorted(sequences)
        sequence_level = presence_metrics(
            [max(image_scores[i] for i in sequences[s]) for s in seq_ids],
            [any(positive(pairs[i][0]) for i in sequences[s]) for s in seq_ids],
            [all(pairs[i][0].is_empty for i in sequences[s]) for s in seq_ids],
            **kwargs,
        )
        sequence_level["images_without_seq_id"] = sum(1 for g, _ in pairs if g.seq_id is None)

    return {
        "results_file": str(results_file),
        "ground_truth_file": str(gt_file),
        "threshold": threshold,
        "positive_class": options.positive_class,
        "matching": matching,
        "image_level": image_level,
        "sequence_level": sequence_level,
        "boxes": box_ap(pairs, results["detection_categories"], mapping) if options.box_ap else None,
        "recall_by_size": (
            recall_by_size(pairs, results["detection_categories"], mapping, threshold) if options.box_ap else None
        ),
    }
