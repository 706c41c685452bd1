"""AdamW with ViTDet's layer-wise learning-rate decay, for birder's parameter names.

detectron2's ``get_vit_lr_decay_rate`` only recognises ``.blocks.`` and ``.patch_embed`` names, and
``get_default_optimizer_params`` exempts only ``torch.nn`` norms from weight decay, not detectron2's
channel-first ``LayerNorm`` used in the pyramid and heads (``norm: "LN"``). Both are written here for
``encoder.block.N`` and for every norm; detectron2's ``reduce_param_groups`` and gradient clipping are reused.
"""

from __future__ import annotations

import torch
from detectron2.config import CfgNode
from detectron2.layers.batch_norm import LayerNorm as Detectron2LayerNorm
from detectron2.solver.build import maybe_add_gradient_clipping, reduce_param_groups

from ..checkpoint.conversion import VIT_PREFIX  # where the ViT's tensors sit in a detector's state dict
from ..modeling.norms import ChannelLayerNorm

# The embedding parameters sit "below" block 0 in the decay schedule and never get weight decay.
EMBEDDING_PARAMS = ("conv_proj.", "pos_embedding", "class_token", "reg_tokens")
NO_DECAY_PARAMS = ("pos_embedding", "class_token", "reg_tokens")
NORM_TYPES = (
    torch.nn.LayerNorm,
    Detectron2LayerNorm,
    ChannelLayerNorm,  # ours: detectron2's LN computed by F.layer_norm (modeling/norms.py)
    torch.nn.GroupNorm,
    torch.nn.modules.batchnorm._NormBase,
)


def rope_vit_lr_decay_rate(name: str, lr_decay_rate: float, num_layers: int) -> float:
    """LR multiplier for parameter ``name``: ``rate ** (num_layers + 1 - layer_id)``.

    layer_id is 0 for the embedding (conv_proj, position embedding, class/register tokens), N + 1 for
    ``encoder.block.N``, and num_layers + 1 (multiplier 1) for everything else: the ViT's final norm,
    the feature pyramid and the heads.
    """
    layer_id = num_layers + 1
    if name.startswith(VIT_PREFIX):
        local = name[len(VIT_PREFIX) :]
        if local.startswith(EMBEDDING_PARAMS):
            layer_id = 0
        elif local.startswith("encoder.block."):
            layer_id = int(local.split(".")[2]) + 1
    return lr_decay_rate ** (num_layers + 1 - layer_id)


def optimizer_param_groups(
    model: torch.nn.Module, base_lr: float, weight_decay: float, lr_decay_rate: float, num_layers: int
) -> list[dict]:
    """One group per (lr, weight decay) pair: no decay on norms, position embedding and special tokens."""
    groups = []
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            full_name = f"{module_name}.{param_name}" if module_name else param_name
            no_decay = isinstance(module, NORM_TYPES) or param_name in NO_DECAY_PARAMS
            groups.append(
                {
                    "params": [param],
                    "lr": base_lr * rope_vit_lr_decay_rate(full_name, lr_decay_rate, num_layers),
                    "weight_decay": 0.0 if no_decay else weight_decay,
                }
            )
    return reduce_param_groups(groups)


def build_optimizer(cfg: CfgNode, model: torch.nn.Module) -> torch.optim.Optimizer:
    """``SOLVER.OPTIMIZER``: "ADAMW" (ViTDet recipe) or "SGD"; clipping from ``SOLVER.CLIP_GRADIENTS``."""
    groups = optimizer_param_groups(
        model,
        cfg.SOLVER.BASE_LR,
        cfg.SOLVER.WEIGHT_DECAY,
        cfg.SOLVER.LAYER_DECAY,
        cfg.MODEL.ROPE_VIT.DEPTH,
    )
    name = cfg.SOLVER.OPTIMIZER.upper()
    if name == "ADAMW":
        optim, kwargs = torch.optim.AdamW, {"betas": tuple(cfg.SOLVER.BETAS)}
    elif name == "SGD":
        optim, kwargs = torch.optim.SGD, {"momentum": cfg.SOLVER.MOMENTUM, "nesterov": cfg.SOLVER.NESTEROV}
    else:
        raise ValueError(f"SOLVER.OPTIMIZER must be 'ADAMW' or 'SGD', got {cfg.SOLVER.OPTIMIZER!r}")
    clip = cfg.SOLVER.CLIP_GRADIENTS
    if clip.ENABLED and clip.CLIP_TYPE == "full_model":
        optim = with_full_model_gradient_clipping(optim, clip.CLIP_VALUE, clip.NORM_TYPE)
    else:
        optim = maybe_add_gradient_clipping(cfg, optim)
    return optim(groups, lr=cfg.SOLVER.BASE_LR, **kwargs)


def with_full_model_gradient_clipping(
    optimizer_type: type[torch.optim.Optimizer], max_norm: float, norm_type: float = 2.0
) -> type[torch.optim.Optimizer]:
    """Clip the norm of *all* gradients together before each step (``CLIP_TYPE: "full_model"``).

    detectron2's yacs clipping only offers per-parameter "value" and "norm"; clipping the global norm,
    as ViT fine-tuning recipes do, lives only in detectron2's projects, so it is added here.
    """

    class FullModelClipping(optimizer_type):
        def step(self, closure=None):
            params = [p for group in self.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type)
            return super().step(closure)

    FullModelClipping.__name__ = f"{optimizer_type.__name__}WithFullModelClipping"
    return FullModelClipping
