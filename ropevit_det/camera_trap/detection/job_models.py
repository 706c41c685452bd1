"""The models a batch job runs: the detector (wrapped for tiles or a glance, on the chosen backend) and the
species classifier with its label policy. ``serve`` loads its models with the same function."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple

import torch
from detectron2.config import CfgNode
from detectron2.utils.env import seed_all_rng

from ...checkpoint import WeightsDownloadError, WeightsFileError
from ...engine.predictor import Detector, InputSpec, load_detector
from ...export.cpu_backend import cpu_detector
from ..species.classifier import (
    SpeciesClassifier,
    classifier_from_detector,
    load_species_classifier,
)
from ..species.place_filter import apply_species_filter, species_filter_options
from .categories import DetectionClasses, detection_classes, parse_class_names
from .glance import GlanceDetector
from .job_settings import BatchJobError, BatchJobSettings

logger = logging.getLogger("ropevit_det.infer")


class JobModels(NamedTuple):
    """The loaded models of a job and what turns their outputs into MD entries."""

    detector: Detector | Callable  # engine.predictor.Detector, or a CPU backend's equivalent
    spec: InputSpec
    classes: DetectionClasses
    classifier: SpeciesClassifier | None


def load_job_models(settings: BatchJobSettings, cfg: CfgNode) -> JobModels:
    """The detector (and the species classifier with ``classify``) that ``settings`` name, ready to run.

    Reads only the model settings (weights, class names, device, bf16, backend, the species options), so the
    detection server loads its models with it too.
    """
    tiling = _tiling(settings)  # checked before the model loads
    if tiling is not None and settings.glance is not None:
        raise BatchJobError(
            "a glance and tiles do not combine (the glance would shrink each tile): choose one", "glance"
        )
    try:
        class_names = parse_class_names(settings.class_names) if settings.class_names else None
        spec = InputSpec.from_cfg(cfg)
        # Parts the weights do not cover (heads of a backbone-only file) start from the same seed in every rank
        # and every re-run, so a distributed or resumed run never mixes two different random models.
        seed_all_rng(cfg.SEED if cfg.SEED >= 0 else 0)
        model, meta = load_detector(cfg)
        classes = detection_classes(
            cfg.MODEL.ROI_HEADS.NUM_CLASSES,
            class_names,
            [*cfg.DATASETS.TEST, *cfg.DATASETS.TRAIN],
            checkpoint_meta=meta,
        )
    except (WeightsDownloadError, WeightsFileError) as exc:  # before ValueError: WeightsFileError is one
        raise BatchJobError(str(exc), "weights") from exc
    except (ValueError, FileNotFoundError) as exc:
        raise BatchJobError(str(exc), "class_names") from exc
    classifier = _classifier(settings, cfg, model, meta)
    if settings.backend == "pytorch":
        detector = Detector(model, cfg.MODEL.DEVICE, bf16=settings.bf16)
    else:
        detector = cpu_detector(settings.backend, model, cfg)
    if tiling is not None:
        from .tiling import TiledDetector, TiledInputSpec

        detector = TiledDetector(
            detector, batch_size=settings.batch_size, max_detections=cfg.TEST.DETECTIONS_PER_IMAGE, merge=tiling.merge
        )
        spec = TiledInputSpec(spec, tiling)
        logger.info(
            "sliced inference: %d px tiles, overlap %.2f%s",
            tiling.tile_size,
            tiling.overlap,
            ", plus the full frame" if tiling.full_frame else "",
        )
    if settings.glance is not None:
        try:
            detector = GlanceDetector(
                detector, glance_size=settings.glance, escalation_threshold=settings.glance_threshold
            )
        except ValueError as exc:
            raise BatchJobError(str(exc), "glance") from exc
    return JobModels(detector, spec, classes, classifier)


def _classifier(
    settings: BatchJobSettings, cfg: CfgNode, model: torch.nn.Module, meta: dict
) -> SpeciesClassifier | None:
    if not settings.classify:
        return None
    options = dict(device=cfg.MODEL.DEVICE, bf16=settings.bf16, margin=settings.crop_margin, top_k=settings.top_k)
    vit = model.backbone.net.vit
    try:
        if settings.classifier_weights is None and vit.classifier is not None and vit.window_size == 0:
            logger.info("species classifier: the detector's own ViT and classifier (shared weights)")
            classifier = classifier_from_detector(vit, meta, cfg, settings.weights, **options)
        else:
            classifier = load_species_classifier(cfg, settings.classifier_weights or settings.weights, **options)
    except (ValueError, FileNotFoundError, WeightsDownloadError) as exc:
        raise BatchJobError(str(exc), "classifier_weights") from exc
    return apply_species_filter(classifier, **species_filter_options(settings))


def _tiling(settings: BatchJobSettings):
    """``tiles``: how images are sliced (checked, SAHI importable), before any output is opened; else None."""
    if not settings.tiles:
        if settings.tiles_with_full_frame:
            raise BatchJobError(
                "tiles_with_full_frame only applies with tiles (--tiles-full-frame needs --tiles)", "tiles"
            )
        return None
    from .tiling import TilingSettings, require_sahi

    try:
        require_sahi()
        return TilingSettings(
            tile_size=settings.tile_size,
            overlap=settings.tile_overlap,
            full_frame=settings.tiles_with_full_frame,
            merge=settings.tile_merge,
        )
    except (ValueError, ImportError) as exc:
        raise BatchJobError(str(exc), "tiles") from exc


def tiling_metadata(settings: BatchJobSettings) -> dict:
    if not settings.tiles:
        return {}
    return {
        "tiles": {
            "tile_size": settings.tile_size,
            "overlap": settings.tile_overlap,
            "full_frame": settings.tiles_with_full_frame,
            "merge": settings.tile_merge,
        }
    }
