#!/usr/bin/env python
r"""The demo (`make demo`): train and evaluate Mask R-CNN with a small RoPE ViT on a SYNTHETIC dataset, on the CPU.

Nothing is downloaded. The steps, all in one process:
  1. generate the synthetic shapes dataset (ropevit_det.data.synthetic: circles, squares, triangles on a noisy
     background, exact masks) deterministically into OUTPUT_DIR/data; a second run with the same parameters reuses it;
  2. train the config (default configs/demo/ropevit_shapes_cpu.yaml: a narrow, shallow ViT/14 from scratch)
     with the project's Trainer, the same one tools/train_net.py uses; logs, metrics.json, model_final.pth in
     OUTPUT_DIR/train;
  3. evaluate COCO box and mask AP on the held-out split and print the table;
  4. render ground truth | prediction for a few held-out images into OUTPUT_DIR/predictions/;
  5. write OUTPUT_DIR/demo_results.json (AP numbers, wall time) and exit non-zero if box AP50 is below
     --min-box-ap50 (the model did not learn).

Examples:
  python tools/demo.py --output-dir output/demo
  # longer schedule, other seed (trailing KEY VALUE pairs override config keys)
  python tools/demo.py --output-dir output/demo2 SOLVER.MAX_ITER 1000 SEED 1

The numbers it prints concern synthetic shapes; they say nothing about natural images.

  python tools/demo.py --camera-trap   # the camera-trap workflow on the sample frames instead (needs a clone);
                                       # see ropevit_det/cli/demo_camera_trap.py
"""

from __future__ import annotations

import time

# Taken before the heavy imports, so that the reported wall time includes loading torch and detectron2.
_PROCESS_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Mapping  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from detectron2.config import CfgNode  # noqa: E402
from detectron2.data import (  # noqa: E402
    DatasetCatalog,
    MetadataCatalog,
    detection_utils,  # noqa: E402
)
from detectron2.engine import DefaultPredictor, default_setup  # noqa: E402
from detectron2.utils.visualizer import Visualizer  # noqa: E402
from PIL import Image  # noqa: E402
from tabulate import tabulate  # noqa: E402

from ropevit_det.cli import demo_camera_trap  # noqa: E402
from ropevit_det.cli.common import config_arg  # noqa: E402
from ropevit_det.config import load_config  # noqa: E402
from ropevit_det.data import SHAPE_CLASSES, generate_shapes_dataset, register_coco_dataset  # noqa: E402
from ropevit_det.engine import Trainer  # noqa: E402
from ropevit_det.engine.devices import available_device  # noqa: E402

logger = logging.getLogger("ropevit_det.demo")

DEFAULT_CONFIG = "demo/ropevit_shapes_cpu.yaml"  # a model-zoo name (ropevit_det.model_zoo)
TRAIN_NAME, VAL_NAME = "ropevit_demo_shapes_train", "ropevit_demo_shapes_val"
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
# One intra-op thread by default, for a run time that holds on shared machines. Measured on a 2-core machine,
# one forward + backward pass of this config took 0.44 s with 1 thread and 0.33 s with 2 when the cores were
# nearly idle, but 0.7 s with 1 thread and 2.8-4.1 s with 2 while other jobs kept them busy (OpenMP threads
# wait on each other). On a dedicated machine, --num-threads 2 is ~25% faster.
DEFAULT_NUM_THREADS = 1
# Predictions below this score are left out of the rendered images (evaluation keeps all of them).
RENDER_SCORE_THRESHOLD = 0.5


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        epilog=__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--output-dir",
        default=None,
        help="everything goes here (default: output/demo, with --camera-trap output/demo_camera_trap)",
    )
    parser.add_argument(
        "--config",
        "--config-file",
        dest="config_file",
        default=DEFAULT_CONFIG,
        metavar="FILE_OR_NAME",
        help="demo config, a path or a model-zoo name (default: %(default)s)",
    )
    parser.add_argument("--num-train", type=int, default=600, help="synthetic training images (default: %(default)s)")
    parser.add_argument("--num-val", type=int, default=100, help="synthetic held-out images (default: %(default)s)")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic dataset (default: %(default)s)")
    parser.add_argument(
        "--num-render",
        type=int,
        default=8,
        help="held-out images rendered into OUTPUT_DIR/predictions (default: %(default)s)",
    )
    parser.add_argument(
        "--num-threads",
        type=int,
        default=DEFAULT_NUM_THREADS,
        help="torch intra-op CPU threads (default: %(default)s, robust when the cores are shared; "
        "2 is ~25%% faster on an idle 2-core machine)",
    )
    parser.add_argument(
        "--min-box-ap50",
        type=float,
        default=50.0,
        help="exit with status 1 when held-out box AP50 is below this (default: %(default)s)",
    )
    demo_camera_trap.add_arguments(parser)
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides, e.g. SOLVER.MAX_ITER 100"
    )
    return parser


def setup(args: argparse.Namespace) -> CfgNode:
    """Config as in tools/train_net.py: defaults, project keys, the file, the overrides, then default_setup."""
    args.config_file = config_arg(args.config_file)  # default_setup reads it again to log and copy it
    cfg = load_config(args.config_file, args.opts)
    cfg.DATASETS.TRAIN = (TRAIN_NAME,)
    cfg.DATASETS.TEST = (VAL_NAME,)
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = len(SHAPE_CLASSES)
    cfg.OUTPUT_DIR = os.path.join(args.output_dir, "train")
    cfg.MODEL.DEVICE = available_device(cfg.MODEL.DEVICE)
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def prepare_data(args: argparse.Namespace, image_size: int) -> dict[str, Path]:
    """Generate (or reuse) the synthetic dataset and register both splits with detectron2."""
    paths = generate_shapes_dataset(
        Path(args.output_dir) / "data", args.num_train, args.num_val, seed=args.data_seed, image_size=image_size
    )
    register_coco_dataset(TRAIN_NAME, paths["train_json"], paths["train_images"])
    register_coco_dataset(VAL_NAME, paths["val_json"], paths["val_images"])
    return paths


def render_predictions(cfg: CfgNode, out_dir: Path, num_images: int) -> list[Path]:
    """Draw ground truth (left) and prediction (right) for the first held-out images, one PNG each."""
    predict_cfg = cfg.clone()
    predict_cfg.defrost()
    predict_cfg.MODEL.WEIGHTS = os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
    predictor = DefaultPredictor(predict_cfg)
    metadata = MetadataCatalog.get(VAL_NAME)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for record in DatasetCatalog.get(VAL_NAME)[:num_images]:
        image_bgr = detection_utils.read_image(record["file_name"], format="BGR")
        instances = predictor(image_bgr)["instances"].to("cpu")
        instances = instances[instances.scores >= RENDER_SCORE_THRESHOLD]
        image_rgb = image_bgr[:, :, ::-1]
        truth = Visualizer(image_rgb, metadata, scale=2.0).draw_dataset_dict(record).get_image()
        predicted = Visualizer(image_rgb, metadata, scale=2.0).draw_instance_predictions(instances).get_image()
        gap = np.full((truth.shape[0], 8, 3), 255, dtype=np.uint8)
        path = out_dir / f"{Path(record['file_name']).stem}.png"
        Image.fromarray(np.concatenate([truth, gap, predicted], axis=1)).save(path)
        written.append(path)
    return written


def _finite_or_none(value: float) -> float | None:
    # COCOEvaluator reports NaN when there are no predictions at all; JSON has no NaN.
    return None if value is None or math.isnan(value) else float(value)


def ap_table(results: Mapping[str, Mapping[str, float]]) -> str:
    """The summary AP numbers of each task (bbox, and segm unless MODEL.MASK_ON is off), one row each."""
    rows = [[task] + [f"{results[task].get(m, float('nan')):.1f}" for m in METRICS] for task in results]
    return tabulate(rows, headers=["task", *METRICS], tablefmt="pipe")


def write_results(
    path: Path,
    results: Mapping[str, Mapping[str, float]],
    timings: dict[str, float],
    cfg: CfgNode,
    args: argparse.Namespace,
    passed: bool,
) -> dict[str, Any]:
    summary = {
        "dataset": "synthetic shapes (ropevit_det.data.synthetic), generated locally; not real data",
        "data": {
            "num_train": args.num_train,
            "num_val": args.num_val,
            "seed": args.data_seed,
            "image_size": cfg.INPUT.MIN_SIZE_TEST,
        },
        "config": args.config_file,
        "overrides": list(args.opts),
        **{task: {k: _finite_or_none(v) for k, v in metrics.items()} for task, metrics in results.items()},
        "min_box_ap50": args.min_box_ap50,
        "passed": passed,
        "wall_time_s": timings,
        "torch_threads": torch.get_num_threads(),
        "device": cfg.MODEL.DEVICE,
    }
    path.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def run_demo(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.num_threads)
    cfg = setup(args)
    out = Path(args.output_dir)
    timings: dict[str, float] = {}

    start = time.perf_counter()
    prepare_data(args, image_size=cfg.INPUT.MIN_SIZE_TEST)
    timings["generate_data"] = time.perf_counter() - start

    start = time.perf_counter()
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    # DefaultTrainer's evaluation hook runs after the last iteration (and every TEST.EVAL_PERIOD) and keeps the
    # latest results here; train() itself returns them only when TEST.EXPECTED_RESULTS is set.
    results = trainer._last_eval_results
    timings["train_and_evaluate"] = time.perf_counter() - start

    start = time.perf_counter()
    rendered = render_predictions(cfg, out / "predictions", args.num_render)
    timings["render"] = time.perf_counter() - start
    timings["total"] = time.perf_counter() - _PROCESS_START

    box_ap50 = results["bbox"]["AP50"]
    passed = not math.isnan(box_ap50) and box_ap50 >= args.min_box_ap50
    write_results(out / "demo_results.json", results, timings, cfg, args, passed)

    print(f"\nHeld-out COCO AP of {VAL_NAME} ({args.num_val} synthetic images):\n{ap_table(results)}\n")
    print(f"Rendered {len(rendered)} ground truth | prediction images to {out / 'predictions'}")
    print(f"Results: {out / 'demo_results.json'}; wall time {timings['total']:.0f} s")
    if not passed:
        print(
            f"FAILED: the model did not learn: held-out box AP50 = {box_ap50:.1f} < {args.min_box_ap50:g}. "
            f"Check the losses in {cfg.OUTPUT_DIR}/metrics.json; a longer schedule (SOLVER.MAX_ITER) may help.",
            file=sys.stderr,
        )
        return 1
    print(f"OK: held-out box AP50 = {box_ap50:.1f} >= {args.min_box_ap50:g}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``ropevit-det demo`` / ``python tools/demo.py`` / ``make demo``."""
    args = build_parser().parse_args(argv)
    if args.camera_trap:
        if args.opts:
            raise SystemExit(f"ERROR: --camera-trap takes no config overrides (got {' '.join(args.opts)})")
        args.output_dir = args.output_dir or "output/demo_camera_trap"
        args.process_start = _PROCESS_START
        return demo_camera_trap.run_camera_trap_demo(args)
    args.output_dir = args.output_dir or "output/demo"
    return run_demo(args)


if __name__ == "__main__":
    sys.exit(main())
