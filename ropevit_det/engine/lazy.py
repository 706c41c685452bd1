"""Train and evaluate LazyConfig recipes (``configs/lazy/``) on this project's pieces.

detectron2's ``tools/lazyconfig_train_net.py`` is a script, not a library, and it builds the stock
``DetectionCheckpointer`` (no raw birder files), ``create_ddp_model`` (``device_ids`` that DDP refuses for CPU
modules over gloo) and ``AMPTrainer`` (CUDA only). These functions follow its ``do_train`` / ``do_test`` step for
step with ours instead: ``RoPEViTCheckpointer``, ``wrap_for_distributed``, the bf16 CPU step, the checkpoint's
class names, the model EMA (``train.model_ema``), test-time augmentation (``test.aug``, as the yacs ``TEST.AUG``).
The layer decay over ``encoder.block.N`` comes with the config (``optimizer.params``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

import torch
from detectron2.config import CfgNode, instantiate
from detectron2.engine import TrainerBase, hooks
from detectron2.engine.defaults import default_writers
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm

from ..checkpoint import RoPEViTCheckpointer
from ..config import check_tta_fits_square
from .devices import available_device
from .distributed import unwrap_model, wrap_for_distributed
from .ema import EMA_CHECKPOINT_KEY, ModelEMA
from .mixed_precision import step_trainer
from .trainer import TTA_OUTPUT_SUBDIR, DatasetInfo, tta_model, tta_results

__all__ = [
    "build_lazy_model",
    "build_lazy_trainer",
    "check_lazy_config",
    "lazy_device",
    "lazy_test",
    "lazy_test_with_tta",
    "lazy_tta_cfg",
    "lazy_tta_enabled",
    "lazy_train",
]

logger = logging.getLogger(__name__)


def lazy_device(cfg: Any) -> str:
    """``train.device``, or the CPU when it asks for CUDA on a machine without it."""
    return available_device(str(cfg.train.get("device", "cuda")))


def build_lazy_model(cfg: Any) -> torch.nn.Module:
    model = instantiate(cfg.model)
    return model.to(lazy_device(cfg))


def _names(names: str | Iterable[str]) -> list[str]:
    return [names] if isinstance(names, str) else list(names)


def check_lazy_config(cfg: Any) -> None:
    """Combinations that would fail late: fail now, naming the key to change (as ``config.check_config``)."""
    aug = _tta_node(cfg)
    check_tta_fits_square(
        bool(aug.get("enabled", False)),
        int(aug.get("max_size", 0)),
        int(cfg.model.backbone.get("square_pad", 0)),
        max_key="test.aug.max_size",
        square_key="model.backbone.square_pad",
        assign="=",
    )


def lazy_test(cfg: Any, model: torch.nn.Module, *, output_dir: str | None = None) -> dict:
    """Evaluate ``model`` with ``dataloader.test`` and ``dataloader.evaluator``; {} when there is no evaluator.

    ``output_dir`` replaces the evaluator's own (its predictions file), e.g. to keep TTA results apart."""
    if "evaluator" not in cfg.dataloader:
        return {}
    evaluator = cfg.dataloader.evaluator
    if output_dir is not None and "output_dir" in evaluator:
        evaluator = {**evaluator, "output_dir": output_dir}  # a plain copy: the config itself stays as given
    results = inference_on_dataset(model, instantiate(cfg.dataloader.test), instantiate(evaluator))
    if comm.is_main_process():
        print_csv_format(results)
    return results


def _tta_node(cfg: Any) -> Any:
    """``test.aug``, or {} for LazyConfigs written without one (TTA off)."""
    return (cfg.get("test") or {}).get("aug") or {}


def lazy_tta_enabled(cfg: Any) -> bool:
    return bool(_tta_node(cfg).get("enabled", False))


def lazy_tta_cfg(cfg: Any, model: torch.nn.Module) -> CfgNode:
    """The few yacs keys detectron2's ``GeneralizedRCNNWithTTA`` reads: the augmentation from ``test.aug``, the
    rest from the built model (what is evaluated), so no second copy of the model settings can drift."""
    aug = _tta_node(cfg)
    model = unwrap_model(model)
    heads = model.roi_heads
    # Cascade heads hold one predictor per stage; the last stage's test settings are the ones applied.
    predictor = heads.box_predictor[-1] if isinstance(heads.box_predictor, torch.nn.ModuleList) else heads.box_predictor
    return CfgNode(
        {
            "MODEL": {
                "MASK_ON": bool(getattr(heads, "mask_on", False)),
                "KEYPOINT_ON": bool(getattr(heads, "keypoint_on", False)),
                "LOAD_PROPOSALS": model.proposal_generator is None,
                "ROI_HEADS": {"NUM_CLASSES": heads.num_classes, "NMS_THRESH_TEST": predictor.test_nms_thresh},
            },
            "TEST": {
                "DETECTIONS_PER_IMAGE": predictor.test_topk_per_image,
                "AUG": {
                    "ENABLED": True,
                    "MIN_SIZES": tuple(int(s) for s in aug.min_sizes),
                    "MAX_SIZE": int(aug.max_size),
                    "FLIP": bool(aug.flip),
                },
            },
        }
    )


def lazy_test_with_tta(cfg: Any, model: torch.nn.Module) -> dict:
    """As the yacs ``Trainer.test_with_TTA``: ``GeneralizedRCNNWithTTA`` over ``test.aug``, results keyed ``*_TTA``,
    predictions in ``train.output_dir/inference_TTA``."""
    tta = tta_model(lazy_tta_cfg(cfg, model), model)
    return tta_results(lazy_test(cfg, tta, output_dir=os.path.join(cfg.train.output_dir, TTA_OUTPUT_SUBDIR)))


def build_lazy_trainer(cfg: Any, *, resume: bool = False) -> tuple[TrainerBase, int]:
    """The step trainer of ``cfg`` with its hooks, weights loaded (or resumed), and the iteration to start from.

    Split from ``lazy_train`` so that a caller can look at the model between loading and training
    (tests/dist_sync_check.py compares the ranks' parameters before and after)."""
    model = build_lazy_model(cfg)
    logger.info("Model:\n%s", model)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    train_loader = instantiate(cfg.dataloader.train)
    model = wrap_for_distributed(model)
    amp = cfg.train.get("amp", {})
    trainer = step_trainer(
        model,
        train_loader,
        optimizer,
        amp=bool(amp.get("enabled", False)),
        precision=str(amp.get("precision", "float16")),
        device=lazy_device(cfg),
    )
    checkpointer = RoPEViTCheckpointer(
        model,
        cfg.train.output_dir,
        trainer=trainer,
        dataset_info=DatasetInfo(
            datasets=_names(cfg.dataloader.train.dataset.names), init_weights=str(cfg.train.init_checkpoint)
        ),
    )
    ema_cfg = cfg.train.get("model_ema", {})
    ema = ModelEMA(model, float(ema_cfg.get("decay", 0.9999))) if ema_cfg.get("enabled", False) else None
    if ema is not None:
        checkpointer.add_checkpointable(EMA_CHECKPOINT_KEY, ema.averaged)
    trainer.register_hooks(
        [
            hooks.IterationTimer(),
            hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
            ema,  # updated before checkpointing and evaluation
            hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer) if comm.is_main_process() else None,
            hooks.EvalHook(cfg.train.eval_period, lambda: lazy_test(cfg, ema.module if ema is not None else model)),
            hooks.PeriodicWriter(default_writers(cfg.train.output_dir, cfg.train.max_iter), period=cfg.train.log_period)
            if comm.is_main_process()
            else None,
        ]
    )
    checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=resume)
    start_iter = trainer.iter + 1 if resume and checkpointer.has_checkpoint() else 0
    return trainer, start_iter


def lazy_train(cfg: Any, *, resume: bool = False) -> None:
    """Train ``cfg.model`` as ``cfg.train`` says, evaluating every ``train.eval_period`` and at the end."""
    trainer, start_iter = build_lazy_trainer(cfg, resume=resume)
    trainer.train(start_iter, cfg.train.max_iter)
