"""The batch job as a library call: :class:`BatchJobSettings` in, MegaDetector-format results out.

Every process of a run calls :func:`run_batch_job` with the same settings (``ropevit-det infer`` launches it with
detectron2's ``launch``): each lists the same inputs, takes its share, writes its own journal, and rank 0 merges
the journals, smooths species labels and converts to COCO results. Errors name the setting at fault
(:class:`BatchJobError`); the command line turns them into messages about its flags.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from detectron2.config import CfgNode
from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng

from ... import __version__
from ...checkpoint import WeightsDownloadError, WeightsFileError
from ...config import load_config
from ...engine.devices import available_device
from ...engine.predictor import Detector, InputSpec, load_detector
from ...errors import UserInputError
from ...export.cpu_backend import cpu_detector
from ...utils.atomic_json import write_json_atomic
from ..inputs.listing import InputRootError, list_inputs
from ..inputs.sharding import part_of
from ..inputs.video import FrameSampling
from ..results.coco_results import md_to_coco_results
from ..results.journal import JournalError
from ..results.md_format import ResultsFileError, load_results, make_info
from ..results.run_identity import IDENTITY_KEY, file_sha256, text_sha256
from ..results.run_lock import OutputLockedError
from ..results.writer import ResultsWriter, write_problem
from ..species.classifier import (
    DEFAULT_CONTEXT_MARGIN,
    SpeciesClassifier,
    classifier_from_detector,
    load_species_classifier,
)
from ..species.place_filter import apply_species_filter
from .batch_loop import InferenceSummary, run_inference
from .categories import DetectionClasses, detection_classes, parse_class_names
from .glance import DEFAULT_ESCALATION_THRESHOLD, GlanceDetector

__all__ = ["BatchJobError", "BatchJobSettings", "JobModels", "build_job_cfg", "load_job_models", "run_batch_job"]

logger = logging.getLogger("ropevit_det.infer")


class BatchJobError(UserInputError):
    """A setting of the job cannot be used; ``argument`` names the :class:`BatchJobSettings` field at fault."""

    def __init__(self, message: str, setting: str) -> None:
        super().__init__(message, argument=setting)


@dataclass(frozen=True, kw_only=True)
class BatchJobSettings:
    """What one batch run needs; every rank gets the same settings."""

    config_file: str  # a config file (model-zoo names are resolved by the caller)
    weights: str
    input: str  # folder (recursive), .txt list of paths, glob, or one image or video
    output: str  # MegaDetector-format results JSON
    opts: Sequence[str] = ()  # config overrides, KEY VALUE pairs
    input_root: str | None = None
    threshold: float | None = None  # default: the config's SCORE_THRESH_TEST
    typical_threshold: float = 0.2
    class_names: str | None = None
    batch_size: int = 4
    num_workers: int = 4
    device: str | None = None
    bf16: bool = False
    backend: str = "pytorch"
    glance: int | None = None  # glance, then look: long side (px) of the first pass; None: one full pass
    glance_threshold: float = DEFAULT_ESCALATION_THRESHOLD  # a glance candidate at least this escalates
    checkpoint_every: int = 1000
    resume: bool = False
    overwrite: bool = False
    render_dir: str | None = None
    render_threshold: float | None = None  # default: typical_threshold
    coco_results: str | None = None
    coco_gt: str | None = None
    classify: bool = False
    classifier_weights: str | None = None
    classify_threshold: float | None = None  # default: typical_threshold
    top_k: int = 5
    crop_margin: float = DEFAULT_CONTEXT_MARGIN
    taxonomy: str | None = None
    taxa: str | None = None
    species_list: str | None = None
    geofence: str | None = None  # SpeciesNet's geofence JSON
    country: str | None = None  # ISO 3166-1 alpha-3, where the geofence applies
    admin1: str | None = None  # first-level region as SpeciesNet writes it (US state codes)
    rollup: float | None = None
    smooth_sequences: bool = False
    sequences_cct: str | None = None
    sequence_interval: float = 60.0
    smooth_threshold: float = 0.5
    shard: tuple[int, int] | None = None  # (K, N): the K-th (1-based) of N parts of the input
    sampling: FrameSampling = field(default_factory=FrameSampling)
    all_frames: bool = False
    tiles: bool = False  # sliced inference (SAHI): overlapping tiles of each image, merged (detection/tiling.py)
    tile_size: int = 1024  # tile side in image pixels
    tile_overlap: float = 0.2  # fraction of a tile shared with its neighbour
    tiles_with_full_frame: bool = False  # also run the whole frame and merge it with the tiles
    tile_merge: str = "nms"  # how boxes of overlapping tiles are merged: nms or greedy_nmm (SAHI's)
    progress: bool = True
    # The run that holds the output's lock (taken by the command before launching; see results/run_lock.py).
    # None: a one-process job takes the lock itself; the other processes of a run take rank 0's.
    run_id: str | None = None
    wait_for_lock: float | None = None  # seconds to wait for another run on the output; None: refuse at once
    break_lock: bool = False  # take over a lock that a run on another host left


def build_job_cfg(settings: BatchJobSettings, local_rank: int | None = None) -> CfgNode:
    """The detector config; ``local_rank`` (distributed runs) picks this process's GPU."""
    cfg = load_config(settings.config_file, list(settings.opts))
    cfg.MODEL.WEIGHTS = settings.weights
    if settings.threshold is not None:
        # The model itself drops boxes under SCORE_THRESH_TEST: lower thresholds only work through it.
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = settings.threshold
        cfg.MODEL.RETINANET.SCORE_THRESH_TEST = settings.threshold
    if settings.device is not None:
        if settings.device.startswith("cuda") and not torch.cuda.is_available():
            raise BatchJobError(f"{settings.device}: CUDA is not available on this machine; use cpu", "device")
        cfg.MODEL.DEVICE = settings.device
    else:
        cfg.MODEL.DEVICE = available_device(cfg.MODEL.DEVICE)
    if local_rank is not None and cfg.MODEL.DEVICE.startswith("cuda"):
        cfg.MODEL.DEVICE = f"cuda:{local_rank}"  # launch set this process's device; the model goes there
    cfg.freeze()
    return cfg


def list_job_inputs(settings: BatchJobSettings) -> tuple[Path, list[str]]:
    """``(root, sorted relative paths)`` of the input under its root; errors name ``input`` or ``input_root``."""
    try:
        return list_inputs(settings.input, root=settings.input_root)
    except InputRootError as exc:
        raise BatchJobError(str(exc), "input_root") from exc
    except (ValueError, FileNotFoundError) as exc:
        raise BatchJobError(str(exc), "input") from exc


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
    return apply_species_filter(
        classifier,
        taxonomy=settings.taxonomy,
        taxa=settings.taxa,
        species_list=settings.species_list,
        geofence=settings.geofence,
        country=settings.country,
        admin1=settings.admin1,
        rollup=settings.rollup,
    )


def weights_digest(weights: str) -> str:
    """The weights' identity: the SHA-256 of a local file (by content, so a renamed copy is the same), else the
    name (``birder://NAME``, a URL)."""
    return file_sha256(weights) if os.path.isfile(weights) else f"name:{weights}"


def run_identity(
    settings: BatchJobSettings,
    cfg: CfgNode,
    classes: DetectionClasses,
    classifier: SpeciesClassifier | None,
    root: Path,
    weights_sha256: str,
) -> dict:
    """What a resumed run must share with the run it continues (see ``results/run_identity.py``)."""
    resolved = cfg.clone()
    resolved.defrost()
    # The weights count by content (weights_sha256), and the device does not change what a model computes.
    resolved.MODEL.WEIGHTS, resolved.MODEL.DEVICE = "", ""
    classifier_file = settings.classifier_weights
    return {
        "weights_sha256": weights_sha256,
        "config_sha256": text_sha256(resolved.dump()),
        "score_threshold": float(cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST),
        "classify_threshold": (
            settings.typical_threshold if settings.classify_threshold is None else settings.classify_threshold
        )
        if classifier
        else None,
        "detection_categories": dict(classes.categories),
        "classifier": classifier.name if classifier else None,
        "classifier_sha256": weights_digest(classifier_file) if classifier and classifier_file else None,
        "input_root": str(root),
        "shard": f"{settings.shard[0]}/{settings.shard[1]}" if settings.shard else None,
        "frame_sampling": dataclasses.asdict(settings.sampling),
        "all_frames": settings.all_frames,
        "code_version": __version__,
    }


def _writer(
    settings: BatchJobSettings,
    cfg: CfgNode,
    classes: DetectionClasses,
    classifier: SpeciesClassifier | None,
    identity: dict,
    run_id: str | None,
) -> ResultsWriter:
    typical = settings.typical_threshold
    info = make_info(
        Path(settings.weights).name,
        typical_detection_threshold=typical,
        conservative_detection_threshold=min(0.1, typical),
        classifier=classifier.name if classifier else None,
        extra_detector_metadata={
            "config": Path(settings.config_file).name,
            "min_size_test": cfg.INPUT.MIN_SIZE_TEST,
            "max_size_test": cfg.INPUT.MAX_SIZE_TEST,
            **_tiling_metadata(settings),
        },
    )
    if settings.shard is not None:
        info["shard"] = f"{settings.shard[0]}/{settings.shard[1]}"  # for the merge's report; dropped from merged files
    info[IDENTITY_KEY] = identity
    try:
        return ResultsWriter(
            settings.output,
            info=info,
            detection_categories=classes.categories,
            classification_categories=classifier.categories if classifier else None,
            checkpoint_every=settings.checkpoint_every,
            resume=settings.resume,
            overwrite=settings.overwrite,
            rank=comm.get_rank(),
            world_size=comm.get_world_size(),
            run_id=run_id,
            wait_for_lock=settings.wait_for_lock,
            break_lock=settings.break_lock,
        )
    except (FileExistsError, ResultsFileError, JournalError, OutputLockedError, ValueError) as exc:
        raise BatchJobError(str(exc), "output") from exc
    except OSError as exc:
        raise BatchJobError(write_problem(exc, settings.output), "output") from exc


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


def _tiling_metadata(settings: BatchJobSettings) -> dict:
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


def run_batch_job(settings: BatchJobSettings) -> InferenceSummary:
    """One process of the run: its share of the (shard of the) sorted input, its own journal; rank 0 merges.

    Raises:
        BatchJobError: a setting cannot be used (``setting`` names it).
        SpeciesFilterError: the species filter settings cannot be used.
    """
    rank, world = comm.get_rank(), comm.get_world_size()
    cfg = build_job_cfg(settings, comm.get_local_rank() if world > 1 else None)
    root, files = list_job_inputs(settings)  # the same root in every rank and shard
    logger.info("%d images under %s", len(files), root)
    if settings.shard is not None:
        files = part_of(files, settings.shard[0] - 1, settings.shard[1])
        logger.info("shard %d/%d: %d images", settings.shard[0], settings.shard[1], len(files))
    mine = part_of(files, rank, world)
    models = load_job_models(settings, cfg)
    # Every process of a run carries rank 0's run id (machine rank 0 took the lock) and weights hash (read once).
    run_id, weights_sha256 = settings.run_id, weights_digest(settings.weights) if rank == 0 else None
    if world > 1:
        run_id, weights_sha256 = comm.all_gather((run_id, weights_sha256))[0]
    identity = run_identity(settings, cfg, models.classes, models.classifier, root, weights_sha256)
    writer = _writer(settings, cfg, models.classes, models.classifier, identity, run_id)
    try:
        summary = _detect_into(writer, models, root, mine, settings, cfg, rank)
        if world > 1:
            comm.synchronize()  # every journal closed: rank 0 merges them
            if rank == 0:
                writer.finalize()
    except OSError as exc:  # a full disk, a folder made read-only: the journal keeps what was done
        raise BatchJobError(write_problem(exc, settings.output), "output") from exc
    if isinstance(models.detector, GlanceDetector):
        logger.info(
            "glance at %d px: %d of %d frames escalated to the full pass",
            settings.glance,
            models.detector.escalated,
            models.detector.glanced,
        )
    logger.info(
        "%d images in %.2f s (%.2f images/s): %d detections, %d classified, %d failures%s",
        summary.images,
        summary.seconds,
        summary.images_per_second,
        summary.detections,
        summary.classified,
        summary.failures,
        f" (e.g. {', '.join(summary.failed_files[:3])})" if summary.failures else "",
    )
    if rank == 0:
        logger.info("results in %s", settings.output)
        _smooth_species_labels(settings)
        if settings.coco_results:
            try:
                results, _ = md_to_coco_results(writer.to_dict(complete=True), root, settings.coco_gt)
            except (ValueError, FileNotFoundError) as exc:
                raise BatchJobError(str(exc), "coco_gt") from exc
            write_json_atomic(settings.coco_results, results)
            logger.info("%d COCO results written to %s", len(results), settings.coco_results)
    return summary


def _detect_into(
    writer: ResultsWriter,
    models: JobModels,
    root: Path,
    mine: list[str],
    settings: BatchJobSettings,
    cfg: CfgNode,
    rank: int,
) -> InferenceSummary:
    """This process's share through the detector into ``writer`` (finalized on leaving with one process)."""
    typical = settings.typical_threshold
    with writer:  # one process: finalized on leaving; several: each closes its journal
        return run_inference(
            models.detector,
            models.spec,
            root,
            mine,
            writer,
            models.classes,
            threshold=cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST,
            batch_size=settings.batch_size,
            num_workers=settings.num_workers,
            classifier=models.classifier,
            classify_threshold=typical if settings.classify_threshold is None else settings.classify_threshold,
            render_dir=settings.render_dir,
            render_threshold=typical if settings.render_threshold is None else settings.render_threshold,
            sampling=settings.sampling,
            all_frames=settings.all_frames,
            progress=settings.progress and rank == 0,
        )


def _smooth_species_labels(settings: BatchJobSettings) -> None:
    """``smooth_sequences``: rewrite the output with labels smoothed per sequence."""
    if not settings.smooth_sequences:
        return
    from ..postprocess.smoothing import (
        sequences_from_capture_times,
        sequences_from_cct,
        smooth_sequences,
    )

    try:
        results = load_results(settings.output)
        if settings.sequences_cct:
            sequences = sequences_from_cct(settings.sequences_cct, results)
        else:
            sequences = sequences_from_capture_times(results, interval_seconds=settings.sequence_interval)
        if not sequences:
            logger.warning(
                "--smooth-sequences: no image has a capture time (EXIF DateTimeOriginal); pass "
                "--sequences-cct FILE to give the sequences. Labels left as they are."
            )
            return
        smoothed = smooth_sequences(results, sequences, classification_threshold=settings.smooth_threshold)
    except (ValueError, FileNotFoundError, ResultsFileError, ImportError) as exc:
        raise BatchJobError(str(exc), "smooth_sequences") from exc
    write_json_atomic(settings.output, smoothed, indent=1)
    logger.info(
        "species labels smoothed over %d sequences in %s", len({s["seq_id"] for s in sequences}), settings.output
    )
