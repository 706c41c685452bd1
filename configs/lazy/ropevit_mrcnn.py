"""LazyConfig: the same Mask R-CNN as configs/ropevit_mrcnn.yaml, from the same modules, for ViTDet-style users.

    from detectron2.config import LazyConfig, instantiate
    cfg = LazyConfig.load("configs/lazy/ropevit_mrcnn.py")
    model = instantiate(cfg.model)

Starts from detectron2's own ViTDet Mask R-CNN (2-conv RPN, 4conv1fc box head with LN, LN mask head)
and swaps its backbone for the RoPE ViT-B/14 pyramid.
"""
from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.modeling.backbone.fpn import LastLevelMaxPool

from ropevit_det.modeling.rope_vit import RoPEViT
from ropevit_det.modeling.sfp_backbone import RoPEViTSimpleFeaturePyramid, RoPEViTStride16

model = model_zoo.get_config("common/models/mask_rcnn_vitdet.py").model
# birder's default rgb_stats x255, RGB order (as in configs/Base-RoPEViT-SFP.yaml).
model.pixel_mean = [132.3705, 135.303, 124.3635]
model.pixel_std = [59.058, 58.752, 65.994]
model.input_format = "RGB"
model.backbone = L(RoPEViTSimpleFeaturePyramid)(
    net=L(RoPEViTStride16)(vit=L(RoPEViT)(drop_path_rate=0.1)),
    in_feature="neck",
    out_channels=256,
    scale_factors=(4.0, 2.0, 1.0, 0.5),
    top_block=L(LastLevelMaxPool)(),
    norm="LN",
    square_pad=1024,
)
