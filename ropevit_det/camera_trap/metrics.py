"""Camera-trap metrics for a MegaDetector-format results file against CCT or COCO ground truth.

Camera-trap users first ask "which frames have an animal?" (to throw away the empty ones), so the headline
numbers are image-level: precision / recall / F1 of "animal present" at a threshold, the false-positive rate
on empty frames (the frames a user would wrongly keep), recall at a target precision and precision at a
target recall. Sequences (a burst of frames from one trigger) are what people review, so the same numbers
are given per sequence, a sequence being positive if any frame is. Box quality is the usual COCO AP / AP50.

Class handling: every category name (ground truth and results) is mapped to a MegaDetector class
(animal / person / vehicle, or ignore) with :mod:`ropevit_det.camera_trap.classes`, so a species-level CCT file
scores an animal/person/vehicle detector, and an ``animal``-only COCO file scores it as well.
"""
from __future__ import annotations

import contextlib
import io
import logging
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from .cct import image_size_from_header, read_cct_json
from .classes import IGNORE, MD_CLASSES, is_empty_category, load_md_mapping, md_class_for, normalize_name
from .matching import TrailingPathMatcher, strip_path_prefix
from .md_format import load_results, normalized_to_absolute_xywh

logger = logging.getLogger(__name__)

POSITIVE_CLASSES = (*MD_CLASSES, "any")


@dataclass
class GroundTruthImage:
    """What the metrics need of one ground-truth image."""

    file_name: str  # after prefix rewriting
    labels: set[str]  # MD classes present (boxed or image-level); empty set = empty frame
    boxes: list[tuple[str, list[float]]]  # (category name in the ground truth, absolute [x, y, w, h])
    has_unboxed_label: bool  # a non-empty label without any box: the image cannot be used for box AP
    only_ignored: bool  # every label maps to "ignore": neither positive nor a clean negative
    width: int | None
    height: int | None
    seq_id: str | None

    @property
    def is_empty(self) -> bool:
        return not self.labels and not self.only_ignored


def load_ground_truth(
    gt_file: str | Path,
    *,
    mapping_file: str | Path | None = None,
    image_root: str | Path | None = None,
    strip_prefix: str | None = None,
    add_prefix: str = "",
) -> tuple[list[GroundTruthImage], dict[Any, str]]:
    """Read a CCT or COCO file into :class:`GroundTruthImage` records.

    Args:
        gt_file: CCT or plain COCO JSON (boxes optional, ``empty`` categories and image-level labels allowed).
        mapping_file: species -> MD class mapping (see :func:`ropevit_det.camera_trap.classes.load_md_mapping`).
        image_root: where to read missing ``width``/``height`` from image headers (needed for box AP only).
        strip_prefix, add_prefix: rewrite each ``file_name`` (as in :func:`ropevit_det.camera_trap.cct.
            resolve_image_paths`); the rewritten name is matched to results and looked up under ``image_root``.

    Returns:
        ``(images, {category id: name})``.
    """
    data = read_cct_json(gt_file)
    mapping = load_md_mapping(mapping_file)
    names = {c["id"]: c["name"] for c in data["categories"]}
    anns_by_image: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for ann in data["annotations"]:
        anns_by_image[ann["image_id"]].append(ann)
    images = []
    for image in data["images"]:
        labels: set[str] = set()
        boxes: list[tuple[str, list[float]]] = []
        unboxed, ignored = False, False
        for ann in anns_by_image.get(image["id"], []):
            name = names.get(ann.get("category_id"))
            if name is None:
                raise ValueError(f"{gt_file}: annotation {ann.get('id')!r} has unknown category_id "
                                 f"{ann.get('category_id')!r}")
            if is_empty_category(name):
                continue
            md_class = _md_class(name, mapping)
            if md_class == IGNORE:
                ignored = True
                continue
            labels.add(md_class)
            if ann.get("bbox") is not None:
                boxes.append((name, [float(v) for v in ann["bbox"]]))
            else:
                unboxed = True
        file_name = add_prefix + strip_path_prefix(image["file_name"], strip_prefix)
        width, height = image.get("width"), image.get("height")
        if (not width or not height) and image_root is not None and (Path(image_root) / file_name).is_file():
            width, height = image_size_from_header(Path(image_root) / file_name)
        images.append(GroundTruthImage(
            file_name=file_name, labels=labels, boxes=boxes,
            has_unboxed_label=unboxed and not boxes, only_ignored=ignored and not labels,
            width=width or None, height=height or None,
            seq_id=None if image.get("seq_id") is None else str(image["seq_id"])))
    return images, names


def pr_curve(scores: Sequence[float], labels: Sequence[bool]) -> dict[str, np.ndarray]:
    """Precision and recall at every distinct score > 0, highest threshold first.

    An item is predicted positive at threshold t when its score >= t. Items with score 0 (no detection)
    are never predicted positive, so the curve may end below recall 1.

    Returns:
        ``{"threshold", "precision", "recall", "tp", "fp"}`` arrays of equal length.
    """
    scores_arr = np.asarray(scores, dtype=np.float64)
    labels_arr = np.asarray(labels, dtype=bool)
    n_pos = int(labels_arr.sum())
    keep = scores_arr > 0
    scores_arr, labels_arr = scores_arr[keep], labels_arr[keep]
    order = np.argsort(-scores_arr, kind="stable")
    scores_arr, labels_arr = scores_arr[order], labels_arr[order]
    tp = np.cumsum(labels_arr)
    fp = np.cumsum(~labels_arr)
    # One point per distinct score: the last index where that score occurs.
    last = np.r_[np.nonzero(np.diff(scores_arr))[0], len(scores_arr) - 1] if len(scores_arr) else np.array([], int)
    tp, fp, thresholds = tp[last], fp[last], scores_arr[last]
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / n_pos if n_pos else np.zeros_like(tp, dtype=np.float64)
    return {"threshold": thresholds, "precision": precision, "recall": recall, "tp": tp, "fp": fp}


def average_precision(curve: Mapping[str, np.ndarray]) -> float | None:
    """Area under the step PR curve, sum of (R_n - R_{n-1}) * P_n (scikit-learn's definition, no interpolation)."""
    if len(curve["recall"]) == 0:
        return 0.0
    recall = np.r_[0.0, curve["recall"]]
    return float(np.sum(np.diff(recall) * curve["precision"]))


def _best_operating_point(
    curve: Mapping[str, np.ndarray], constrained: str, maximised: str, target: float
) -> dict[str, float] | None:
    """The point with the highest ``maximised`` value among those with ``constrained`` >= ``target``
    (None if the curve never reaches it)."""
    ok = np.nonzero(curve[constrained] >= target)[0]
    if len(ok) == 0:
        return None
    best = ok[np.argmax(curve[maximised][ok])]
    return {f"target_{constrained}": target, maximised: float(curve[maximised][best]),
            constrained: float(curve[constrained][best]), "threshold": float(curve["threshold"][best])}


def recall_at_precision(curve: Mapping[str, np.ndarray], target: float) -> dict[str, float] | None:
    """Highest recall among operating points with precision >= target (None if none reaches it)."""
    return _best_operating_point(curve, "precision", "recall", target)


def precision_at_recall(curve: Mapping[str, np.ndarray], target: float) -> dict[str, float] | None:
    """Highest precision among operating points with recall >= target (None if the curve never reaches it)."""
    return _best_operating_point(curve, "recall", "precision", target)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def presence_metrics(
    scores: Sequence[float],
    positives: Sequence[bool],
    empties: Sequence[bool],
    *,
    threshold: float,
    target_precision: float = 0.95,
    target_recall: float = 0.95,
) -> dict[str, Any]:
    """Image- (or sequence-) level metrics of "class present".

    Args:
        scores: per item, the highest confidence of a detection of the class (0 if none).
        positives: per item, whether the ground truth has the class.
        empties: per item, whether the ground truth is an empty frame (no labels at all).
        threshold: an item is predicted positive when its score >= threshold.
        target_precision, target_recall: operating points to report.

    Returns:
        Counts, precision, recall, F1, ``empty_frame_fp_rate`` (share of empty items predicted positive),
        ``average_precision``, ``recall_at_precision``, ``precision_at_recall`` and the PR curve.
    """
    s = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(positives, dtype=bool)
    empty = np.asarray(empties, dtype=bool)
    pred = (s >= threshold) & (s > 0)
    tp, fp = int((pred & pos).sum()), int((pred & ~pos).sum())
    fn, tn = int((~pred & pos).sum()), int((~pred & ~pos).sum())
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = None
    if precision is not None and recall is not None:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    curve = pr_curve(s, pos)
    return {
        "n": len(s), "n_positive": int(pos.sum()), "n_empty": int(empty.sum()),
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "precision": precision, "recall": recall, "f1": f1,
        "empty_frame_fp_rate": _ratio(int((pred & empty).sum()), int(empty.sum())),
        "average_precision": average_precision(curve) if pos.any() else None,
        "recall_at_precision": recall_at_precision(curve, target_precision),
        "precision_at_recall": precision_at_recall(curve, target_recall),
        "curve": {k: v.tolist() for k, v in curve.items()},
    }


def _md_class(name: str, mapping: Mapping[str, str]) -> str:
    """MD class of a category name; the names animal/person/vehicle map to themselves."""
    return name if name in MD_CLASSES else md_class_for(name, mapping)


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
        return result_ids.get(normalize_name(_md_class(name, mapping)))

    gt = {"images": [], "annotations": [], "categories": [
        {"id": int(cat_id), "name": name} for cat_id, name in detection_categories.items()]}
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
        gt["images"].append({"id": image_id, "width": gt_image.width, "height": gt_image.height,
                             "file_name": gt_image.file_name})
        for cat, (_, bbox) in zip(cats, gt_image.boxes):
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": image_id, "category_id": cat,
                                      "bbox": bbox, "area": bbox[2] * bbox[3], "iscrowd": 0})
        for det in entry.get("detections") or ():
            dets.append({"image_id": image_id, "category_id": int(det["category"]), "score": float(det["conf"]),
                         "bbox": normalized_to_absolute_xywh(det["bbox"], gt_image.width, gt_image.height)})
    out: dict[str, Any] = {"n_images": len(gt["images"]), "n_gt_boxes": len(gt["annotations"]),
                           "n_detections": len(dets), "skipped_images": dict(skipped), "AP": None, "AP50": None}
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


def evaluate_results(results_file: str | Path, gt_file: str | Path, options: EvalOptions | None = None
                     ) -> dict[str, Any]:
    """Score an MD results file against CCT / COCO ground truth (see the module docstring).

    Results are matched to ground-truth images by relative path, else by file name plus the longest run of
    shared parent folders. Ground-truth images with no result, results with no ground truth, failed images
    and ignored-only images are counted and left out.

    Returns:
        A JSON-ready dict: ``matching``, ``image_level``, ``sequence_level`` (None without ``seq_id``), ``boxes``.
    """
    options = options or EvalOptions()
    if options.positive_class not in POSITIVE_CLASSES:
        raise ValueError(f"positive_class must be one of {POSITIVE_CLASSES}, got {options.positive_class!r}")
    results = load_results(results_file)
    gt_images, _ = load_ground_truth(gt_file, mapping_file=options.mapping_file, image_root=options.image_root,
                                     strip_prefix=options.gt_strip_prefix, add_prefix=options.gt_add_prefix)
    mapping = load_md_mapping(options.mapping_file)
    threshold = options.threshold
    if threshold is None:
        threshold = float(results.get("info", {}).get("detector_metadata", {}).get("typical_detection_threshold", 0.2))

    gt_by_name = {im.file_name: im for im in gt_images}
    if len(gt_by_name) != len(gt_images):
        raise ValueError(f"{gt_file}: several images share a file_name; cannot match results to them")
    found, report = TrailingPathMatcher(gt_by_name).match_all(entry["file"] for entry in results["images"])
    if report.matched == 0:
        raise ValueError(f"no result in {results_file} matches an image of {gt_file}: {report.describe('results')}. "
                         "Use gt_strip_prefix / gt_add_prefix to rewrite the ground-truth file names.")
    matched_gt = set(found.values())
    matching = {"results": report.total, "matched": report.matched,
                "results_without_ground_truth": len(report.unmatched) + len(report.ambiguous),
                "ground_truth_without_result": len(gt_by_name) - len(matched_gt),
                "failed_images": 0, "ignored_only_images": 0}
    if report.unmatched or report.ambiguous:
        logger.warning("results not in the ground truth (left out): %s", report.describe("results"))
    if matching["ground_truth_without_result"]:
        logger.warning("%d ground-truth images have no result (left out)", matching["ground_truth_without_result"])

    cat_to_class = {cat_id: _md_class(name, mapping) for cat_id, name in results["detection_categories"].items()}
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
        confs = [d["conf"] for d in entry["detections"]
                 if options.positive_class == "any" or cat_to_class.get(d["category"]) == options.positive_class]
        return max(confs, default=0.0)

    def positive(gt_image: GroundTruthImage) -> bool:
        return bool(gt_image.labels) if options.positive_class == "any" else options.positive_class in gt_image.labels

    kwargs = {"threshold": threshold, "target_precision": options.target_precision,
              "target_recall": options.target_recall}
    image_scores = [score(e) for _, e in pairs]
    image_level = presence_metrics(image_scores, [positive(g) for g, _ in pairs], [g.is_empty for g, _ in pairs],
                                   **kwargs)

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
            **kwargs)
        sequence_level["images_without_seq_id"] = sum(1 for g, _ in pairs if g.seq_id is None)

    return {
        "results_file": str(results_file), "ground_truth_file": str(gt_file),
        "threshold": threshold, "positive_class": options.positive_class,
        "matching": matching, "image_level": image_level, "sequence_level": sequence_level,
        "boxes": box_ap(pairs, results["detection_categories"], mapping) if options.box_ap else None,
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def format_table(report: Mapping[str, Any]) -> str:
    """The report as plain-text tables (image level next to sequence level, then boxes)."""
    from tabulate import tabulate

    levels = [("image", report["image_level"])]
    if report["sequence_level"] is not None:
        levels.append(("sequence", report["sequence_level"]))
    rows = []
    for key, label in [("n", "count"), ("n_positive", f"with {report['positive_class']}"), ("n_empty", "empty"),
                       ("tp", "TP"), ("fp", "FP"), ("fn", "FN"), ("tn", "TN"),
                       ("precision", "precision"), ("recall", "recall"), ("f1", "F1"),
                       ("empty_frame_fp_rate", "empty-frame FP rate"), ("average_precision", "average precision")]:
        rows.append([label] + [_fmt(level[key]) for _, level in levels])
    for key, label, field_name in [("recall_at_precision", "recall @ precision {}", "recall"),
                                   ("precision_at_recall", "precision @ recall {}", "precision")]:
        first = report["image_level"][key]
        target = (first or {}).get("target_precision" if field_name == "recall" else "target_recall")
        values = []
        for _, level in levels:
            point = level[key]
            values.append("not reached" if point is None else
                          f"{point[field_name]:.4f} (thr {point['threshold']:.3f})")
        rows.append([label.format(f"{target:g}" if target is not None else "target")] + values)
    header = ["metric"] + [f"{name} level" for name, _ in levels]
    text = [f"{report['positive_class']} present, threshold {report['threshold']:.3f}",
            tabulate(rows, headers=header, tablefmt="github", disable_numparse=True)]
    boxes = report.get("boxes")
    if boxes is not None:
        text.append(tabulate([["COCO AP", _fmt(boxes["AP"])], ["AP50", _fmt(boxes["AP50"])],
                              ["images", boxes["n_images"]], ["ground-truth boxes", boxes["n_gt_boxes"]],
                              ["detections", boxes["n_detections"]]],
                             headers=["boxes", "value"], tablefmt="github", disable_numparse=True))
    m = report["matching"]
    text.append(f"matched {m['matched']} of {m['results']} results; left out: {m['results_without_ground_truth']} "
                f"results without ground truth, {m['ground_truth_without_result']} ground-truth images without "
                f"result, {m['failed_images']} failed images, {m['ignored_only_images']} ignored-only images")
    return "\n\n".join(text)


def plot_pr_curves(report: Mapping[str, Any], output: str | Path) -> Path:
    """Save the image- (and sequence-) level precision/recall curves with the threshold's operating point."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5), dpi=120)
    for name, level in (("image", report["image_level"]), ("sequence", report["sequence_level"])):
        if level is None:
            continue
        curve = level["curve"]
        ap = level["average_precision"]
        label = f"{name} level" + (f" (AP {ap:.3f})" if ap is not None else "")
        # Start the step curve at recall 0 with the first point's precision, as PR plots usually do.
        recall = [0.0] + curve["recall"] if curve["recall"] else []
        precision = curve["precision"][:1] + curve["precision"]
        line, = ax.step(recall, precision, where="post", label=label)
        if level["precision"] is not None and level["recall"] is not None:
            ax.plot([level["recall"]], [level["precision"]], "o", color=line.get_color())
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.set_title(f"{report['positive_class']} present (dot: threshold {report['threshold']:.2f})")
    ax.legend(loc="lower left")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, bbox_inches="tight")
    plt.close(fig)
    return output
