"""Train and evaluate LazyConfig recipes (``configs/lazy/``) on this project's pieces.

detectron2's ``tools/lazyconfig_train_net.py`` is a script, not a library, and it builds the stock
``DetectionCheckpointer`` (no raw birder files), ``create_ddp_model`` (``device_ids`` that DDP refuses for CPU
modules over gloo) and ``AMPTrainer`` (CUDA only). These functions follow its ``do_train`` / ``do_test`` step for
step with ours instead: ``RoPEViTCheckpointer``, ``wrap_for_distributed``, the bf16 CPU step, the checkpoint's
class names, the model EMA (``train.model_ema``). The layer decay over ``encoder.block.N`` comes with the config
(``optimizer.params``).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import torch
from detectron2.config import instantiate
from detectron2.engine import hooks
from detectron2.engine.defaults import default_writers
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm

from ..checkpoint import RoPEViTCheckpointer
from .ema import EMA_CHECKPOINT_KEY, ModelEMA
from .devices import available_device
from .mixed_precision import step_trainer
from .trainer import DatasetInfo, wrap_for_distributed

__all__ = ["build_lazy_model", "lazy_device", "lazy_test", "lazy_train"]

logger = logging.getLogger(__name__)


def lazy_device(cfg: Any) -> str:
    """``train.device``, or the CPU when it asks for CUDA on a machine without it."""
    return available_device(str(cfg.train.get("device", "cuda")))


def build_lazy_model(cfg: Any) -> torch.nn.Module:
    model = instantiate(cfg.model)
    return model.to(lazy_device(cfg))


def _names(names: str | Iterable[str]) -> list[str]:
    return [names] if isinstance(names, str) else list(names)


def lazy_test(cfg: Any, model: torch.nn.Module) -> dict:
    """Evaluate ``model`` with ``dataloader.test`` and ``dataloader.evaluator``; {} when there is no evaluator."""
    if "evaluator" not in cfg.dataloader:
        return {}
    results = inference_on_dataset(model, instantiate(cfg.dataloader.test), instantiate(cfg.dataloader.evaluator))
    if comm.is_main_process():
        print_csv_format(results)
    return results


def lazy_train(cfg: Any, *, resume: bool = False) -> None:
    """Train ``cfg.model`` as ``cfg.train`` says, evaluating every ``train.eval_period`` and at the end."""
    model = build_lazy_model(cfg)
    logger.info("Model:\n%s", model)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    train_loader = instantiate(cfg.dataloader.train)
    model = wrap_for_distributed(model)
    amp = cfg.train.get("amp", {})
    trainer = step_trainer(
        model, train_loader, optimizer,
        amp=bool(amp.get("enabled", False)), precision=str(amp.get("precision", "float16")), device=lazy_device(cfg),
    )
    checkpointer = RoPEViTCheckpointer(
        model, cfg.train.output_dir, trainer=trainer,
        dataset_info=DatasetInfo(
            datasets=_names(cfg.dataloader.train.dataset.names), init_weights=str(cfg.train.init_checkpoint)
        ),
    )
    ema_cfg = cfg.train.get("model_ema", {})
    ema = ModelEMA(model, float(ema_cfg.get("decay", 0.9999))) if ema_cfg.get("enabled", False) else None
    if ema is not None:
        checkpointer.add_checkpointable(EMA_CHECKPOINT_KEY, ema.averaged)
    trainer.register_hooks([
        hooks.IterationTimer(),
        hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
        ema,  # updated before checkpointing and evaluation
        hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer) if comm.is_main_process() else None,
        hooks.EvalHook(cfg.train.eval_period, lambda: lazy_test(cfg, ema.module if ema is not None else model)),
        hooks.PeriodicWriter(default_writers(cfg.train.output_dir, cfg.train.max_iter), period=cfg.train.log_period)
        if comm.is_main_process()
        else None,
    ])
    checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=resume)
    start_iter = trainer.iter + 1 if resume and checkpointer.has_checkpoint() else 0
    trainer.train(start_iter, cfg.train.max_iter)
