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
from pathlib import Path

from detectron2.config import CfgNode
from detectron2.utils import comm

from ... import __version__
from ...utils.atomic_json import write_json_atomic
from ..inputs.sharding import part_of
from ..results.coco_results import md_to_coco_results
from ..results.journal import JournalError
from ..results.md_format import ResultsFileError, load_results, make_info
from ..results.output_file import write_problem
from ..results.run_identity import IDENTITY_KEY, file_sha256, text_sha256
from ..results.run_lock import OutputLockedError
from ..results.writer import ResultsWriter
from ..species.classifier import SpeciesClassifier
from .batch_loop import InferenceSummary, run_inference
from .categories import DetectionClasses
from .glance import GlanceDetector
from .job_models import JobModels, load_job_models, tiling_metadata
from .job_settings import BatchJobError, BatchJobSettings, build_job_cfg, list_job_inputs

__all__ = ["run_batch_job"]

logger = logging.getLogger("ropevit_det.infer")


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
            **tiling_metadata(settings),
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
