r"""``ropevit-det demo --camera-trap``: the whole camera-trap workflow on the sample frames, on a CPU, in minutes.

Nothing is downloaded. It needs a clone of the repository: the 21 sample frames live in its
tests/assets/camtrap_mini/ and are not installed by pip (--sample-dir points elsewhere). The steps, in one process:
  1. lay the sample out as a survey: one folder per camera location, a COCO Camera Traps file with each frame's
     location and sequence (OUTPUT_DIR/data);
  2. split it by location (split-cct: no camera in both train and val);
  3. fine-tune the quick schedule (a 2-block, 64-wide ViT) for --iterations steps from a random-weight birder
     checkpoint written on the fly (OUTPUT_DIR/train/model_final.pth);
  4. detect in every frame of the survey (infer): OUTPUT_DIR/results.json, MegaDetector's format;
  5. MegaDetector's review page against the held-out ground truth (review): OUTPUT_DIR/review/index.html;
  6. camera-trap metrics on the held-out split (eval-camtrap): OUTPUT_DIR/metrics.json;
  7. a Camtrap DP 1.0.2 package (camtrapdp export), with a deployments file written for the sample:
     OUTPUT_DIR/camtrapdp/.

The weights are random and trained for seconds on 14 frames: every number it prints is near chance. It shows
what each command writes and where, not what a trained detector scores (docs/CAMERA_TRAPS.md says what real use
needs).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from ropevit_det.camera_trap.data.sample_survey import sample_survey, write_deployments

# The sample frames ship with a clone (tests/assets), not with the installed package.
SAMPLE_DIR = Path(__file__).resolve().parents[2] / "tests" / "assets" / "camtrap_mini"
QUICK_CONFIG = "quick_schedules/ropevit_faster_rcnn_instant_test.yaml"  # a model-zoo name
VAL_FRACTION, SPLIT_SEED = 0.35, 0
TRAIN_NAME = "ropevit_demo_camtrap_train"
# Written from this low confidence, so that a barely trained model still shows boxes on the review page.
WRITE_THRESHOLD = 0.01

logger = logging.getLogger("ropevit_det.demo")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("--camera-trap")
    group.add_argument(
        "--camera-trap",
        action="store_true",
        help="the camera-trap workflow on the sample frames instead (split, fine-tune, infer, review, "
        "eval-camtrap, Camtrap DP); needs a clone (default output dir: output/demo_camera_trap)",
    )
    group.add_argument(
        "--iterations", type=int, default=20, help="--camera-trap fine-tuning steps (default: %(default)s)"
    )
    group.add_argument(
        "--sample-dir",
        default=str(SAMPLE_DIR),
        help="--camera-trap sample (annotations.json + images/; default: the clone's tests/assets/camtrap_mini)",
    )


def _overrides(num_classes: int) -> list[str]:
    return ["MODEL.ROI_HEADS.NUM_CLASSES", str(num_classes), "DATALOADER.FILTER_EMPTY_ANNOTATIONS", "False"]


def train(
    config_file: str, root: Path, splits: dict[str, Path], weights: Path, out: Path, iterations: int
) -> tuple[Path, list[str]]:
    """Fine-tune the quick schedule on the train split; returns ``(model_final.pth, class names)``."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from ropevit_det.camera_trap.data.cct import register_cct_dataset
    from ropevit_det.config import load_config
    from ropevit_det.engine import Trainer

    if TRAIN_NAME in DatasetCatalog.list():  # a second run in one process: this run's files, not the first's
        DatasetCatalog.remove(TRAIN_NAME)
        MetadataCatalog.remove(TRAIN_NAME)
    register_cct_dataset(TRAIN_NAME, splits["train"], root, keep_empty_for_training=True)
    classes = list(MetadataCatalog.get(TRAIN_NAME).thing_classes)
    schedule = [
        "SOLVER.MAX_ITER",
        str(iterations),
        "SOLVER.STEPS",
        f"({max(1, iterations * 3 // 4)},)",
        "SOLVER.CHECKPOINT_PERIOD",
        str(iterations),
        "SOLVER.BASE_LR",
        "0.0005",
    ]
    cfg = load_config(
        config_file, [*_overrides(len(classes)), "MODEL.WEIGHTS", str(weights), *schedule, "OUTPUT_DIR", str(out)]
    )
    cfg.DATASETS.TRAIN = (TRAIN_NAME,)
    cfg.DATASETS.TEST = ()  # scored below with the camera-trap metrics, not COCO AP
    cfg.freeze()
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(cfg.dump(), encoding="utf-8")
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    return out / "model_final.pth", classes


def run_camera_trap_demo(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    timings: dict[str, float] = {}
    sample = Path(args.sample_dir)
    if not (sample / "annotations.json").is_file():
        raise SystemExit(
            f"ERROR: --camera-trap needs the sample frames of a clone of the repository ({sample} is "
            "not there: pip installs the package only); run it from a clone, or pass --sample-dir"
        )
    import torch

    from ropevit_det.cli.common import config_arg

    torch.set_num_threads(args.num_threads)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    config_file = config_arg(QUICK_CONFIG)

    # 1-2. the survey, split by location.
    from ropevit_det.camera_trap.data.split import split_by_location

    root, cct_file = sample_survey(sample, out / "data")
    parts, split = split_by_location(
        json.loads(cct_file.read_text()), val_fraction=VAL_FRACTION, seed=SPLIT_SEED, source=str(cct_file)
    )
    splits = {}
    for name, data in parts.items():
        splits[name] = out / "data" / f"sample_cct_{name}.json"
        splits[name].write_text(json.dumps(data, indent=1), encoding="utf-8")
    timings["split"] = time.perf_counter() - start

    # 3. fine-tune from a random-weight birder checkpoint of the quick schedule's shape.
    from ropevit_det.checkpoint.random_weights import write_random_birder_checkpoint
    from ropevit_det.config import load_config

    tick = time.perf_counter()
    vit = load_config(config_file).MODEL.ROPE_VIT
    init = write_random_birder_checkpoint(
        out / "init" / "random_rope_vit.safetensors",
        hidden_dim=vit.EMBED_DIM,
        num_layers=vit.DEPTH,
        num_heads=vit.NUM_HEADS,
        mlp_dim=vit.MLP_DIM,
        size=vit.PRETRAIN_IMG_SIZE,
        class_to_idx={"random": 0},
    )
    model_final, classes = train(config_file, root, splits, init, out / "train", args.iterations)
    timings["fine_tune"] = time.perf_counter() - tick

    # 4. infer over the whole survey (train frames too: the card as it came from the field).
    from ropevit_det.camera_trap.detection.batch_job import run_batch_job
    from ropevit_det.camera_trap.detection.job_settings import BatchJobSettings

    tick = time.perf_counter()
    results = out / "results.json"
    run_batch_job(
        BatchJobSettings(
            config_file=config_file,
            weights=str(model_final),
            input=str(root),
            output=str(results),
            opts=tuple(_overrides(len(classes))),
            threshold=WRITE_THRESHOLD,
            batch_size=2,
            num_workers=0,
            overwrite=True,
            progress=False,
            device="cpu",
        )
    )
    timings["infer"] = time.perf_counter() - tick

    # 5. review page against the held-out ground truth.
    from ropevit_det.camera_trap.postprocess.review import ReviewOptions, write_review

    tick = time.perf_counter()
    review = write_review(
        results, root, out / "review", ReviewOptions(gt_file=splits["val"], workers=0, quiet=True, image_width=640)
    )
    timings["review"] = time.perf_counter() - tick

    # 6. camera-trap metrics on the held-out split.
    from ropevit_det.camera_trap.metrics.evaluate import EvalOptions, evaluate_results
    from ropevit_det.camera_trap.metrics.report import format_table
    from ropevit_det.utils.atomic_json import write_json_atomic

    tick = time.perf_counter()
    report = evaluate_results(results, splits["val"], EvalOptions(image_root=root))
    write_json_atomic(out / "metrics.json", report, indent=1)
    timings["eval_camtrap"] = time.perf_counter() - tick

    # 7. Camtrap DP.
    from ropevit_det.camera_trap.camtrapdp.export import ExportOptions, export_package
    from ropevit_det.camera_trap.camtrapdp.validate import validate_package

    tick = time.perf_counter()
    deployments = write_deployments(out / "data" / "deployments.csv")
    package = export_package(
        results=results,
        deployments=deployments,
        images=root,
        output=out / "camtrapdp",
        options=ExportOptions(skip_undated=True, overwrite=True),
    )
    validation = validate_package(out / "camtrapdp")
    timings["camtrapdp"] = time.perf_counter() - tick
    timings["total"] = _since_process_start(args.process_start)

    summary = {
        "sample": str(sample),
        "split": {"locations": split.locations, "images": split.images},
        "iterations": args.iterations,
        "classes": classes,
        "wall_time_s": timings,
        "outputs": {
            "results": str(results),
            "review": str(review.index_html),
            "metrics": str(out / "metrics.json"),
            "camtrapdp": str(out / "camtrapdp"),
            "model": str(model_final),
        },
        "camtrapdp_valid": validation.valid,
        "torch_threads": torch.get_num_threads(),
    }
    write_json_atomic(out / "demo_results.json", summary, indent=1)
    _explain(
        out,
        split,
        classes,
        results,
        review,
        report,
        format_table(report),
        package,
        validation,
        timings,
        args.iterations,
    )
    return 0 if validation.valid else 1


def _since_process_start(fallback_start: float) -> float:
    """Seconds since this process started (Python's start-up and the torch import included), when psutil can
    tell; else since ``fallback_start`` (a ``perf_counter`` value)."""
    try:
        import psutil
    except ImportError:
        return time.perf_counter() - fallback_start
    return time.time() - psutil.Process().create_time()


def _explain(
    out: Path,
    split: Any,
    classes: list[str],
    results: Path,
    review: Any,
    report: dict[str, Any],
    table: str,
    package: Any,
    validation: Any,
    timings: dict[str, float],
    iterations: int,
) -> None:
    data = json.loads(results.read_text())
    detections = sum(len(e.get("detections") or ()) for e in data["images"])
    valid = "valid" if validation.valid else "INVALID"
    print(f"""
Camera-trap demo on the {sum(split.images.values())} sample frames, {timings["total"]:.0f} s in all, in {out}/.

1. Split by location ({out}/data/sample_cct_{{train,val}}.json): train {split.locations["train"]} \
({split.images["train"]} frames), val {split.locations["val"]} ({split.images["val"]} frames). No camera is in both.
2. Fine-tuned {iterations} steps from RANDOM weights ({out}/train/model_final.pth, classes {classes}). A real run
   starts from the iNat21 weights and trains for hours on a GPU (docs/CAMERA_TRAPS.md).
3. Detections in every frame: {results} ({len(data["images"])} frames, {detections} boxes from confidence
   {WRITE_THRESHOLD}); MegaDetector's format, for Timelapse, AddaxAI and the tools below.
4. Review page: {review.index_html} (open it in a browser; TP/FP/FN/TN pages against the val ground truth).
5. Metrics on the held-out val frames ({out}/metrics.json):
{table}
   What they mean: precision = of the frames flagged "animal", how many had one; recall = of the frames with an
   animal, how many were flagged; the false-positive rate on empty frames = the empty frames you would still look
   at; average precision = how well the scores rank frames with animals above empty ones, over all thresholds;
   COCO AP / AP50 = how well the boxes fit the drawn ones. These come from RANDOM weights trained for seconds on
   another species: read them as chance (a good value here is luck), and {split.images["val"]} frames would say
   little even for a trained model.
6. Camtrap DP package: {out}/camtrapdp/ ({package.media} media, {package.events} events; frames without a
   capture time left out: {len(package.skipped_undated)}); offline validation: {valid}.
""")
    if not validation.valid:
        print(validation.describe(), file=sys.stderr)
