"""The yacs configs and the LazyConfig set express one recipe: same model (module classes, parameter names and
shapes), same per-parameter lr and weight decay, same lr schedule, same train augmentations, same run settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from detectron2.config import instantiate
from detectron2.data import DatasetMapper
from detectron2.modeling import build_model
from detectron2.solver import LRMultiplier
from omegaconf import ListConfig

from ropevit_det import model_zoo
from ropevit_det.config import load_config
from ropevit_det.engine import Trainer, build_optimizer, lsj_augmentations
from tests.conftest import CONFIGS, tiny_cfg

PAIRS = [
    ("ropevit_mrcnn.yaml", "lazy/ropevit_mrcnn.py"),
    ("ropevit_cascade_mrcnn.yaml", "lazy/ropevit_cascade_mrcnn.py"),
    ("LVIS/ropevit_mrcnn.yaml", "LVIS/ropevit_mrcnn.py"),
    ("LVIS/ropevit_cascade_mrcnn.yaml", "LVIS/ropevit_cascade_mrcnn.py"),
]
# The Lazy spelling of conftest.TINY_VIT_OVERRIDES (a 2-block, 64-wide ViT).
TINY_LAZY_OVERRIDES = [
    "model.backbone.net.vit.embed_dim=64",
    "model.backbone.net.vit.depth=2",
    "model.backbone.net.vit.num_heads=2",
    "model.backbone.net.vit.mlp_dim=128",
    "model.backbone.square_pad=0",
]


def lazy_cfg(name: str, extra: list[str] | None = None):
    from detectron2.config import LazyConfig

    cfg = model_zoo.get_config(name)
    return LazyConfig.apply_overrides(cfg, TINY_LAZY_OVERRIDES + (extra or []))


@pytest.fixture(scope="module", params=PAIRS, ids=["mask_rcnn", "cascade", "lvis_mask_rcnn", "lvis_cascade"])
def built(request):
    yacs_name, lazy_name = request.param
    cfg, lazy = tiny_cfg(CONFIGS / yacs_name), lazy_cfg(lazy_name)
    torch.manual_seed(0)
    yacs_model = build_model(cfg)
    lazy_model = instantiate(lazy.model)
    return cfg, lazy, yacs_model, lazy_model, yacs_name


def test_same_modules_and_parameters(built):
    _, _, yacs_model, lazy_model, _ = built
    assert [(n, type(m)) for n, m in yacs_model.named_modules()] == [
        (n, type(m)) for n, m in lazy_model.named_modules()
    ]
    shapes = lambda model: [(n, tuple(t.shape)) for n, t in model.state_dict().items()]  # noqa: E731
    assert shapes(yacs_model) == shapes(lazy_model)
    assert (yacs_model.pixel_mean == lazy_model.pixel_mean).all() and yacs_model.input_format == lazy_model.input_format
    assert yacs_model.backbone.padding_constraints == lazy_model.backbone.padding_constraints


def test_same_box_predictor_settings(built):
    """Test thresholds, detections per image, sigmoid CE and federated loss (LVIS), per cascade stage."""
    _, _, yacs_model, lazy_model, _ = built
    keys = (
        "test_score_thresh",
        "test_nms_thresh",
        "test_topk_per_image",
        "use_sigmoid_ce",
        "use_fed_loss",
        "fed_loss_num_classes",
        "num_classes",
        "smooth_l1_beta",
        "box_reg_loss_type",
    )

    def settings(model):
        heads = model.roi_heads
        predictors = (
            list(heads.box_predictor) if isinstance(heads.box_predictor, torch.nn.ModuleList) else [heads.box_predictor]
        )
        # loss_weight: yacs lists only loss_box_reg, Lazy both; a missing key weighs 1.0 (FastRCNNOutputLayers.losses).
        return [
            {
                **{k: getattr(p, k) for k in keys},
                "weights": [p.loss_weight.get(k, 1.0) for k in ("loss_cls", "loss_box_reg")],
            }
            for p in predictors
        ], heads.num_classes

    assert settings(yacs_model) == settings(lazy_model)
    assert yacs_model.roi_heads.mask_on and lazy_model.roi_heads.mask_on


def test_same_lr_and_weight_decay_per_parameter(built):
    cfg, lazy, yacs_model, lazy_model, _ = built
    lazy.optimizer.params.model = lazy_model

    def per_param(optimizer, model):
        name = {id(p): n for n, p in model.named_parameters()}
        return {name[id(p)]: (g["lr"], g["weight_decay"]) for g in optimizer.param_groups for p in g["params"]}

    ours, theirs = (
        per_param(build_optimizer(cfg, yacs_model), yacs_model),
        per_param(instantiate(lazy.optimizer), lazy_model),
    )
    assert ours == theirs and len(ours) == sum(p.requires_grad for p in yacs_model.parameters())
    assert len({lr for lr, _ in ours.values()}) == 2 + 2  # layer decay: embedding, 2 blocks, the rest
    assert type(build_optimizer(cfg, yacs_model)) is torch.optim.AdamW  # no clipping wrapper, as ViTDet


def test_same_lr_schedule(built):
    cfg, lazy, yacs_model, _, _ = built
    assert cfg.SOLVER.MAX_ITER == lazy.train.max_iter
    yacs_opt = torch.optim.SGD(yacs_model.parameters(), lr=1.0)
    yacs_sched = Trainer.build_lr_scheduler(cfg, yacs_opt)
    assert isinstance(yacs_sched, LRMultiplier)
    multiplier = instantiate(lazy.lr_multiplier)
    first, second = cfg.SOLVER.STEPS
    for it in [0, 1, 125, 249, 250, 100000, first - 1, first, second - 1, second, cfg.SOLVER.MAX_ITER - 1]:
        where = it / cfg.SOLVER.MAX_ITER
        assert yacs_sched._multiplier(where) == pytest.approx(multiplier(where), rel=1e-12), it


def augmentation_args(augmentations) -> list[tuple[str, dict]]:
    """Type and arguments of each augmentation (OmegaConf hands lists where Python configs write tuples)."""
    plain = lambda v: tuple(v) if isinstance(v, (list, tuple, ListConfig)) else v  # noqa: E731
    return [
        (type(a).__name__, {k: plain(v) for k, v in vars(a).items() if not k.startswith("_")}) for a in augmentations
    ]


def test_same_augmentations_and_run_settings(built):
    cfg, lazy, _, _, yacs_name = built
    train_mapper = instantiate(lazy.dataloader.train.mapper)
    ours = augmentation_args(lsj_augmentations(cfg))
    assert ours == augmentation_args(train_mapper.augmentations.augs)
    assert [name for name, _ in ours] == ["RandomFlip", "ResizeScale", "FixedSizeCrop"]
    assert ours[1][1]["min_scale"] == 0.1 and ours[1][1]["max_scale"] == 2.0 and ours[2][1]["pad"] is False
    test_mapper = DatasetMapper(cfg, is_train=False)
    lazy_test_mapper = instantiate(lazy.dataloader.test.mapper)
    # Test resize: yacs says sample_style "choice", ViTDet "range", over (1024, 1024): the same transform.
    image = np.zeros((480, 640, 3), dtype=np.uint8)
    transforms = lambda mapper: [vars(a.get_transform(image)) for a in mapper.augmentations.augs]  # noqa: E731
    assert transforms(test_mapper) == transforms(lazy_test_mapper) and transforms(test_mapper)[0]["new_w"] == 1024
    assert train_mapper.recompute_boxes and train_mapper.image_format == cfg.INPUT.FORMAT == "RGB"
    cfg = load_config(str(CONFIGS / yacs_name))  # as shipped, weights included
    yacs = (
        cfg.SOLVER.IMS_PER_BATCH,
        cfg.SOLVER.CHECKPOINT_PERIOD,
        cfg.TEST.EVAL_PERIOD,
        cfg.SOLVER.AMP.ENABLED,
        cfg.SOLVER.AMP.PRECISION,
        cfg.MODEL.WEIGHTS,
        cfg.SOLVER.CLIP_GRADIENTS.ENABLED,
        cfg.DATASETS.TRAIN[0],
        cfg.DATASETS.TEST[0],
        cfg.DATALOADER.NUM_WORKERS,
    )
    sampler = lazy.dataloader.train.get("sampler")
    yacs += (
        cfg.DATALOADER.SAMPLER_TRAIN,
        cfg.DATALOADER.REPEAT_THRESHOLD if sampler else None,
        cfg.SOLVER.BASE_LR,
        cfg.MODEL.ROI_HEADS.NUM_CLASSES,
    )
    aug = cfg.TEST.AUG  # test-time augmentation: the Lazy test.aug node mirrors it
    yacs += (aug.ENABLED, list(aug.MIN_SIZES), aug.MAX_SIZE, aug.FLIP)
    t = lazy.train
    ours = (
        lazy.dataloader.train.total_batch_size,
        t.checkpointer.period,
        t.eval_period,
        t.amp.enabled,
        t.amp.precision,
        t.init_checkpoint,
        False,
        lazy.dataloader.train.dataset.names,
        lazy.dataloader.test.dataset.names,
        lazy.dataloader.train.num_workers,
        sampler._target_.__name__ if sampler else "TrainingSampler",
        sampler.repeat_factors.repeat_thresh if sampler else None,
        lazy.optimizer.lr,
        lazy.model.roi_heads.num_classes,
        lazy.test.aug.enabled,
        list(lazy.test.aug.min_sizes),
        lazy.test.aug.max_size,
        lazy.test.aug.flip,
    )
    assert yacs == ours
