"""Evaluation and data-pipeline throughput (issue 6, part 4), behind ``tools/benchmark_eval.py``.

* COCO evaluation: faster-coco-eval (C++) against pycocotools (Python) on a synthetic set the size of a
  COCO validation pass, with the same AP required from both.
* Data loading: images/s of JPEG decoding + the LSJ augmentation + annotation transforms that training
  uses (detectron2 ``DatasetMapper`` with ``lsj_augmentations``), to compare with the model's steps/s.
"""

from __future__ import annotations

import contextlib
import copy
import io
import time
from pathlib import Path

import numpy as np

__all__ = ["coco_eval_benchmark", "loader_benchmark", "synthetic_coco", "write_synthetic_jpegs"]

IMAGE_W, IMAGE_H = 640, 480


def _random_boxes(rng: np.random.Generator, n: int, width: int, height: int) -> np.ndarray:
    """(n, 4) XYWH boxes with areas log-uniform over COCO's small/medium/large ranges (16^2 .. 400^2)."""
    areas = np.exp(rng.uniform(np.log(16**2), np.log(400**2), size=n))
    aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0), size=n))
    w = np.minimum(np.sqrt(areas * aspect), width - 1)
    h = np.minimum(np.sqrt(areas / aspect), height - 1)
    x = rng.uniform(0, 1, size=n) * (width - w)
    y = rng.uniform(0, 1, size=n) * (height - h)
    return np.stack([x, y, w, h], axis=1).round(2)


def _box_polygon(box: np.ndarray) -> list[list[float]]:
    x, y, w, h = (float(v) for v in box)
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def synthetic_coco(
    num_images: int, dets_per_image: int = 100, num_classes: int = 80, seed: int = 0, with_segm: bool = False
) -> tuple[dict, list[dict]]:
    """A COCO ground-truth dict and a detection list with ``dets_per_image`` detections per image.

    About 7 objects per image (COCO's mean); per object, a detection jittered around it with the right
    class 90% of the time and a high score; the rest of the image's budget is false positives with
    random classes, boxes and lower scores. So AP is neither 0 nor 1 and every code path is exercised.
    With ``with_segm``, objects and detections carry rectangle polygons (segm evaluation).
    """
    rng = np.random.default_rng(seed)
    images, annotations, detections = [], [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "width": IMAGE_W, "height": IMAGE_H, "file_name": f"{image_id:06d}.jpg"})
        n_gt = int(rng.poisson(6.3)) + 1
        gt_boxes = _random_boxes(rng, n_gt, IMAGE_W, IMAGE_H)
        gt_classes = rng.integers(1, num_classes + 1, size=n_gt)
        for box, cls in zip(gt_boxes, gt_classes, strict=True):
            ann = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": int(cls),
                "bbox": box.tolist(),
                "area": float(box[2] * box[3]),
                "iscrowd": 0,
            }
            if with_segm:
                ann["segmentation"] = _box_polygon(box)
            annotations.append(ann)
        n_tp = min(n_gt, dets_per_image)
        jitter = rng.normal(0, 0.08, size=(n_tp, 4)) * np.repeat(gt_boxes[:n_tp, 2:], 2, axis=1)
        tp_boxes = gt_boxes[:n_tp] + jitter
        tp_boxes[:, 2:] = np.maximum(tp_boxes[:, 2:], 1.0)
        wrong = rng.uniform(size=n_tp) < 0.1
        tp_classes = np.where(wrong, rng.integers(1, num_classes + 1, size=n_tp), gt_classes[:n_tp])
        n_fp = dets_per_image - n_tp
        boxes = np.concatenate([tp_boxes, _random_boxes(rng, n_fp, IMAGE_W, IMAGE_H)])
        classes = np.concatenate([tp_classes, rng.integers(1, num_classes + 1, size=n_fp)])
        scores = np.concatenate([rng.uniform(0.3, 1.0, size=n_tp), rng.uniform(0.0, 0.7, size=n_fp)])
        for box, cls, score in zip(boxes.round(2), classes, scores.round(4), strict=True):
            det = {"image_id": image_id, "category_id": int(cls), "bbox": box.tolist(), "score": float(score)}
            if with_segm:
                det["segmentation"] = _box_polygon(box)
            detections.append(det)
    categories = [{"id": i, "name": f"class_{i}"} for i in range(1, num_classes + 1)]
    return {"images": images, "annotations": annotations, "categories": categories}, detections


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _run_cocoeval(cocoeval_cls, gt, dt, iou_type: str) -> tuple[np.ndarray, float]:
    """evaluate + accumulate + summarize; returns the 12 summary stats and the seconds taken."""

    def run():
        evaluator = cocoeval_cls(gt, dt, iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        with contextlib.redirect_stdout(io.StringIO()):  # summarize() prints the table
            evaluator.summarize()
        return np.asarray(evaluator.stats, dtype=np.float64)

    return _timed(run)


def coco_eval_benchmark(
    num_images: int = 5000, dets_per_image: int = 100, iou_types: tuple[str, ...] = ("bbox",), seed: int = 0
) -> dict:
    """Time pycocotools' COCOeval against faster-coco-eval on the same synthetic set; compare their AP.

    Three timings per IoU type, each of evaluate + accumulate + summarize (loading results is reported
    apart, since each library loads differently):
    * ``pycocotools``: the official implementation (detectron2's fallback without its C++ extension);
    * ``faster_coco_eval``: ``COCOeval_faster`` on its own ``COCO`` objects;
    * ``faster_coco_eval_on_pycocotools``: ``COCOeval_faster`` on pycocotools ``COCO`` objects, which
      is exactly how ``ropevit_det.evaluation.FasterCOCOEvaluator`` calls it.
    """
    from faster_coco_eval import COCO as FasterCOCO
    from faster_coco_eval import COCOeval_faster
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_dict, dets = synthetic_coco(num_images, dets_per_image, seed=seed, with_segm="segm" in iou_types)
    results = {
        "num_images": num_images,
        "detections": len(dets),
        "gt_objects": len(gt_dict["annotations"]),
        "by_iou_type": {},
    }
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints index-building messages
        gt_py = COCO()
        gt_py.dataset = copy.deepcopy(gt_dict)
        gt_py.createIndex()
        dt_py, load_py = _timed(lambda: gt_py.loadRes(copy.deepcopy(dets)))
    gt_fast = FasterCOCO(copy.deepcopy(gt_dict))
    dt_fast, load_fast = _timed(lambda: gt_fast.loadRes(copy.deepcopy(dets)))
    results["load_results_seconds"] = {"pycocotools": load_py, "faster_coco_eval": load_fast}
    for iou_type in iou_types:
        with contextlib.redirect_stdout(io.StringIO()):
            stats_py, t_py = _run_cocoeval(COCOeval, gt_py, dt_py, iou_type)
        stats_fast, t_fast = _run_cocoeval(COCOeval_faster, gt_fast, dt_fast, iou_type)
        stats_mixed, t_mixed = _run_cocoeval(COCOeval_faster, gt_py, dt_py, iou_type)
        results["by_iou_type"][iou_type] = {
            "seconds": {"pycocotools": t_py, "faster_coco_eval": t_fast, "faster_coco_eval_on_pycocotools": t_mixed},
            "speedup": t_py / t_fast,
            "speedup_as_used_by_evaluator": t_py / t_mixed,
            "AP": {"pycocotools": float(stats_py[0]), "faster_coco_eval": float(stats_fast[0])},
            "max_abs_stat_difference": float(
                max(np.abs(stats_py - stats_fast).max(), np.abs(stats_py - stats_mixed).max())
            ),
            "stats_pycocotools": stats_py.tolist(),
        }
    return results


def write_synthetic_jpegs(directory: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` 640x480 JPEGs (quality 90) with smooth colour and texture, like photos in size and entropy."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        coarse = rng.uniform(0, 255, size=(IMAGE_H // 32, IMAGE_W // 32, 3)).astype(np.uint8)
        smooth = np.asarray(Image.fromarray(coarse).resize((IMAGE_W, IMAGE_H), Image.BICUBIC), dtype=np.float32)
        pixels = np.clip(smooth + rng.normal(0, 12, size=smooth.shape), 0, 255).astype(np.uint8)
        path = directory / f"{i:05d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def _dataset_dicts(paths: list[Path], seed: int = 0) -> list[dict]:
    """detectron2 dataset dicts with ~7 polygon-annotated objects per image (COCO-like)."""
    from detectron2.structures import BoxMode
    from PIL import Image

    rng = np.random.default_rng(seed)
    dicts = []
    for i, path in enumerate(paths):
        with Image.open(path) as im:
            width, height = im.size
        boxes = _random_boxes(rng, int(rng.poisson(6.3)) + 1, width, height)
        annotations = [
            {
                "bbox": box.tolist(),
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": int(rng.integers(0, 80)),
                "segmentation": _box_polygon(box),
                "iscrowd": 0,
            }
            for box in boxes
        ]
        dicts.append(
            {"file_name": str(path), "image_id": i, "height": height, "width": width, "annotations": annotations}
        )
    return dicts


def loader_benchmark(paths: list[Path], config_file: Path, passes: int = 2) -> dict:
    """Images/s of one data-loading worker: read + decode the JPEG, LSJ, annotations to ``Instances``.

    The mapper is the training one (``Trainer.build_train_loader``): ``DatasetMapper(is_train=True,
    augmentations=lsj_augmentations(cfg), recompute_boxes=MASK_ON)`` on ``config_file``'s settings.
    Runs in this process (one worker); ``DATALOADER.NUM_WORKERS`` processes scale it on free cores.
    """
    from detectron2.data import DatasetMapper

    from ropevit_det.config import load_config
    from ropevit_det.engine.trainer import lsj_augmentations

    cfg = load_config(str(config_file))
    mapper = DatasetMapper(cfg, is_train=True, augmentations=lsj_augmentations(cfg), recompute_boxes=cfg.MODEL.MASK_ON)
    dicts = _dataset_dicts(paths)
    for d in dicts[:2]:  # warm-up: imports, first-call overheads
        mapper(copy.deepcopy(d))
    start = time.perf_counter()
    count = 0
    for _ in range(passes):
        for d in dicts:
            out = mapper(copy.deepcopy(d))
            count += 1
    seconds = time.perf_counter() - start
    return {
        "images": count,
        "seconds": seconds,
        "images_per_second_per_worker": count / seconds,
        "output_size": list(out["image"].shape),
        "lsj_image_size": cfg.INPUT.LSJ.IMAGE_SIZE,
        "num_workers_in_config": cfg.DATALOADER.NUM_WORKERS,
    }
