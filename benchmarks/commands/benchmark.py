#!/usr/bin/env python
"""Benchmark our RoPE ViT-B/14 Mask R-CNN against detectron2's own ViTDet ViT-B Mask R-CNN, in one run.

For each model and mode, at each size and batch: backbone forward, full Mask R-CNN inference, one training
step (forward, backward, AdamW step on synthetic instances with masks), peak memory, FLOPs and the achieved
fraction of this machine's measured matmul peak; plus the accuracy guard of the fast modes. Weights are
random (timing does not depend on them). Prints Markdown; ``--json OUT`` writes the full result.

Our modes: parity (fp32, global attention, as pretrained), bf16 (bf16 autocast, global attention) and
fast (bf16 autocast, windowed attention with global blocks 2/5/8/11: a fine-tuning choice).
Baseline: ViTDet-B fp32 (add bf16 with --vitdet-modes fp32,bf16).

    python tools/benchmark.py --quick                         # 448 px, ours parity + fast: < 5 min, 2 cores
    python tools/benchmark.py --json output/bench_cpu.json    # 1024 px, batch 1, full run
    python tools/benchmark.py --device cuda --batches 1,8 --vitdet-modes fp32,bf16 --json out.json
    # against MegaDetector v5a (CPU, batch 1), our no-bf16 paths included:
    python tools/benchmark.py --sizes 1024 --tasks backbone,inference --vitdet-modes '' --mdv5a-modes fp32 \
        --ours-modes parity,bf16,fast,int8,int8_fast --boxes-only --topk-candidates 1000 --threads 2
    # against MegaDetector v5a and MegaDetector 1000's models, same run, same candidate cap:
    python tools/benchmark.py --sizes 1024 --tasks inference --vitdet-modes '' --ours-modes fast --boxes-only \
        --peers mdv5a,cedar,larch,sorrel,spruce --topk-candidates 1000 --threads 1 --interleave
    # the CPU backends of `infer` against each other (the export at 1024 px; inference only):
    python tools/benchmark.py --sizes 1024 --tasks inference --vitdet-modes '' --mdv5a-modes fp32 \
        --ours-modes parity,int8,ort,openvino --boxes-only --topk-candidates 1000 --threads 1 --interleave
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import ropevit_det  # noqa: F401  (registers the backbone)
from benchmarks import BenchmarkSettings, markdown_report, run_benchmark
from benchmarks.runner import SettingsError
from ropevit_det._deps import require_extras

# 448 px: ViTDet's 28 x 28 grid fills 2 x 2 windows of 14 exactly, ours (32 x 32) 2 x 2 windows of 16. The
# bf16-global mode is left out, so that the run stays well under 5 minutes on 2 idle cores. MegaDetector v5a and
# cedar (fp32, at their own sizes, capped at 1000 candidates as ours) give the ratios against the peers users run.
QUICK = dict(
    sizes=(448,),
    batches=(1,),
    warmup=1,
    repeats=1,
    tasks=("backbone", "inference", "train_step"),
    ours_modes=("parity", "fast"),
    peers=("mdv5a", "cedar"),
    topk_candidates=1000,
)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(t) for t in text.split(",") if t)


def _names(text: str) -> tuple[str, ...]:
    return tuple(t for t in text.split(",") if t)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--sizes", type=_ints, default=None, help="square input sizes, comma-separated (default 1024)")
    p.add_argument("--batches", type=_ints, default=None, help="batch sizes, comma-separated (default 1)")
    p.add_argument(
        "--train-batches",
        type=_ints,
        default=None,
        help="batch sizes of the train_step task (default: --batches); training holds far more memory",
    )
    p.add_argument("--tasks", type=_names, default=None, help="backbone,inference,train_step (default: all)")
    p.add_argument(
        "--ours-modes",
        type=_names,
        default=None,
        help="parity,bf16,fast, int8,int8_fast (no-bf16 paths), ort,openvino (the ONNX export run by "
        "ONNX Runtime / OpenVINO, as infer --backend onnxruntime|openvino; CPU, task inference "
        "only) and/or fast_compiled (torch.compile); default: parity,bf16,fast",
    )
    p.add_argument(
        "--vitdet-modes", type=_names, default=("fp32",), help="fp32 and/or bf16 (default fp32; '' for none)"
    )
    p.add_argument(
        "--mdv5a-modes",
        type=_names,
        default=(),
        help="MegaDetector v5a (YOLOv5x6, 1280 px letterbox) as a peer: fp32 (what it runs on CPUs), fp16 "
        "(GPUs) and/or bf16; needs --topk-candidates and the bench extra (default: none)",
    )
    p.add_argument(
        "--peers",
        type=_names,
        default=None,
        help="MegaDetector models as peers, by name: mdv5a (YOLOv5x6, 1280 px) and MegaDetector 1000's "
        "cedar (YOLOv9c, 640), larch (YOLO11L, 640), sorrel (YOLO11s, 960), spruce (YOLOv5s, 640); "
        "each in the first of --mdv5a-modes (fp32 when none); needs --topk-candidates and the bench "
        "extra. Reports images_per_second_<mode>_vs_<peer> for every pair (default: none)",
    )
    p.add_argument(
        "--interleave",
        action="store_true",
        help="build every model first, then run the repeats round-robin over them (backbone/inference "
        "tasks only; no peak memory or FLOPs): on a shared, loaded machine, load drift is spread "
        "over all models instead of landing on one",
    )
    p.add_argument(
        "--boxes-only",
        action="store_true",
        help="our model without its mask head (Faster R-CNN, as the camera-trap config)",
    )
    p.add_argument("--warmup", type=int, default=None, help="untimed runs per measurement (default 1)")
    p.add_argument(
        "--repeats", type=int, default=None, help="timed runs per measurement; the median is reported (default 3)"
    )
    p.add_argument(
        "--window",
        type=int,
        default=None,
        help="window size (patches) of the fast mode; default: the size near 14 that wastes the fewest "
        "padding tokens (15 at 1024 px)",
    )
    p.add_argument(
        "--score-thresh",
        type=float,
        default=0.0,
        help="test score threshold for both models (default 0.0). Random weights give near-uniform "
        "class scores (~1/81) below detectron2's 0.05, which would skip NMS work and the mask head; "
        "0 keeps 100 detections per image, as a trained model produces",
    )
    p.add_argument(
        "--topk-candidates",
        type=int,
        default=None,
        help="cap on the (proposal, class) pairs per image that enter test-time NMS, for both models "
        "(MODEL.ROI_HEADS.TOPK_CANDIDATES_TEST; default 0: no cap, detectron2's post-processing; "
        "1000 with --quick)",
    )
    p.add_argument("--train-instances", type=int, default=8, help="synthetic ground-truth objects per image")
    p.add_argument(
        "--weights",
        default="",
        help="checkpoint for our model (birder or detectron2 format); "
        "used by the accuracy guard, timing does not depend on it",
    )
    p.add_argument("--no-accuracy", action="store_true", help="skip the accuracy guard")
    p.add_argument(
        "--accuracy-size", type=int, default=None, help="input size of the accuracy guard (default: the first size)"
    )
    p.add_argument("--no-flops", action="store_true", help="skip FLOP counting")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"a short run: {QUICK['sizes'][0]} px, batch 1, 1 warm-up, 1 repeat, ours parity and fast, "
        "MegaDetector v5a and cedar as peers, 1000 candidates (< 5 min on 2 idle cores); explicit "
        "options still win",
    )
    p.add_argument(
        "--tiny", action="store_true", help="2-block, 64-wide ViTs: smoke-tests the tool, timings are meaningless"
    )
    p.add_argument("--json", type=Path, default=None, help="write the full result as JSON here")
    return p


def settings_from_args(args: argparse.Namespace) -> BenchmarkSettings:
    base = dict(QUICK) if args.quick else {}
    chosen = {
        "sizes": args.sizes,
        "batches": args.batches,
        "tasks": args.tasks,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "ours_modes": args.ours_modes,
        "train_batches": args.train_batches,
        "peers": args.peers,
        "topk_candidates": args.topk_candidates,
    }
    base.update({k: v for k, v in chosen.items() if v is not None})
    return BenchmarkSettings(
        device=args.device,
        vitdet_modes=args.vitdet_modes,
        mdv5a_modes=args.mdv5a_modes,
        boxes_only=args.boxes_only,
        interleave=args.interleave,
        window=args.window,
        score_thresh=args.score_thresh,
        train_instances=args.train_instances,
        weights=args.weights,
        accuracy=not args.no_accuracy,
        accuracy_size=args.accuracy_size,
        count_flops=not args.no_flops,
        tiny=args.tiny,
        threads=args.threads,
        **base,
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    require_extras("benchmark", args)  # a missing optional package ends the run before any model is built
    if args.warmup is not None and (args.warmup < 0 or (args.warmup == 0 and not args.no_flops)):
        # FLOPs are counted during the first warm-up run, so none would be a traceback hours into the run.
        parser.error(
            f"--warmup {args.warmup}: FLOPs are counted in the first warm-up run; give --warmup 1 or more, "
            "or add --no-flops to time without warming up"
        )
    logging.basicConfig(level=logging.INFO, format="[benchmark] %(message)s")
    command = "python tools/benchmark.py " + " ".join(argv if argv is not None else sys.argv[1:])

    def write_json(result: dict) -> None:
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({**result, "command": command}, indent=2))

    settings = settings_from_args(args)
    try:
        settings.validate()
    except SettingsError as e:  # the library names the field; name the flag that set it too
        print(f"error: {e} (set by --{e.field.replace('_', '-')})", file=sys.stderr)
        return 2
    result = run_benchmark(settings, on_progress=write_json)
    result["command"] = command
    print(markdown_report(result))
    write_json(result)
    if args.json:
        print(f"\nwrote {args.json}")
    return 0  # tools/benchmark.py exits with it (a dict there would print itself to stderr and exit 1)


if __name__ == "__main__":
    sys.exit(main())
