"""Cascade Mask R-CNN, RoPE ViT-B/14, on LVIS v1: ViTDet's LVIS/cascade_mask_rcnn_vitdet_b_100ep.py over
LVIS/ropevit_mrcnn.py. Its yacs twin is LVIS/ropevit_cascade_mrcnn.yaml."""

from detectron2.config import LazyCall as L

from ropevit_det.data.lvis_datasets import fed_loss_cls_weights

from ..lazy.common.cascade_heads import make_cascade
from .ropevit_mrcnn import dataloader, lr_multiplier, model, optimizer, test, train

model.roi_heads.num_classes = 1203
make_cascade(
    model.roi_heads,
    test_score_thresh=0.02,
    test_topk_per_image=300,
    use_sigmoid_ce=True,
    use_fed_loss=True,
    get_fed_loss_cls_weights=L(fed_loss_cls_weights)(
        dataset_names="${dataloader.train.dataset.names}", freq_weight_power=0.5
    ),
)

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "test", "train"]
