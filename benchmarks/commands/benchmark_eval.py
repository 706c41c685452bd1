#!/usr/bin/env python
"""COCO evaluation speed (faster-coco-eval against pycocotools, same AP) and data-loader throughput against
the model's training speed (issue 6, part 4). Prints Markdown; ``--json OUT`` writes everything.

    python tools/benchmark_eval.py --json output/bench_eval.json                # 5,000 images x 100 dets
    python tools/benchmark_eval.py --benchmark-json output/bench_cpu.json       # model speed from benchmark.py
    python tools/benchmark_eval.py --quick                                      # 500 images, < 1 min

The loader is compared with the model's training images/s taken from a ``tools/benchmark.py --json``
file (train_step rows of our model), or, without one, measured here for our fast mode (``--model-size``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
from pathlib import Path

import ropevit_det  # noqa: F401  (registers the backbone)
from benchmarks.eval_data import coco_eval_benchmark, loader_benchmark, write_synthetic_jpegs
from ropevit_det.cli.common import config_arg

DEFAULT_CONFIG = "ropevit_mrcnn.yaml"  # a model-zoo name


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-images", type=int, default=5000, help="synthetic COCO images (default 5000)")
    p.add_argument("--dets-per-image", type=int, default=100, help="detections per image (default 100)")
    p.add_argument(
        "--iou-types", default="bbox", help="bbox and/or segm, comma-separated (segm is much slower for pycocotools)"
    )
    p.add_argument("--skip-coco", action="store_true", help="skip the COCO evaluation benchmark")
    p.add_argument("--skip-loader", action="store_true", help="skip the data-loader benchmark")
    p.add_argument("--loader-images", type=int, default=32, help="generated 640x480 JPEGs (default 32)")
    p.add_argument(
        "--loader-image-dir",
        type=Path,
        default=None,
        help="use these JPEGs instead of generated ones (e.g. tests/assets/camtrap_mini/images)",
    )
    p.add_argument("--loader-passes", type=int, default=2, help="passes over the images (default 2)")
    p.add_argument(
        "--config",
        "--config-file",
        dest="config_file",
        default=DEFAULT_CONFIG,
        help="training config for the mapper, a path or a model-zoo name (default: %(default)s)",
    )
    p.add_argument(
        "--benchmark-json",
        type=Path,
        default=None,
        help="tools/benchmark.py --json output: take the model's train_step speed from it",
    )
    p.add_argument(
        "--model-size",
        type=int,
        default=1024,
        help="without --benchmark-json: measure our fast mode's train step at this size (default 1024)",
    )
    p.add_argument("--quick", action="store_true", help="500 images, 16 loader images, model at 448 px")
    p.add_argument("--json", type=Path, default=None, help="write the result here")
    return p


def model_train_speed(args: argparse.Namespace) -> list[dict]:
    """Our model's training images/s: from a benchmark JSON, else one measurement of the fast mode."""
    if args.benchmark_json is not None:
        rows = json.loads(args.benchmark_json.read_text())["rows"]
        source = str(args.benchmark_json)
    else:
        from benchmarks import BenchmarkSettings, run_benchmark

        settings = BenchmarkSettings(
            sizes=(args.model_size,),
            tasks=("train_step",),
            ours_modes=("fast",),
            vitdet_modes=(),
            warmup=1,
            repeats=1,
            count_flops=False,
            accuracy=False,
        )
        rows = run_benchmark(settings)["rows"]
        source = "measured here"
    return [
        {
            "mode": r["mode"],
            "size": r["size"],
            "batch": r["batch"],
            "source": source,
            "train_images_per_second": r["batch"] / r["seconds_median"],
        }
        for r in rows
        if r["model"] == "ours" and r["task"] == "train_step" and r["seconds_median"]
    ]


def markdown(result: dict) -> str:
    lines = []
    coco = result.get("coco")
    if coco:
        lines += [
            f"COCO evaluation, {coco['num_images']} synthetic images, {coco['detections']} detections "
            f"({coco['gt_objects']} ground-truth objects):",
            "",
            "| IoU type | pycocotools s | faster-coco-eval s | speedup | speedup as FasterCOCOEvaluator uses it "
            "| AP pycocotools | AP faster-coco-eval | max stat difference |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for iou_type, r in coco["by_iou_type"].items():
            s = r["seconds"]
            lines.append(
                f"| {iou_type} | {s['pycocotools']:.2f} | {s['faster_coco_eval']:.2f} | {r['speedup']:.1f}x "
                f"| {r['speedup_as_used_by_evaluator']:.1f}x | {r['AP']['pycocotools']:.4f} "
                f"| {r['AP']['faster_coco_eval']:.4f} | {r['max_abs_stat_difference']:.2e} |"
            )
        load = coco["load_results_seconds"]
        lines += [
            "",
            f"Loading the detections: pycocotools {load['pycocotools']:.2f} s, "
            f"faster-coco-eval {load['faster_coco_eval']:.2f} s.",
            "",
        ]
    loader = result.get("loader")
    if loader:
        lines += [
            f"Data loading (decode + LSJ {loader['lsj_image_size']} + annotations, one worker): "
            f"{loader['images_per_second_per_worker']:.1f} images/s "
            f"({loader['images']} images in {loader['seconds']:.1f} s).",
            "",
        ]
        if result.get("model"):
            lines += [
                "| our mode | size | batch | model train images/s | loader images/s (1 worker) "
                "| workers to keep up | share of one core spent loading |",
                "|---|---|---|---|---|---|---|",
            ]
            for m in result["model"]:
                lines.append(
                    f"| {m['mode']} | {m['size']} | {m['batch']} | {m['train_images_per_second']:.3f} "
                    f"| {loader['images_per_second_per_worker']:.1f} | {m['workers_needed']} "
                    f"| {100 * m['loader_core_share']:.1f}% |"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.num_images, args.loader_images, args.model_size = 500, 16, 448
    logging.basicConfig(level=logging.INFO, format="[benchmark_eval] %(message)s")
    logging.getLogger("faster_coco_eval").setLevel(logging.WARNING)  # it logs every summary table at INFO
    result: dict = {}
    if not args.skip_coco:
        iou_types = tuple(t for t in args.iou_types.split(",") if t)
        bad = [t for t in iou_types if t not in ("bbox", "segm")]
        if bad:
            print(f"error: --iou-types: unknown {bad}; use bbox and/or segm", file=sys.stderr)
            return 2
        result["coco"] = coco_eval_benchmark(args.num_images, args.dets_per_image, iou_types)
    if not args.skip_loader:
        with tempfile.TemporaryDirectory() as tmp:
            if args.loader_image_dir is not None:
                paths = sorted(p for p in args.loader_image_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
                if not paths:
                    print(f"error: --loader-image-dir {args.loader_image_dir} holds no .jpg files", file=sys.stderr)
                    return 2
            else:
                paths = write_synthetic_jpegs(Path(tmp), args.loader_images)
            result["loader"] = loader_benchmark(paths, config_arg(args.config_file), args.loader_passes)
        loader_speed = result["loader"]["images_per_second_per_worker"]
        result["model"] = model_train_speed(args)
        for m in result["model"]:
            # A worker busy for model_speed / loader_speed of its time keeps up with the model.
            m["loader_core_share"] = m["train_images_per_second"] / loader_speed
            m["workers_needed"] = math.ceil(m["loader_core_share"])
    print(markdown(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
