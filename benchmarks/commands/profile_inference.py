#!/usr/bin/env python
"""Where full Mask R-CNN inference spends its time: torch.profiler over the benchmark's models.

Complements tools/benchmark.py (which times) by attributing the time to operators, e.g. to show how much
of an end-to-end figure is the backbone and how much detectron2's heads and post-processing.

    python tools/profile_inference.py --device cuda --size 1024 --batch 8 --model ours --mode bf16
    python tools/profile_inference.py --device cpu --size 1024 --model ours --mode fast --top 15
    # the no-bf16 path against MegaDetector (docs/PERFORMANCE_MEGADETECTOR.md): Faster R-CNN heads, capped NMS
    OMP_NUM_THREADS=1 python tools/profile_inference.py --size 1024 --mode int8 --boxes-only --topk-candidates 1000
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from benchmarks.models import (
    OUR_MODES,
    VITDET_MODES,
    auto_window_size,
    build_benchmark_model,
    synthetic_images,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--size", type=int, default=1024, help="square input size")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--model", choices=("ours", "vitdet"), default="ours")
    parser.add_argument("--mode", default="bf16", help="ours: " + "|".join(OUR_MODES) + "; vitdet: fp32|bf16")
    parser.add_argument(
        "--topk-candidates",
        type=int,
        default=0,
        help="cap on the candidates per image entering test-time NMS (0: none)",
    )
    parser.add_argument(
        "--boxes-only", action="store_true", help="ours without its mask head (Faster R-CNN, as the camera-trap config)"
    )
    parser.add_argument("--top", type=int, default=20, help="operators to list")
    parser.add_argument("--warmup", type=int, default=2)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    modes = OUR_MODES if args.model == "ours" else VITDET_MODES
    if args.mode not in modes:
        parser.error(f"unknown {args.model} mode {args.mode!r}; choose one of {', '.join(modes)}")
    spec = modes[args.mode]
    if spec.runtime:  # torch's profiler sees nothing inside ONNX Runtime or OpenVINO
        parser.error(
            f"mode {args.mode!r} runs in {spec.runtime}, which torch's profiler cannot see into; "
            "use its own profiler, or time it with tools/benchmark.py"
        )
    device = torch.device(args.device)
    model = build_benchmark_model(
        spec,
        args.size,
        args.device,
        0.0,
        auto_window_size(args.size),
        topk_candidates=args.topk_candidates,
        boxes_only=args.boxes_only,
    ).eval()
    images = synthetic_images(args.batch, args.size, device)
    inputs = [{"image": image} for image in images]
    normalized = (images - model.pixel_mean) / model.pixel_std
    autocast = torch.autocast(device.type, dtype=spec.autocast_dtype, enabled=spec.autocast_dtype is not None)

    def step() -> None:
        with torch.no_grad(), autocast:
            with record_function("backbone_only"):
                model.backbone(normalized)
            with record_function("full_inference"):
                model(inputs)
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        step()
    sort_key = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    print(f"{args.model}/{args.mode}, {args.size} px, batch {args.batch}, {args.device}")
    print(prof.key_averages().table(sort_by=sort_key, row_limit=args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
