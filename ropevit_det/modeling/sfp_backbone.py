"""The detectron2 backbone: RoPEViT -> stride-16 neck -> ViTDet simple feature pyramid (p2..p6).

detectron2's ``ROIPooler`` and anchor generators need power-of-two strides, but a /14 ViT has
stride 14. ``RoPEViTStride16`` puts the neck onto the stride-16 grid with exact geometry, then
detectron2's own ``SimpleFeaturePyramid`` and ``LastLevelMaxPool`` build the pyramid.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from detectron2.config import CfgNode
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from detectron2.modeling.backbone.fpn import LastLevelMaxPool
from detectron2.modeling.backbone.vit import SimpleFeaturePyramid

from .norms import use_fused_channel_layer_norms
from .rope_vit import RoPEViT

NECK_STRIDE = 16


def resample_to_stride(
    neck: torch.Tensor, image_size: tuple[int, int], src_stride: int, dst_stride: int
) -> torch.Tensor:
    """Bilinearly resample a stride-``src_stride`` feature map onto the stride-``dst_stride`` grid.

    Cell ``j`` of the output samples the input at image position ``dst_stride * j + dst_stride / 2``:
    with ``scale_factor = src/dst`` and ``recompute_scale_factor=False``, ``F.interpolate`` maps output
    index j to input index ``(j + 0.5) * dst / src - 0.5``, whose centre lies at image position
    ``src * (that + 0.5) = dst * j + dst / 2``. Letting PyTorch recompute the scale from the output
    size would shift the grid. The output is ``ceil(H / dst) x ceil(W / dst)``; two replicated cells
    at the bottom/right guarantee enough input for that size (edge cells clamp, as bilinear
    interpolation with ``align_corners=False`` does anyway).
    """
    out_h, out_w = (math.ceil(s / dst_stride) for s in image_size)
    padded = F.pad(neck, (0, 2, 0, 2), mode="replicate")
    out = F.interpolate(
        padded, scale_factor=src_stride / dst_stride, mode="bilinear", align_corners=False, recompute_scale_factor=False
    )
    return out[:, :, :out_h, :out_w]


class RoPEViTStride16(Backbone):
    """Wraps ``RoPEViT``: one output ``"neck"``, the ViT's patch features resampled to stride 16."""

    def __init__(self, vit: RoPEViT) -> None:
        super().__init__()
        self.vit = vit
        # The final norm and the classifier serve only the classification path (species labels), never the
        # detection loss: frozen, so DDP does not wait for gradients that never come. They still load strictly.
        for module in (vit.norm, vit.classifier):
            if module is not None:
                module.requires_grad_(False)
        self._out_features = ["neck"]
        self._out_feature_channels = {"neck": vit.embed_dim}
        self._out_feature_strides = {"neck": NECK_STRIDE}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        neck = self.vit.detection_features(x)["neck"]
        return {"neck": resample_to_stride(neck, tuple(x.shape[-2:]), self.vit.patch_size, NECK_STRIDE)}


class RoPEViTSimpleFeaturePyramid(SimpleFeaturePyramid):
    """``SimpleFeaturePyramid`` with a correctly spelled ``padding_constraints``.

    Upstream returns ``"size_divisiblity"``, which ``ImageList.from_tensors`` never reads; only the
    ``size_divisibility`` property saved it. Spelling it right makes square padding and
    divisibility come from one place.

    Its "LN" norms run as fused ``F.layer_norm`` (``norms.py``): same parameters and formula, faster on CPUs.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        use_fused_channel_layer_norms(self)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # The fused norms hand back channels-last views; the RoI poolers would make each level contiguous
        # again on every call (box and mask heads, several calls per level), so do it once here.
        return {name: feature.contiguous() for name, feature in super().forward(x).items()}

    @property
    def padding_constraints(self) -> dict[str, int]:
        return {"size_divisibility": self._size_divisibility, "square_size": self._square_pad}


def rope_vit_kwargs_from_cfg(cfg: CfgNode) -> dict:
    """Keyword arguments for ``RoPEViT`` from ``cfg.MODEL.ROPE_VIT`` (see ``ropevit_det.config``)."""
    c = cfg.MODEL.ROPE_VIT
    return dict(
        img_size=c.PRETRAIN_IMG_SIZE,
        patch_size=c.PATCH_SIZE,
        embed_dim=c.EMBED_DIM,
        depth=c.DEPTH,
        num_heads=c.NUM_HEADS,
        mlp_dim=c.MLP_DIM,
        num_reg_tokens=c.NUM_REG_TOKENS,
        rope_temperature=c.ROPE_TEMPERATURE,
        rope_positions=c.ROPE_POSITIONS,
        drop_path_rate=c.DROP_PATH_RATE,
        window_size=c.WINDOW_SIZE,
        global_block_indexes=tuple(c.GLOBAL_BLOCKS),
        use_act_checkpoint=c.USE_ACT_CHECKPOINT,
        freeze_patch_embed=c.FREEZE_PATCH_EMBED,
        freeze_blocks=c.FREEZE_BLOCKS,
        num_classes=c.NUM_CLASSES,
    )


def build_sfp(
    vit: RoPEViT, *, out_channels: int = 256, norm: str = "LN", square_pad: int = 0
) -> RoPEViTSimpleFeaturePyramid:
    """ViTDet's pyramid over the stride-16 neck: p2..p5 at strides 4..32, p6 (stride 64) by max-pooling p5."""
    return RoPEViTSimpleFeaturePyramid(
        net=RoPEViTStride16(vit=vit),
        in_feature="neck",
        out_channels=out_channels,
        scale_factors=(4.0, 2.0, 1.0, 0.5),
        top_block=LastLevelMaxPool(),
        norm=norm,
        square_pad=square_pad,
    )


@BACKBONE_REGISTRY.register()
def build_ropevit_sfp_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> Backbone:
    """detectron2 builder: ``MODEL.BACKBONE.NAME: build_ropevit_sfp_backbone``."""
    if input_shape.channels != 3:
        raise ValueError(
            f"RoPEViT takes 3-channel RGB input, but MODEL.PIXEL_MEAN has {input_shape.channels} values; "
            "set MODEL.PIXEL_MEAN / PIXEL_STD to 3 values and INPUT.FORMAT to 'RGB'."
        )
    vit = RoPEViT(**rope_vit_kwargs_from_cfg(cfg))
    return build_sfp(
        vit, out_channels=cfg.MODEL.SFP.OUT_CHANNELS, norm=cfg.MODEL.SFP.NORM, square_pad=cfg.MODEL.SFP.SQUARE_PAD
    )
