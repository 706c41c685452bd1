"""Mask R-CNN, RoPE ViT-B/14, on LVIS v1: ViTDet's projects/ViTDet/configs/LVIS/mask_rcnn_vitdet_b_100ep.py over
lazy/ropevit_mrcnn.py. Its yacs twin is LVIS/ropevit_mrcnn.yaml (tests/engine/test_lazy_config.py compares them)."""

from detectron2.config import LazyCall as L
from detectron2.data.samplers import RepeatFactorTrainingSampler

from ropevit_det.data.lvis_datasets import fed_loss_cls_weights
from ropevit_det.evaluation.lvis import LVISEvaluatorNumpy2

from ..lazy.ropevit_mrcnn import dataloader, lr_multiplier, model, optimizer, test, train

dataloader.train.dataset.names = "lvis_v1_train"
dataloader.train.sampler = L(RepeatFactorTrainingSampler)(
    repeat_factors=L(RepeatFactorTrainingSampler.repeat_factors_from_category_frequency)(
        dataset_dicts="${dataloader.train.dataset}", repeat_thresh=0.001
    )
)
dataloader.test.dataset.names = "lvis_v1_val"
# detectron2's LVISEvaluator, with lvis 0.5.3's np.float use bridged for NumPy 2 (ropevit_det/evaluation/lvis.py)
dataloader.evaluator = L(LVISEvaluatorNumpy2)(
    dataset_name="${..test.dataset.names}",
    max_dets_per_image=300,
    output_dir="${...train.output_dir}/inference",
)

model.roi_heads.num_classes = 1203
model.roi_heads.box_predictor.test_score_thresh = 0.02
model.roi_heads.box_predictor.test_topk_per_image = 300
model.roi_heads.box_predictor.use_sigmoid_ce = True
model.roi_heads.box_predictor.use_fed_loss = True
# ViTDet: a lambda reading this module's dataloader; this form follows dataset overrides too.
model.roi_heads.box_predictor.get_fed_loss_cls_weights = L(fed_loss_cls_weights)(
    dataset_names="${dataloader.train.dataset.names}", freq_weight_power=0.5
)

# Schedule: 100 ep = 156250 iters * 64 images/iter / 100000 images/ep
train.max_iter = 156250
train.eval_period = 30000

lr_multiplier.scheduler.milestones = [138889, 150463]
lr_multiplier.scheduler.num_updates = train.max_iter
lr_multiplier.warmup_length = 250 / train.max_iter

optimizer.lr = 2e-4

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "test", "train"]
