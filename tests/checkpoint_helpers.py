"""Shared fixtures for the checkpoint tests: random-weight birder checkpoints written by birder's own code,
and small detectron2 models built from the project's base config."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest import mock

import torch
from birder.common import fs_ops
from birder.conf import settings
from birder.model_registry import registry
from birder.net.base import get_signature
from detectron2.modeling import build_model

import ropevit_det  # noqa: F401  (registers the backbone)
from ropevit_det.config import load_config

REPO_ROOT = Path(__file__).resolve().parents[1]
BASE_CONFIG = REPO_ROOT / "configs" / "Base-RoPEViT-SFP.yaml"

# A birder rope_vit_reg4_b14 shrunk for CPU tests: same layout and names, 2 blocks, width 64.
TINY = {"num_layers": 2, "hidden_dim": 64, "num_heads": 2, "mlp_dim": 128, "drop_path_rate": 0.0}
TINY_SIZE = 56  # 4 x 4 patches of 14
# Not birder's defaults, so that a test can tell whether the statistics were carried through.
RGB_STATS = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
CLASS_TO_IDX = {"Panthera leo": 0, "Vulpes vulpes": 1, "Corvus corax": 2}


def make_birder_net(
    config: dict[str, Any] | None = TINY, size: int = TINY_SIZE, num_classes: int = 3, seed: int = 0
) -> torch.nn.Module:
    """birder's rope_vit_reg4_b14 (``config=None``: the full ViT-B/14) with every tensor random, in eval mode.

    birder initialises the class/register tokens to zero; they are randomised too, so that a weight landing
    in the wrong place changes the output.
    """
    torch.manual_seed(seed)
    net = registry.net_factory("rope_vit_reg4_b14", num_classes, 3, config=config, size=(size, size))
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name in ("class_token", "reg_tokens"):
                param.normal_(std=0.5)
            elif name.endswith("bias"):
                param.normal_(std=0.02)
    return net.eval()


def _signature(size: int, num_classes: int) -> dict[str, Any]:
    return get_signature((1, 3, size, size), num_classes)


def save_birder_pt(
    net: torch.nn.Module, directory: Path, size: int = TINY_SIZE, num_classes: int = 3, name: str = "tiny"
) -> Path:
    """Write ``net`` with birder's own ``fs_ops.checkpoint_model`` (its training-time format); return the path."""
    directory.mkdir(parents=True, exist_ok=True)
    # checkpoint_model writes to settings.MODELS_DIR/<name>_<epoch>.pt; point it at the test's folder.
    with mock.patch.object(settings, "MODELS_DIR", directory):
        fs_ops.checkpoint_model(
            name, 1, net, _signature(size, num_classes), CLASS_TO_IDX, RGB_STATS, None, None, None, None
        )
    return directory / f"{name}_1.pt"


def save_birder_safetensors(
    net: torch.nn.Module, directory: Path, size: int = TINY_SIZE, num_classes: int = 3, name: str = "tiny"
) -> Path:
    """Write ``net`` with birder's ``fs_ops.save_st``; return the path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.safetensors"
    fs_ops.save_st(net, str(path), net.task, CLASS_TO_IDX, _signature(size, num_classes), RGB_STATS)
    return path


def tiny_cfg(
    depth: int = 2,
    embed_dim: int = 64,
    num_heads: int = 2,
    mlp_dim: int = 128,
    img_size: int = TINY_SIZE,
    num_classes: int = 0,
):
    """The base config with a tiny ViT and thin heads (fast on a CPU)."""
    return load_config(
        str(BASE_CONFIG),
        [
            "MODEL.DEVICE",
            "cpu",
            "MODEL.ROPE_VIT.DEPTH",
            depth,
            "MODEL.ROPE_VIT.EMBED_DIM",
            embed_dim,
            "MODEL.ROPE_VIT.NUM_HEADS",
            num_heads,
            "MODEL.ROPE_VIT.MLP_DIM",
            mlp_dim,
            "MODEL.ROPE_VIT.PRETRAIN_IMG_SIZE",
            img_size,
            "MODEL.ROPE_VIT.NUM_CLASSES",
            num_classes,
            "MODEL.SFP.OUT_CHANNELS",
            16,
            "MODEL.ROI_BOX_HEAD.CONV_DIM",
            16,
            "MODEL.ROI_BOX_HEAD.FC_DIM",
            32,
            "MODEL.ROI_MASK_HEAD.CONV_DIM",
            16,
            "MODEL.ROI_HEADS.NUM_CLASSES",
            3,
        ],
    )


def build_d2_model(cfg) -> torch.nn.Module:
    torch.manual_seed(1234)  # model init differs from the birder weights' seed
    return build_model(cfg).eval()


def vit_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the ViT's tensors (to see later what a failed load left untouched)."""
    return {k: v.clone() for k, v in model.backbone.net.vit.state_dict().items()}


def neck_parity(model: torch.nn.Module, net: torch.nn.Module, size: int, seed: int = 7) -> float:
    """Max |RoPEViT neck - birder detection_features stage1| on one random image."""
    torch.manual_seed(seed)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        ours = model.backbone.net.vit.detection_features(x)["neck"]
        ref = net.detection_features(x)["stage1"]
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return (ours - ref).abs().max().item()
