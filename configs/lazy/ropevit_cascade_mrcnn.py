"""Cascade Mask R-CNN, RoPE ViT-B/14, on COCO 2017: ViTDet's cascade_mask_rcnn_vitdet_b_100ep.py over
lazy/ropevit_mrcnn.py. Its yacs twin is configs/ropevit_cascade_mrcnn.yaml (built from detectron2's own
CascadeROIHeads, whose heads keep detectron2's "LN")."""

from .common.cascade_heads import make_cascade
from .ropevit_mrcnn import dataloader, lr_multiplier, model, optimizer, test, train

make_cascade(model.roi_heads, test_score_thresh=0.05)

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "test", "train"]
