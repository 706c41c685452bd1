"""Image- and sequence-level "is there an animal?" metrics: precision/recall curves, operating points, and
the counts at a threshold (including the false-positive rate on empty frames)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


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
    return {
        f"target_{constrained}": target,
        maximised: float(curve[maximised][best]),
        constrained: float(curve[constrained][best]),
        "threshold": float(curve["threshold"][best]),
    }


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
        "n": len(s),
        "n_positive": int(pos.sum()),
        "n_empty": int(empty.sum()),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "empty_frame_fp_rate": _ratio(int((pred & empty).sum()), int(empty.sum())),
        "average_precision": average_precision(curve) if pos.any() else None,
        "recall_at_precision": recall_at_precision(curve, target_precision),
        "precision_at_recall": precision_at_recall(curve, target_recall),
        "curve": {k: v.tolist() for k, v in curve.items()},
    }
