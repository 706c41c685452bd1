"""What a batch job is asked to do: :class:`BatchJobSettings`, the config and inputs it names, and
:class:`BatchJobError`, which names the setting at fault."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from detectron2.config import CfgNode

from ...config import load_config
from ...engine.devices import available_device
from ...errors import UserInputError
from ..inputs.listing import InputRootError, list_inputs
from ..inputs.video import FrameSampling
from ..species.classifier import (
    DEFAULT_CONTEXT_MARGIN,
)
from .glance import DEFAULT_ESCALATION_THRESHOLD

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
