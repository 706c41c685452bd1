"""Mask R-CNN, RoPE ViT-B/14 from the iNat21 weights, on COCO 2017: ViTDet-B's recipe as a full LazyConfig
(``model``, ``dataloader``, ``optimizer``, ``lr_multiplier``, ``train``, and our ``test``), after detectron2's
projects/ViTDet/configs/COCO/mask_rcnn_vitdet_b_100ep.py. Its yacs twin is configs/ropevit_mrcnn.yaml;
tests/engine/test_lazy_config.py checks that both build the same model, optimizer, schedule and augmentations.

    ropevit-det train --config lazy/ropevit_mrcnn.py --num-gpus 8
    ropevit-det train --config lazy/ropevit_mrcnn.py --eval-only train.init_checkpoint=output/model_final.pth

Every departure from ViTDet-B, and why, is in docs/RESEARCH.md.
"""

import torch
from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.modeling.backbone.fpn import LastLevelMaxPool
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import MultiStepParamScheduler

from ropevit_det.engine.optimizer import optimizer_param_groups
from ropevit_det.modeling.norms import ChannelLayerNorm
from ropevit_det.modeling.roi_heads import CandidateCappedFastRCNNOutputLayers, CandidateCappedROIHeads
from ropevit_det.modeling.rope_vit import RoPEViT
from ropevit_det.modeling.sfp_backbone import RoPEViTSimpleFeaturePyramid, RoPEViTStride16

from .common.coco_loader_lsj import dataloader

# detectron2's ViTDet Mask R-CNN (2-conv RPN, 4conv1fc box head with LN, LN mask head), RoPE ViT-B/14 backbone.
model = model_zoo.get_config("common/models/mask_rcnn_vitdet.py").model
# birder's default rgb_stats x255, RGB order (as in configs/Base-RoPEViT-SFP.yaml).
model.pixel_mean = [132.3705, 135.303, 124.3635]
model.pixel_std = [59.058, 58.752, 65.994]
model.input_format = "RGB"
model.backbone = L(RoPEViTSimpleFeaturePyramid)(
    net=L(RoPEViTStride16)(
        vit=L(RoPEViT)(
            img_size=336,  # the weights' resolution (MODEL.ROPE_VIT.PRETRAIN_IMG_SIZE)
            patch_size=14,
            embed_dim=768,
            depth=12,
            num_heads=12,
            mlp_dim=3072,
            num_reg_tokens=4,
            rope_positions="interpolate",
            drop_path_rate=0.1,
        )
    ),
    in_feature="neck",
    out_channels=256,
    scale_factors=(4.0, 2.0, 1.0, 0.5),
    top_block=L(LastLevelMaxPool)(),
    norm="LN",
    square_pad=1024,
)
# As the yacs configs: the candidate-capped ROI heads (cap 0: StandardROIHeads' behaviour) with the heads'
# LN computed by F.layer_norm (same parameters and formula as detectron2's "LN").
model.roi_heads._target_ = CandidateCappedROIHeads
model.roi_heads.box_predictor._target_ = CandidateCappedFastRCNNOutputLayers
model.roi_heads.box_predictor.test_topk_candidates = 0
model.roi_heads.box_head.conv_norm = ChannelLayerNorm
model.roi_heads.mask_head.conv_norm = ChannelLayerNorm

# Initialization and trainer settings
train = model_zoo.get_config("common/train.py").train
train.amp.enabled = True
train.amp.precision = "bfloat16"  # ours (ViTDet: fp16); our tools read it, detectron2's ignore it
train.init_checkpoint = "birder://rope_vit_reg4_b14_capi-inat21"
train.model_ema = dict(enabled=False, decay=0.9999)  # ours: EMA of the weights, used for evaluation when enabled

# Ours, as the yacs TEST.AUG (detectron2's defaults): when enabled, --eval-only also evaluates detectron2's
# GeneralizedRCNNWithTTA (results keyed *_TTA). With square_pad=1024, max_size must be at most 1024 to enable it.
test = dict(
    aug=dict(enabled=False, min_sizes=[400, 500, 600, 700, 800, 900, 1000, 1100, 1200], max_size=4000, flip=True)
)

# Schedule: 100 ep = 184375 iters * 64 images/iter / 118000 images/ep
train.max_iter = 184375
lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(MultiStepParamScheduler)(
        values=[1.0, 0.1, 0.01],
        milestones=[163889, 177546],
        num_updates=train.max_iter,
    ),
    warmup_length=250 / train.max_iter,
    warmup_factor=0.001,
)

# Optimizer: AdamW with layer-wise lr decay 0.7 over encoder.block.N (birder's names; detectron2's
# get_vit_lr_decay_rate only knows ".blocks."); no weight decay on norms, position embedding and special tokens.
optimizer = L(torch.optim.AdamW)(
    params=L(optimizer_param_groups)(
        # params.model is set to the model object before instantiating the optimizer
        base_lr="${..lr}",
        weight_decay="${..weight_decay}",
        lr_decay_rate=0.7,
        num_layers="${model.backbone.net.vit.depth}",
    ),
    lr=1e-4,
    betas=(0.9, 0.999),
    weight_decay=0.1,
)
