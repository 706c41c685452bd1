"""detectron2's channel LayerNorm (ViTDet's "LN" in the pyramid and the heads), computed by ``F.layer_norm``.

``detectron2.layers.batch_norm.LayerNorm`` normalises (N, C, H, W) over C with six separate tensor ops
(mean, subtract, square, mean, divide, scale and shift), each a full pass over large tensors: the pyramid's
finest level at 1024 px, and every RoI of the box and mask heads, several times. PyTorch's fused
``layer_norm`` kernel over a channels-last view does it in one pass, and accumulates in fp32 even for bf16
inputs (docs/PERFORMANCE.md has the measured gain).
Same parameters (``weight``, ``bias``), same ``eps``, same formula: checkpoints do not notice the swap.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from detectron2.layers.batch_norm import LayerNorm as Detectron2LayerNorm
from torch import nn

__all__ = ["ChannelLayerNorm", "use_detectron2_layer_norms", "use_fused_channel_layer_norms"]


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of (N, C, H, W) tensors; a drop-in for detectron2's ``LayerNorm``."""

    def __init__(self, normalized_shape: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.bias = nn.Parameter(torch.zeros(normalized_shape))
        self.eps = eps
        self.normalized_shape = (normalized_shape,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return out.permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape[0]}, eps={self.eps}"


def _replace_norms(module: nn.Module, old_type: type, new_type: type) -> int:
    """Replace every ``old_type`` norm under ``module`` by a ``new_type`` holding the same parameter objects."""
    replaced = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is old_type:
                new = new_type(child.weight.shape[0], child.eps)
                new.weight, new.bias = child.weight, child.bias
                setattr(parent, name, new)
                replaced += 1
    return replaced


def use_fused_channel_layer_norms(module: nn.Module) -> int:
    """Replace, in place, every detectron2 ``LayerNorm`` under ``module`` by a ``ChannelLayerNorm`` holding the
    same parameter objects. Returns how many were replaced."""
    return _replace_norms(module, Detectron2LayerNorm, ChannelLayerNorm)


def use_detectron2_layer_norms(module: nn.Module) -> int:
    """The inverse: put detectron2's own ``LayerNorm`` back (same parameters), e.g. to compare the two."""
    return _replace_norms(module, ChannelLayerNorm, Detectron2LayerNorm)
