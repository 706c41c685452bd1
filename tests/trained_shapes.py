"""A detector whose detections are not noise: the demo's model, trained briefly inside the test session.

Random weights give near-tied scores that any numerical change reorders, so comparisons between an exact path
(fp32 eager) and a faster one (bf16, an export, quantization) need a model that has learned something. The demo
config (a 2-block, 96-wide ViT/14 here, one class "shape") learns the synthetic shapes well enough in 120
iterations to score its best boxes near 0.9. Trained once per test session (``shapes_detector`` in
conftest.py) and shared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

TRAIN_NAME = "tests_shapes_train"
# The model: the demo config, boxes only, with a 2-block 96-wide ViT. Needed again at inference.
MODEL_OVERRIDES = [
    "MODEL.MASK_ON",
    "False",
    "MODEL.ROI_HEADS.NUM_CLASSES",
    "1",
    "MODEL.ROPE_VIT.DEPTH",
    "2",
    "MODEL.ROPE_VIT.EMBED_DIM",
    "96",
    "MODEL.ROPE_VIT.MLP_DIM",
    "384",
    # A briefly trained model leaves clusters of overlapping near-duplicate boxes around some shapes; which one
    # of a cluster NMS keeps then hangs on score differences of a few thousandths, in fp32 as in any fast path.
    # A stricter test-time NMS keeps one box per shape, as a converged model would.
    "MODEL.ROI_HEADS.NMS_THRESH_TEST",
    "0.3",
]
TRAIN_OVERRIDES = [
    "SOLVER.MAX_ITER",
    "120",
    "SOLVER.WARMUP_ITERS",
    "10",
    "SOLVER.BASE_LR",
    "0.001",
    "SOLVER.LR_SCHEDULER_NAME",
    "WarmupMultiStepLR",  # constant after warm-up: a cosine to 0 over 120 steps
    # left the scores near 0.5
    "SOLVER.IMS_PER_BATCH",
    "8",
    "DATASETS.TEST",
    "()",
    "SEED",
    "0",
]


@dataclass(frozen=True)
class ShapesDetector:
    """The trained model: its zoo config file, the overrides that rebuild it (weights included), held-out images."""

    config_file: str
    overrides: list[str]
    weights: Path
    val_images: list[Path]


def train_shapes_detector(out_dir: Path) -> ShapesDetector:
    from detectron2.data import DatasetCatalog
    from detectron2.utils.env import seed_all_rng

    from ropevit_det import model_zoo
    from ropevit_det.data import generate_shapes_dataset, register_coco_dataset
    from ropevit_det.engine import Trainer

    paths = generate_shapes_dataset(out_dir / "data", 200, 6, seed=0, image_size=160)
    # One class, "shape": finding the shapes is learnt in a few dozen steps, telling circles from squares takes
    # far longer, and confident boxes are all these tests need.
    coco = json.loads(paths["train_json"].read_text())
    coco["categories"] = [{"id": 1, "name": "shape"}]
    for annotation in coco["annotations"]:
        annotation["category_id"] = 1
    one_class_json = out_dir / "train_one_class.json"
    one_class_json.write_text(json.dumps(coco))
    if TRAIN_NAME not in DatasetCatalog.list():
        register_coco_dataset(TRAIN_NAME, one_class_json, paths["train_images"])
    config_file = model_zoo.get_config_file("demo/ropevit_shapes_cpu.yaml")
    overrides = [
        *MODEL_OVERRIDES,
        *TRAIN_OVERRIDES,
        "DATASETS.TRAIN",
        f"('{TRAIN_NAME}',)",
        "OUTPUT_DIR",
        str(out_dir / "train"),
    ]
    cfg = model_zoo.get_config("demo/ropevit_shapes_cpu.yaml", overrides)
    # One thread, as the demo does: on 2 cores shared with anything else, 2 OpenMP threads wait on each other
    # and a step takes several times longer; on idle cores 2 threads gain only about a quarter.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    seed_all_rng(0)  # the same initial weights and data order on every run (Trainer alone does not seed)
    try:
        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=False)
        trainer.train()
    finally:
        torch.set_num_threads(threads)
    weights = out_dir / "train" / "model_final.pth"
    assert weights.is_file()
    return ShapesDetector(
        config_file=config_file,
        overrides=[*MODEL_OVERRIDES, "MODEL.WEIGHTS", str(weights)],
        weights=weights,
        val_images=sorted(paths["val_images"].glob("*.png")),
    )


Detection = tuple[list[float], float, int]  # (box x1 y1 x2 y2, score, class)


def detections_of(instances) -> list[Detection]:
    return [
        (b.tolist(), float(s), int(c))
        for b, s, c in zip(instances.pred_boxes.tensor, instances.scores, instances.pred_classes)
    ]


def assert_matched(
    reference: list[Detection],
    candidate: list[Detection],
    *,
    min_score: float = 0.3,
    min_iou: float = 0.9,
    max_score_diff: float | None = None,
    label: str = "",
) -> int:
    """Every reference detection above ``min_score`` has a candidate of its class with IoU >= ``min_iou`` (and,
    if given, a score within ``max_score_diff``). Returns how many reference detections were checked."""
    from detectron2.structures import Boxes, pairwise_iou

    confident = [d for d in reference if d[1] > min_score]
    for box, score, cls in confident:
        same_class = [d for d in candidate if d[2] == cls]
        assert same_class, f"{label}: reference detection {box} (class {cls}, {score:.3f}) has no match of its class"
        ious = pairwise_iou(Boxes(torch.tensor([box])), Boxes(torch.tensor([d[0] for d in same_class])))[0]
        best = int(ious.argmax())
        assert ious[best] >= min_iou, f"{label}: reference box {box} ({score:.3f}): best IoU {ious[best]:.3f}"
        if max_score_diff is not None:
            assert abs(same_class[best][1] - score) <= max_score_diff, (label, score, same_class[best][1])
    return len(confident)


def load_shapes_model(detector: ShapesDetector) -> tuple[object, torch.nn.Module]:
    """The trained detector rebuilt from its config, in eval mode: ``(cfg, model)``."""
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from ropevit_det import model_zoo

    cfg = model_zoo.get_config("demo/ropevit_shapes_cpu.yaml", detector.overrides)
    model = build_model(cfg).eval()
    DetectionCheckpointer(model).load(str(detector.weights))
    return cfg, model


def shapes_inputs(detector: ShapesDetector) -> list[dict]:
    """The held-out images as detectron2 inputs (RGB, uint8 CHW, the model's own format)."""
    import numpy as np
    from PIL import Image

    inputs = []
    for path in detector.val_images:
        rgb = torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)
        inputs.append({"image": rgb, "height": rgb.shape[1], "width": rgb.shape[2]})
    return inputs
