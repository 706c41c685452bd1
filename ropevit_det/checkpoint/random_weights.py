"""A birder-format checkpoint with random weights, written on the fly: for runs that must download nothing.

The camera-trap first run (``ropevit-det demo --camera-trap``) starts its detector from such a file, so that it
goes through the same path as real weights (birder's own file format, converted in memory by
:class:`~ropevit_det.checkpoint.RoPEViTCheckpointer`) without a download. The weights mean nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["write_random_birder_checkpoint"]

# Not birder's defaults: a reader that ignored the file's statistics would show it.
DEFAULT_RGB_STATS = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def write_random_birder_checkpoint(
    path: str | Path,
    *,
    hidden_dim: int,
    num_layers: int,
    num_heads: int,
    mlp_dim: int,
    size: int,
    class_to_idx: Mapping[str, int],
    seed: int = 0,
    rgb_stats: Mapping[str, Any] = DEFAULT_RGB_STATS,
) -> Path:
    """Write birder's ``rope_vit_reg4_b14`` of this shape, random weights, with birder's ``fs_ops.save_st``.

    Args:
        path: the ``.safetensors`` file to write.
        hidden_dim, num_layers, num_heads, mlp_dim: the ViT's shape (``MODEL.ROPE_VIT.EMBED_DIM``, ``DEPTH``,
            ``NUM_HEADS``, ``MLP_DIM`` of the config that will load it).
        size: the training resolution it claims (``MODEL.ROPE_VIT.PRETRAIN_IMG_SIZE``).
        class_to_idx: the classifier's classes.
    """
    from birder.common import fs_ops
    from birder.model_registry import registry
    from birder.net.base import get_signature

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = {
        "num_layers": num_layers,
        "hidden_dim": hidden_dim,
        "num_heads": num_heads,
        "mlp_dim": mlp_dim,
        "drop_path_rate": 0.0,
    }
    net = registry.net_factory("rope_vit_reg4_b14", len(class_to_idx), 3, config=config, size=(size, size)).eval()
    signature = get_signature((1, 3, size, size), len(class_to_idx))
    fs_ops.save_st(net, str(path), net.task, dict(class_to_idx), signature, dict(rgb_stats))
    return path
