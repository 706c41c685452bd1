"""Model EMA (``MODEL_EMA`` / ``train.model_ema``): an exponential moving average of the weights, kept beside the
model during training, saved in every checkpoint (``model_ema``) and used for evaluation, as EVA-02's detection
code offers. The average itself is PyTorch's ``torch.optim.swa_utils.AveragedModel`` with
``get_ema_multi_avg_fn``; this file only wires it into detectron2's hook loop and checkpoints.

After ``k`` optimizer steps, with ``p_0`` the weights when training starts (or resumes without an EMA) and
``p_i`` the weights after step ``i``: ``ema_k = decay**k * p_0 + sum_i (1 - decay) * decay**(k - i) * p_i``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from detectron2.engine import HookBase
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .distributed import unwrap_model

__all__ = ["EMA_CHECKPOINT_KEY", "ModelEMA", "load_ema_weights"]

EMA_CHECKPOINT_KEY = "model_ema"


class ModelEMA(HookBase):
    """Hook: the EMA of ``model``'s parameters and buffers, updated after every step.

    Args:
        model: the model being trained (DDP-wrapped or not).
        decay: weight of the running average per step (EVA-02 and d2go use 0.9999).
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.model = unwrap_model(model)
        self.averaged = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        self.averaged.requires_grad_(False)

    @property
    def module(self) -> torch.nn.Module:
        """The averaged model, ready to evaluate."""
        return self.averaged.module

    def before_train(self) -> None:
        # The first update copies the weights (after loading: the initial weights, or a resumed EMA is kept).
        if int(self.averaged.n_averaged) == 0:
            self.averaged.update_parameters(self.model)

    def after_step(self) -> None:
        self.averaged.update_parameters(self.model)


def load_ema_weights(model: torch.nn.Module, checkpoint_extra: Mapping[str, Any]) -> bool:
    """Copy the EMA weights saved in a checkpoint (``checkpoint_extra[EMA_CHECKPOINT_KEY]``) into ``model``.

    Args:
        model: the model the checkpoint was just loaded into.
        checkpoint_extra: what ``Checkpointer.load`` returned (the checkpoint's entries other than ``model``).

    Returns:
        Whether the checkpoint had EMA weights.
    """
    saved = checkpoint_extra.get(EMA_CHECKPOINT_KEY)
    if not saved:
        return False
    prefix = "module."
    state = {k[len(prefix) :]: v for k, v in saved.items() if k.startswith(prefix)}
    unwrap_model(model).load_state_dict(state, strict=True)
    return True
