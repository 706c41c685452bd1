"""LVIS: a tiny LVIS-format dataset, written here, trains a few iterations with the LVIS recipe (repeat-factor
sampling, sigmoid CE with federated loss) and is evaluated by detectron2's LVISEvaluator."""

from __future__ import annotations

import json
import math

import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog

from ropevit_det.data import generate_shapes_dataset
from ropevit_det.data.lvis_datasets import lvis_format_metadata, register_lvis_format_dataset
from ropevit_det.engine import Trainer
from ropevit_det.evaluation.lvis import LVISEvaluatorNumpy2
from tests.conftest import CONFIGS, tiny_cfg

# The LVIS recipe, shrunk: small images instead of LSJ at 1024, narrow heads, few RoIs.
SMALL = [
    "INPUT.LSJ.ENABLED",
    "False",
    "INPUT.MIN_SIZE_TRAIN",
    "(128,)",
    "INPUT.MAX_SIZE_TRAIN",
    "160",
    "INPUT.MIN_SIZE_TEST",
    "128",
    "INPUT.MAX_SIZE_TEST",
    "160",
    "MODEL.SFP.OUT_CHANNELS",
    "32",
    "MODEL.ROI_BOX_HEAD.CONV_DIM",
    "32",
    "MODEL.ROI_BOX_HEAD.FC_DIM",
    "64",
    "MODEL.ROI_MASK_HEAD.CONV_DIM",
    "32",
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE",
    "64",
    "MODEL.RPN.POST_NMS_TOPK_TRAIN",
    "100",
    "MODEL.RPN.POST_NMS_TOPK_TEST",
    "50",
    "SOLVER.IMS_PER_BATCH",
    "2",
    "SOLVER.MAX_ITER",
    "2",
    "SOLVER.AMP.ENABLED",
    "False",
    "DATALOADER.NUM_WORKERS",
    "0",
    "TEST.EVAL_PERIOD",
    "0",
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
    "0.0",
    "MODEL.ROI_BOX_HEAD.FED_LOSS_NUM_CLASSES",
    "2",  # classes sampled per step: at most the 3 classes here
]


def to_lvis_format(coco_json, split: str, out) -> None:
    """The synthetic COCO file in LVIS's format: coco_url, per-image exhaustiveness lists, category frequency."""
    data = json.loads(coco_json.read_text())
    for i, image in enumerate(data["images"]):
        image["coco_url"] = f"http://images.example/{split}/{image.pop('file_name')}"
        image["not_exhaustive_category_ids"] = [2] if i == 0 else []
        image["neg_category_ids"] = [3] if i == 1 else []
    for category, frequency in zip(data["categories"], "fcr"):
        category["frequency"] = frequency
        category["synset"] = category["name"] + ".n.01"
    for ann in data["annotations"]:
        ann.pop("iscrowd", None)
    out.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def lvis_data(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("lvis")
    shapes = generate_shapes_dataset(root / "shapes", num_train=4, num_val=2, image_size=128)
    names = []
    for split in ("train", "val"):
        to_lvis_format(shapes[f"{split}_json"], split, root / f"lvis_{split}.json")
        name = f"tiny_lvis_{split}"
        if name not in DatasetCatalog.list():
            register_lvis_format_dataset(name, root / f"lvis_{split}.json", root / "shapes")
        names.append(name)
    return names


def test_metadata_comes_from_the_file(lvis_data):
    meta = MetadataCatalog.get(lvis_data[0])
    assert meta.evaluator_type == "lvis" and meta.thing_classes == ["circle", "square", "triangle"]
    assert [c["id"] for c in meta.class_image_count] == [1, 2, 3]
    assert all(c["image_count"] >= 1 for c in meta.class_image_count)


def test_lvis_recipe_trains_and_lvis_evaluator_reports(lvis_data, tmp_path):
    train, val = lvis_data
    cfg = tiny_cfg(
        CONFIGS / "LVIS" / "ropevit_mrcnn.yaml",
        SMALL
        + [
            "DATASETS.TRAIN",
            f"('{train}',)",
            "DATASETS.TEST",
            f"('{val}',)",
            "MODEL.ROI_HEADS.NUM_CLASSES",
            "3",
            "OUTPUT_DIR",
            str(tmp_path),
        ],
    )
    assert cfg.DATALOADER.SAMPLER_TRAIN == "RepeatFactorTrainingSampler" and cfg.DATALOADER.REPEAT_THRESHOLD == 0.001
    cfg.freeze()
    trainer = Trainer(cfg)
    predictor = trainer.model.roi_heads.box_predictor
    assert predictor.use_sigmoid_ce and predictor.use_fed_loss
    # Federated-loss weights: image counts of the tiny file, to the power 0.5.
    counts = [c["image_count"] for c in MetadataCatalog.get(train).class_image_count]
    torch.testing.assert_close(predictor.fed_loss_cls_weights, torch.tensor(counts, dtype=torch.float) ** 0.5)
    trainer.resume_or_load(resume=False)
    trainer.train()
    assert isinstance(Trainer.build_evaluator(cfg, val), LVISEvaluatorNumpy2)
    results = Trainer.test(cfg, trainer.model)
    assert set(results) == {"bbox", "segm"}
    for task in ("bbox", "segm"):
        assert {"AP", "APr", "APc", "APf"} <= set(results[task]) and math.isfinite(results[task]["AP"])


def test_category_ids_must_be_one_to_n(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps({"categories": [{"id": 0, "name": "a"}], "annotations": []}))
    with pytest.raises(ValueError, match=r"LVIS category ids must be 1..1"):
        lvis_format_metadata(tmp_path / "bad.json")


def test_federated_loss_sampling_more_classes_than_exist_is_refused():
    with pytest.raises(ValueError, match=r"FED_LOSS_NUM_CLASSES 50 exceeds MODEL.ROI_HEADS.NUM_CLASSES 3"):
        tiny_cfg(CONFIGS / "LVIS" / "ropevit_mrcnn.yaml", ["MODEL.ROI_HEADS.NUM_CLASSES", "3"])
