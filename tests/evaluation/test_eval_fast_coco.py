"""faster-coco-eval as detectron2's COCO evaluation engine: same numbers as pycocotools' official COCOeval."""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.evaluation import COCOEvaluator
from detectron2.evaluation import coco_evaluation as d2_coco_evaluation
from detectron2.structures import Boxes, Instances
from faster_coco_eval import COCOeval_faster
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ropevit_det.data import register_coco_dataset
from ropevit_det.evaluation import FasterCOCOEvaluator, build_coco_evaluator, detectron2_has_fast_cocoeval
from tests.data_helpers import unique_name, write_coco

TOLERANCE = 1e-4
WIDTH, HEIGHT = 240, 200  # not square, so that a swapped height/width would show
CATEGORY_IDS = (3, 7, 12)  # non-contiguous, as in COCO


def _polygon(rng: np.random.Generator, cx: float, cy: float, radius: float) -> list[float]:
    """A star-shaped polygon around (cx, cy), clipped to the image."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, size=int(rng.integers(5, 9))))
    radii = radius * rng.uniform(0.6, 1.0, size=len(angles))
    xs = np.clip(cx + radii * np.cos(angles), 0, WIDTH - 1)
    ys = np.clip(cy + radii * np.sin(angles), 0, HEIGHT - 1)
    return np.stack([xs, ys], axis=1).reshape(-1).round(2).tolist()


def _perturbed(rng: np.random.Generator, polygon: list[float], cx: float, cy: float, radius: float) -> list[float]:
    """The polygon scaled, shifted and with jittered vertices: IoUs with the original spread over 0.5-0.95."""
    xy = np.asarray(polygon).reshape(-1, 2)
    xy = (xy - [cx, cy]) * rng.uniform(0.85, 1.15) + [cx, cy] + rng.normal(0, 0.08 * radius, size=2)
    xy = xy + rng.normal(0, 0.04 * radius, size=xy.shape)
    xy = np.clip(xy, 0, [WIDTH - 1, HEIGHT - 1])
    return xy.reshape(-1).round(2).tolist()


def _box(polygon: list[float]) -> list[float]:
    xs, ys = polygon[0::2], polygon[1::2]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def _rle(polygon: list[float]) -> dict[str, Any]:
    rle = mask_util.merge(mask_util.frPyObjects([polygon], HEIGHT, WIDTH))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def _gt_and_predictions(seed: int = 0, num_images: int = 80) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Ground truth with polygon masks over all COCO size ranges (plus a few crowd regions), and noisy,
    partly wrong predictions: duplicates, class confusions, misses and false positives."""
    rng = np.random.default_rng(seed)
    images, annotations, predictions = [], [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "file_name": f"{image_id}.png", "width": WIDTH, "height": HEIGHT})
        for _ in range(int(rng.integers(0, 6))):
            radius = float(rng.choice([rng.uniform(4, 14), rng.uniform(20, 45), rng.uniform(60, 90)]))
            cx, cy = rng.uniform(radius * 0.5, WIDTH - radius * 0.5), rng.uniform(radius * 0.5, HEIGHT - radius * 0.5)
            polygon = _polygon(rng, cx, cy, radius)
            category = int(rng.choice(CATEGORY_IDS))
            crowd = rng.random() < 0.05
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category,
                    "bbox": _box(polygon),
                    "area": float(mask_util.area(mask_util.frPyObjects([polygon], HEIGHT, WIDTH))[0]),
                    "iscrowd": int(crowd),
                    "segmentation": _rle(polygon) if crowd else [polygon],
                }
            )
            for _ in range(int(rng.integers(0, 3))):  # 0 (a miss), 1 or 2 (a duplicate) detections
                noisy = _perturbed(rng, polygon, cx, cy, radius)
                wrong_class = rng.random() < 0.15
                predictions.append(
                    {
                        "image_id": image_id,
                        "category_id": int(rng.choice(CATEGORY_IDS)) if wrong_class else category,
                        "bbox": _box(noisy),
                        "segmentation": _rle(noisy),
                        "score": float(rng.uniform(0.05, 1.0)),
                    }
                )
        for _ in range(int(rng.integers(0, 3))):  # false positives
            noisy = _polygon(rng, rng.uniform(20, WIDTH - 20), rng.uniform(20, HEIGHT - 20), rng.uniform(5, 40))
            predictions.append(
                {
                    "image_id": image_id,
                    "category_id": int(rng.choice(CATEGORY_IDS)),
                    "bbox": _box(noisy),
                    "segmentation": _rle(noisy),
                    "score": float(rng.uniform(0.05, 0.6)),
                }
            )
    categories = [{"id": c, "name": f"class{c}"} for c in CATEGORY_IDS]
    return {"images": images, "annotations": annotations, "categories": categories}, predictions


@pytest.fixture(scope="module")
def gt_and_predictions(tmp_path_factory) -> tuple[Path, dict[str, Any], list[dict[str, Any]]]:
    gt, predictions = _gt_and_predictions()
    assert len(predictions) > 200 and len(gt["annotations"]) > 100
    json_file, _ = write_coco(tmp_path_factory.mktemp("fast_coco"), gt, create_images=False)
    return json_file, gt, predictions


def _summary(cocoeval_cls: type, json_file: Path, predictions: list[dict], iou_type: str) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(json_file))  # a fresh ground truth per run: COCOeval mutates it
        results = copy.deepcopy(predictions)
        if iou_type == "segm":  # as detectron2 does: the mask area, not the box area, decides the size range
            for r in results:
                r.pop("bbox")
        cocoeval = cocoeval_cls(gt, gt.loadRes(results), iou_type)
        cocoeval.evaluate()
        cocoeval.accumulate()
        cocoeval.summarize()
    return np.asarray(cocoeval.stats[:12], dtype=np.float64)


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_faster_coco_eval_matches_official_cocoeval(gt_and_predictions, iou_type):
    json_file, _, predictions = gt_and_predictions
    official = _summary(COCOeval, json_file, predictions, iou_type)
    faster = _summary(COCOeval_faster, json_file, predictions, iou_type)
    # The comparison means something only if every statistic is defined and non-trivial.
    assert np.all(official > 0.02) and np.all(official < 0.98), official
    np.testing.assert_allclose(faster, official, atol=TOLERANCE, rtol=0)


def _detectron2_outputs(gt: dict, predictions: list[dict]) -> tuple[list[dict], list[dict]]:
    """The predictions as a detectron2 model returns them: contiguous classes, XYXY boxes, bool masks."""
    to_contiguous = {c: i for i, c in enumerate(sorted(CATEGORY_IDS))}
    inputs, outputs = [], []
    for img in gt["images"]:
        preds = [p for p in predictions if p["image_id"] == img["id"]]
        instances = Instances((img["height"], img["width"]))
        xywh = torch.tensor([p["bbox"] for p in preds], dtype=torch.float32).reshape(-1, 4)
        instances.pred_boxes = Boxes(torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1))
        instances.scores = torch.tensor([p["score"] for p in preds], dtype=torch.float32)
        instances.pred_classes = torch.tensor([to_contiguous[p["category_id"]] for p in preds], dtype=torch.int64)
        masks = [mask_util.decode({**p["segmentation"], "counts": p["segmentation"]["counts"].encode()}) for p in preds]
        instances.pred_masks = (
            torch.from_numpy(np.stack(masks).astype(bool))
            if masks
            else torch.zeros((0, img["height"], img["width"]), dtype=torch.bool)
        )
        inputs.append({"image_id": img["id"], "height": img["height"], "width": img["width"]})
        outputs.append({"instances": instances})
    return inputs, outputs


def _run(evaluator, inputs, outputs) -> dict:
    evaluator.reset()
    evaluator.process(inputs, outputs)
    return evaluator.evaluate()


class _CallCounter:
    """Counts calls of a method while delegating to the original."""

    def __init__(self, monkeypatch, cls: type, name: str) -> None:
        self.calls = 0
        original = getattr(cls, name)

        def counted(obj, *args, **kwargs):
            self.calls += 1
            return original(obj, *args, **kwargs)

        monkeypatch.setattr(cls, name, counted)


def test_evaluator_uses_faster_coco_eval_and_matches_official_results(gt_and_predictions, tmp_path, monkeypatch):
    json_file, gt, predictions = gt_and_predictions
    name = unique_name("fast_coco_eval")
    register_coco_dataset(name, json_file, json_file.parent / "images")
    inputs, outputs = _detectron2_outputs(gt, predictions)

    official = _run(COCOEvaluator(name, distributed=False, use_fast_impl=False), inputs, outputs)
    faster_calls = _CallCounter(monkeypatch, COCOeval_faster, "evaluate")
    official_calls = _CallCounter(monkeypatch, COCOeval, "evaluate")
    original_opt = d2_coco_evaluation.COCOeval_opt
    evaluator = FasterCOCOEvaluator(name, distributed=False, output_dir=str(tmp_path))
    fast = _run(evaluator, inputs, outputs)

    assert (faster_calls.calls, official_calls.calls) == (2, 0)  # bbox and segm, both by faster-coco-eval
    assert d2_coco_evaluation.COCOeval_opt is original_opt  # detectron2's module is left as it was
    assert set(fast) == set(official) == {"bbox", "segm"}
    for task in ("bbox", "segm"):
        assert set(fast[task]) == set(official[task])
        assert {"AP-class3", "AP-class7", "AP-class12"} <= set(fast[task])  # per-class AP, original names
        for key, value in official[task].items():
            assert fast[task][key] == pytest.approx(value, abs=100 * TOLERANCE), (task, key)  # AP in percent
    # The evaluator mapped contiguous classes back to the dataset's ids, like detectron2's.
    saved = json.loads((tmp_path / "coco_instances_results.json").read_text())
    assert {r["category_id"] for r in saved} == set(CATEGORY_IDS)


def test_detects_missing_compiled_cocoeval():
    try:
        importlib.import_module("detectron2._C")
        compiled = True
    except ImportError:
        compiled = False
    assert detectron2_has_fast_cocoeval() == compiled


def test_build_coco_evaluator_picks_engine(gt_and_predictions):
    json_file, _, _ = gt_and_predictions
    name = unique_name("fast_coco_build")
    register_coco_dataset(name, json_file, json_file.parent / "images")
    auto = build_coco_evaluator(name, None)
    if detectron2_has_fast_cocoeval():
        assert type(auto) is COCOEvaluator and auto._use_fast_impl
    else:
        assert isinstance(auto, FasterCOCOEvaluator) and auto.engine == "faster_coco_eval"
        with pytest.raises(RuntimeError, match="detectron2._C"):
            build_coco_evaluator(name, None, engine="detectron2")
    official = build_coco_evaluator(name, None, tasks=("bbox",), engine="pycocotools")
    assert type(official) is COCOEvaluator and not official._use_fast_impl and official._tasks == ("bbox",)
    with pytest.raises(ValueError, match="Unknown COCO evaluation engine"):
        build_coco_evaluator(name, None, engine="fastest")


def test_keypoints_keep_the_official_cocoeval(gt_and_predictions):
    # faster-coco-eval's keypoint path needs its own COCO class; detectron2 passes pycocotools' COCO.
    json_file, _, predictions = gt_and_predictions
    name = unique_name("fast_coco_kpt")
    register_coco_dataset(name, json_file, json_file.parent / "images")
    evaluator = FasterCOCOEvaluator(name, distributed=False)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(json_file))
        dt = gt.loadRes(copy.deepcopy(predictions))
    assert type(evaluator._make_cocoeval(gt, dt, "bbox")) is COCOeval_faster
    assert type(evaluator._make_cocoeval(gt, dt, "segm")) is COCOeval_faster
    assert type(evaluator._make_cocoeval(gt, dt, "keypoints")) is COCOeval
