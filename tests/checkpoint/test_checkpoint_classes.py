"""A detector checkpoint says what it is: its classes travel with it, and a config of another class count is
refused with the fix instead of fvcore's "Skip loading" warnings and random heads named class_0 .. class_N."""

from __future__ import annotations

import logging

import pytest
import torch
from detectron2.data import MetadataCatalog

from ropevit_det.camera_trap.detection.categories import detection_classes
from ropevit_det.checkpoint import HeadClassesError, RoPEViTCheckpointer
from ropevit_det.engine.predictor import load_detector
from ropevit_det.engine.trainer import DatasetInfo
from tests.camtrap_helpers import unique_name
from tests.checkpoint_helpers import build_d2_model, tiny_cfg

SPECIES = ["zebra", "impala", "hippopotamus", "warthog", "giraffe"]


def cfg_with(num_classes: int, weights: str = ""):
    cfg = tiny_cfg()
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = num_classes
    cfg.MODEL.WEIGHTS = weights
    return cfg


@pytest.fixture(scope="module")
def species_checkpoint(tmp_path_factory) -> str:
    """A detector trained (here: built) on 5 species, saved as the training run saves it, with dataset_info."""
    model = build_d2_model(cfg_with(len(SPECIES)))
    path = tmp_path_factory.mktemp("ckpt") / "model_final.pth"
    torch.save(
        {
            "model": model.state_dict(),
            "iteration": 10,
            "dataset_info": {"datasets": ["survey_train"], "thing_classes": SPECIES, "num_classes": 5},
        },
        path,
    )
    return str(path)


def test_training_run_records_class_names_and_count():
    name = unique_name("classes")
    MetadataCatalog.get(name).thing_classes = SPECIES
    cfg = cfg_with(len(SPECIES))
    cfg.DATASETS.TRAIN = (name,)
    state = DatasetInfo(cfg).state_dict()
    assert state["thing_classes"] == SPECIES and state["num_classes"] == 5


def test_other_class_count_is_refused_with_the_fix(species_checkpoint):
    with pytest.raises(HeadClassesError) as info:
        load_detector(cfg_with(3, species_checkpoint))
    message = str(info.value)
    assert "has 5 classes (zebra, impala, hippopotamus, warthog, giraffe)" in message
    assert "MODEL.ROI_HEADS.NUM_CLASSES 3" in message and "MODEL.ROI_HEADS.NUM_CLASSES 5" in message
    assert species_checkpoint in message


def test_same_class_count_loads_and_names_come_from_the_checkpoint(species_checkpoint):
    model, meta = load_detector(cfg_with(5, species_checkpoint))
    reference = torch.load(species_checkpoint, weights_only=True)["model"]
    loaded = model.state_dict()["roi_heads.box_predictor.cls_score.weight"]
    torch.testing.assert_close(loaded, reference["roi_heads.box_predictor.cls_score.weight"])
    classes = detection_classes(5, checkpoint_meta=meta)
    assert list(classes.names) == SPECIES and list(classes.ids) == ["1", "2", "3", "4", "5"]


def test_fine_tuning_from_another_detector_says_so(species_checkpoint, caplog):
    """Not strict (a training run starting from another detector): loads, but says which heads start afresh."""
    model = build_d2_model(cfg_with(3))
    with caplog.at_level(logging.WARNING, logger="ropevit_det.checkpoint.checkpointer"):
        RoPEViTCheckpointer(model).load(species_checkpoint)
    warned = [r.getMessage() for r in caplog.records if r.name == "ropevit_det.checkpoint.checkpointer"]
    assert any("has 5 classes" in m and "start from scratch" in m for m in warned), warned
