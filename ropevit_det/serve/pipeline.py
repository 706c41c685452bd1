"""A batch of frames to MegaDetector-format entries, through the models and the entry code ``infer`` uses.

The models load with ``detection.job_models.load_job_models`` and the detections become entries with
``detection.entries.md_detections`` and ``results.md_format.image_entry``, so a frame sent to the server
gets the entry a batch run writes for the same file (``file`` aside: the server uses the upload's name).
"""

from __future__ import annotations

from typing import Any

from ..camera_trap.detection.entries import md_detections
from ..camera_trap.detection.job_models import load_job_models
from ..camera_trap.detection.job_settings import BatchJobSettings, build_job_cfg
from ..camera_trap.results.md_format import image_entry
from ..engine.predictor import InputSpec
from .uploads import Frame

__all__ = ["DetectionPipeline"]


class DetectionPipeline:
    """The loaded detector (and species classifier) as one call: frames in, MD entries out.

    Args:
        settings: the model settings of a batch job (config, weights, threshold, device, bf16, backend, class
            names, species options); its input and output are not read.
    """

    def __init__(self, settings: BatchJobSettings) -> None:
        cfg = build_job_cfg(settings)
        self.models = load_job_models(settings, cfg)
        self.threshold = cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST
        typical = settings.typical_threshold
        self.classify_threshold = typical if settings.classify_threshold is None else settings.classify_threshold
        self.device = cfg.MODEL.DEVICE

    @property
    def spec(self) -> InputSpec:
        return self.models.spec

    @property
    def classifies(self) -> bool:
        return self.models.classifier is not None

    @property
    def categories(self) -> dict[str, dict[str, str]]:
        """``detection_categories`` and, with a classifier, ``classification_categories``: what the ids mean."""
        categories = {"detection_categories": self.models.classes.categories}
        if self.models.classifier is not None:
            categories["classification_categories"] = self.models.classifier.categories
        return categories

    def __call__(self, frames: list[Frame]) -> list[dict[str, Any]]:
        outputs = self.models.detector([frame.model_input for frame in frames])
        entries = []
        for frame, instances in zip(frames, outputs):
            detections, _ = md_detections(
                instances,
                frame.original_hw,
                frame.image,
                classes=self.models.classes,
                threshold=self.threshold,
                classifier=self.models.classifier,
                classify_threshold=self.classify_threshold,
            )
            entry = image_entry(frame.name, detections)
            if frame.datetime is not None:
                entry["datetime"] = frame.datetime  # as infer writes it (include_datetime)
            entries.append(entry)
        return entries
