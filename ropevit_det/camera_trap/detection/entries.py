"""Detections of one image as MegaDetector entries (boxes in displayed pixels, optional species): what ``infer``
and ``serve`` both write, so a frame gives the same entry either way."""

from __future__ import annotations

from typing import Any

import numpy as np
from detectron2.structures import Instances

from ..results.md_format import detection_entry
from ..species.classifier import SpeciesClassifier
from .categories import DetectionClasses


def _detections_of(instances: Instances, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(boxes xyxy float64, scores, classes)`` at or above ``threshold``, best first."""
    scores = instances.scores.float().numpy()
    keep = np.flatnonzero(scores >= threshold)
    keep = keep[np.argsort(-scores[keep], kind="stable")]
    boxes = instances.pred_boxes.tensor.float().numpy().astype(np.float64)
    return boxes[keep], scores[keep], instances.pred_classes.numpy()[keep]


def md_detections(
    instances: Instances,
    original_hw: tuple[int, int],
    image: np.ndarray | None,
    *,
    classes: DetectionClasses,
    threshold: float,
    classifier: SpeciesClassifier | None = None,
    classify_threshold: float = 0.2,
) -> tuple[list[dict[str, Any]], int]:
    """``(MD detections, number classified)`` of one image: what ``infer`` and ``serve`` both write.

    ``image`` (the decoded RGB image, maybe smaller than ``original_hw``) is needed only for species crops.
    """
    height, width = original_hw
    boxes, scores, labels = _detections_of(instances, threshold)
    species: list[list[tuple[str, float]] | None] = [None] * len(scores)
    classified = 0
    if classifier is not None and image is not None:
        # The decoded image may be smaller than the displayed size (max_pixels); crop in its own pixels.
        scale = np.array([image.shape[1] / width, image.shape[0] / height] * 2)
        chosen = [i for i, s in enumerate(scores) if s >= classify_threshold]
        crops = [classifier.preprocess(image, boxes[i] * scale) for i in chosen]
        for i, top_k in zip(chosen, classifier.classify(crops) if crops else []):
            species[i] = top_k
        classified = len(chosen)
    detections = [
        detection_entry(classes.ids[int(label)], float(score), box, width, height, classifications=top_k)
        for box, score, label, top_k in zip(boxes, scores, labels, species)
    ]
    return detections, classified
