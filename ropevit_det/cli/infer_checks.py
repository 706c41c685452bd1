"""``infer``'s flag values that cannot work, refused with one line before any process starts."""

from __future__ import annotations

import argparse

import torch

from ropevit_det.camera_trap.inputs.sharding import parse_shard
from ropevit_det.camera_trap.inputs.video import FrameSampling
from ropevit_det.cli.species_args import check_species_args


def check_args(args: argparse.Namespace) -> tuple[tuple[int, int] | None, FrameSampling]:
    """Flag values that cannot work end the run here, before any process starts; returns (shard, sampling)."""
    for name in ("threshold", "typical_threshold", "render_threshold", "classify_threshold"):
        value = getattr(args, name)
        if value is not None and not 0.0 <= value <= 1.0:
            raise SystemExit(f"--{name.replace('_', '-')} must be between 0 and 1, got {value}")
    if args.batch_size < 1 or args.num_workers < 0:
        raise SystemExit("--batch-size must be >= 1 and --num-workers >= 0")
    if args.coco_gt and not args.coco_results:
        raise SystemExit("--coco-gt only applies with --coco-results FILE")
    if args.backend != "pytorch" and (args.bf16 or (args.device or "cpu") != "cpu"):
        raise SystemExit(f"--backend {args.backend} runs on the CPU in fp32: drop --bf16 and --device")
    if args.num_gpus < 1 or args.num_machines < 1 or not 0 <= args.machine_rank < args.num_machines:
        raise SystemExit("--num-gpus and --num-machines must be >= 1 and --machine-rank in 0..num-machines-1")
    if args.num_machines > 1 and args.dist_url == "auto":
        raise SystemExit("--dist-url auto only works on one machine; give every machine --dist-url tcp://HOST0:PORT")
    if torch.cuda.is_available() and args.num_gpus > torch.cuda.device_count():
        raise SystemExit(f"--num-gpus {args.num_gpus}: this machine has {torch.cuda.device_count()} GPUs")
    if args.device is not None and args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: CUDA is not available on this machine; use --device cpu")
    check_species_args(args)
    try:
        shard = parse_shard(args.shard) if args.shard else None
    except ValueError as exc:
        raise SystemExit(f"ERROR: --shard: {exc}") from None
    try:
        sampling = FrameSampling(every_n_frames=args.frame_sample, every_seconds=args.time_sample)
    except ValueError as exc:
        raise SystemExit(f"ERROR: --frame-sample / --time-sample: {exc}") from None
    return shard, sampling
