"""Model code: the RoPE ViT, its windowed attention, and the detectron2 backbone built on it."""

from .roi_heads import CandidateCappedROIHeads
from .rope_vit import RoPEViT
from .sfp_backbone import RoPEViTStride16, build_ropevit_sfp_backbone, build_sfp, resample_to_stride

__all__ = [
    "CandidateCappedROIHeads",
    "RoPEViT",
    "RoPEViTStride16",
    "build_ropevit_sfp_backbone",
    "build_sfp",
    "resample_to_stride",
]
