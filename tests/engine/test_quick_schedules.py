"""Every quick schedule trains a few iterations and evaluates: box-only on the camera-trap frames, the mask
schedules on synthetic shapes with masks (segm AP reported)."""

from __future__ import annotations

import math

import pytest
from detectron2.data import DatasetCatalog
from detectron2.modeling.roi_heads import CascadeROIHeads

from ropevit_det.data import generate_shapes_dataset, register_coco_dataset
from ropevit_det.engine import Trainer
from tests.conftest import CAMTRAP_MINI, CONFIGS, tiny_cfg

QUICK = CONFIGS / "quick_schedules"


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> dict:
    return generate_shapes_dataset(tmp_path_factory.mktemp("shapes") / "data", num_train=4, num_val=2, image_size=128)


def _register(name: str, json_file, images) -> str:
    if name not in DatasetCatalog.list():
        register_coco_dataset(name, json_file, images)
    return name


def _train_and_test(config: str, train: str, test: str, num_classes: int, out) -> tuple[set, dict, object]:
    """The names of the losses trained, the evaluation results, and the trained model's ROI heads."""
    cfg = tiny_cfg(
        QUICK / config,
        [
            "DATASETS.TRAIN",
            f"('{train}',)",
            "DATASETS.TEST",
            f"('{test}',)",
            "OUTPUT_DIR",
            str(out),
            "MODEL.ROI_HEADS.NUM_CLASSES",
            str(num_classes),
            "SOLVER.MAX_ITER",
            "2",
            "SOLVER.CHECKPOINT_PERIOD",
            "100",
            "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
            "0.0",  # an untrained model still predicts, so AP is a number
        ],
    )
    cfg.freeze()
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    assert trainer.iter == 2  # TrainerBase leaves iter at MAX_ITER after the last step
    losses = {k for k in trainer.storage.latest() if k.startswith("loss_")}
    return losses, Trainer.test(cfg, trainer.model), trainer.model.roi_heads


def test_box_only_schedule_trains_on_camera_trap_frames(tmp_path):
    data = _register("quick_camtrap", CAMTRAP_MINI / "annotations.json", CAMTRAP_MINI / "images")
    losses, results, _ = _train_and_test("ropevit_faster_rcnn_instant_test.yaml", data, data, 1, tmp_path)
    assert "loss_mask" not in losses and "loss_box_reg" in losses
    assert set(results) == {"bbox"} and math.isfinite(results["bbox"]["AP"])


@pytest.mark.parametrize("config", ["ropevit_mrcnn_instant_test.yaml", "ropevit_cascade_mrcnn_instant_test.yaml"])
def test_mask_schedules_train_masks_and_report_segm_ap(config, shapes, tmp_path):
    train = _register("quick_shapes_train", shapes["train_json"], shapes["train_images"])
    val = _register("quick_shapes_val", shapes["val_json"], shapes["val_images"])
    cfg = tiny_cfg(QUICK / config)
    assert cfg.MODEL.MASK_ON
    losses, results, roi_heads = _train_and_test(config, train, val, 3, tmp_path)
    assert "loss_mask" in losses
    if "cascade" in config:  # the three cascade stages ran: each logs its own box losses
        assert isinstance(roi_heads, CascadeROIHeads) and len(roi_heads.box_predictor) == 3
        assert {f"loss_{k}_stage{i}" for k in ("cls", "box_reg") for i in range(3)} <= losses, sorted(losses)
        assert "loss_cls" not in losses
    else:
        assert not isinstance(roi_heads, CascadeROIHeads) and {"loss_cls", "loss_box_reg"} <= losses
    assert set(results) == {"bbox", "segm"}
    assert math.isfinite(results["segm"]["AP"]) and math.isfinite(results["bbox"]["AP"])
