"""Cascade Mask R-CNN, RoPE ViT-B/14, on LVIS v1: ViTDet's LVIS/cascade_mask_rcnn_vitdet_b_100ep.py over
LVIS/ropevit_mrcnn.py. Its yacs twin is LVIS/ropevit_cascade_mrcnn.yaml."""
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.roi_heads import CascadeROIHeads, FastRCNNConvFCHead, FastRCNNOutputLayers

from ropevit_det.data.lvis_datasets import fed_loss_cls_weights

from .ropevit_mrcnn import dataloader, lr_multiplier, model, optimizer, train

# arguments that don't exist for Cascade R-CNN
[model.roi_heads.pop(k) for k in ["box_head", "box_predictor", "proposal_matcher"]]

model.roi_heads.update(
    _target_=CascadeROIHeads,
    num_classes=1203,
    box_heads=[
        L(FastRCNNConvFCHead)(
            input_shape=ShapeSpec(channels=256, height=7, width=7),
            conv_dims=[256, 256, 256, 256],
            fc_dims=[1024],
            conv_norm="LN",
        )
        for _ in range(3)
    ],
    box_predictors=[
        L(FastRCNNOutputLayers)(
            input_shape=ShapeSpec(channels=1024),
            box2box_transform=L(Box2BoxTransform)(weights=(w1, w1, w2, w2)),
            num_classes="${...num_classes}",
            test_score_thresh=0.02,
            test_topk_per_image=300,
            cls_agnostic_bbox_reg=True,
            use_sigmoid_ce=True,
            use_fed_loss=True,
            get_fed_loss_cls_weights=L(fed_loss_cls_weights)(
                dataset_names="${dataloader.train.dataset.names}", freq_weight_power=0.5
            ),
        )
        for (w1, w2) in [(10, 5), (20, 10), (30, 15)]
    ],
    proposal_matchers=[
        L(Matcher)(thresholds=[th], labels=[0, 1], allow_low_quality_matches=False) for th in [0.5, 0.6, 0.7]
    ],
)
model.roi_heads.mask_head.conv_norm = "LN"  # as detectron2's CascadeROIHeads builds it from the yacs config

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]
