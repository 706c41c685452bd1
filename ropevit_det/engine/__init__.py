"""Training: the ViTDet recipe (optimizer, LSJ, mixed precision) on detectron2's trainer."""

from .ema import ModelEMA, load_ema_weights
from .lazy import (
    build_lazy_model,
    build_lazy_trainer,
    check_lazy_config,
    lazy_test,
    lazy_test_with_tta,
    lazy_train,
    lazy_tta_enabled,
)
from .mixed_precision import CPUBF16Trainer, build_step_trainer, step_trainer
from .optimizer import build_optimizer, optimizer_param_groups, rope_vit_lr_decay_rate
from .trainer import Trainer, lsj_augmentations

__all__ = [
    "CPUBF16Trainer",
    "ModelEMA",
    "Trainer",
    "build_optimizer",
    "build_lazy_model",
    "build_lazy_trainer",
    "build_step_trainer",
    "check_lazy_config",
    "lazy_test",
    "lazy_test_with_tta",
    "lazy_train",
    "lazy_tta_enabled",
    "load_ema_weights",
    "step_trainer",
    "lsj_augmentations",
    "optimizer_param_groups",
    "rope_vit_lr_decay_rate",
]
