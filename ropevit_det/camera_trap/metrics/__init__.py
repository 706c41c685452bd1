"""Camera-trap metrics for a MegaDetector-format results file against CCT or COCO ground truth.

Camera-trap users first ask "which frames have an animal?" (to throw away the empty ones), so the headline
numbers are image-level: precision / recall / F1 of "animal present" at a threshold, the false-positive rate
on empty frames (the frames a user would wrongly keep), recall at a target precision and precision at a
target recall. Sequences (a burst of frames from one trigger) are what people review, so the same numbers
are given per sequence, a sequence being positive if any frame is. Box quality is the usual COCO AP / AP50.

Class handling: every category name (ground truth and results) is mapped to a MegaDetector class
(animal / person / vehicle, or ignore) with :mod:`..data.class_mapping`, so a species-level CCT file
scores an animal/person/vehicle detector, and an ``animal``-only COCO file scores it as well.
"""

from __future__ import annotations

from .box_ap import box_ap
from .evaluate import POSITIVE_CLASSES, EvalOptions, evaluate_results
from .ground_truth import GroundTruthImage, load_ground_truth
from .presence import (
    average_precision,
    pr_curve,
    precision_at_recall,
    presence_metrics,
    recall_at_precision,
)
from .report import format_table, plot_pr_curves

__all__ = [
    "POSITIVE_CLASSES",
    "EvalOptions",
    "GroundTruthImage",
    "average_precision",
    "box_ap",
    "evaluate_results",
    "format_table",
    "load_ground_truth",
    "plot_pr_curves",
    "pr_curve",
    "precision_at_recall",
    "presence_metrics",
    "recall_at_precision",
]
