"""Model code: the RoPE ViT, its windowed attention, and the detectron2 backbone built on it."""
from .rope_vit import RoPEViT
from .sfp_backbone import RoPEViTStride16, build_ropevit_sfp_backbone, build_sfp, resample_to_stride

__all__ = ["RoPEViT", "RoPEViTStride16", "build_ropevit_sfp_backbone", "build_sfp", "resample_to_stride"]
