"""ViTDet's three Cascade R-CNN stages (4conv1fc box heads with LN, IoU 0.5 / 0.6 / 0.7), shared by the COCO
(lazy/ropevit_cascade_mrcnn.py) and LVIS (LVIS/ropevit_cascade_mrcnn.py) configs, which differ only in the
predictors' arguments."""

from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.roi_heads import CascadeROIHeads, FastRCNNConvFCHead, FastRCNNOutputLayers


def make_cascade(roi_heads, **predictor_kwargs) -> None:
    """Turn the Mask R-CNN ``roi_heads`` node into ViTDet's Cascade heads, in place; ``predictor_kwargs`` go to
    every stage's ``FastRCNNOutputLayers``."""
    for key in ("box_head", "box_predictor", "proposal_matcher"):  # arguments CascadeROIHeads does not take
        roi_heads.pop(key)
    roi_heads.update(
        _target_=CascadeROIHeads,
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
                cls_agnostic_bbox_reg=True,
                num_classes="${...num_classes}",
                **predictor_kwargs,
            )
            for (w1, w2) in [(10, 5), (20, 10), (30, 15)]
        ],
        proposal_matchers=[
            L(Matcher)(thresholds=[th], labels=[0, 1], allow_low_quality_matches=False) for th in [0.5, 0.6, 0.7]
        ],
    )
    roi_heads.mask_head.conv_norm = "LN"  # as detectron2's CascadeROIHeads builds it from the yacs config
