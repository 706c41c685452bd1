"""ViTDet's COCO data with large-scale jitter (projects/ViTDet/configs/common/coco_loader_lsj.py), evaluated by
our COCO evaluator (detectron2's, with faster-coco-eval where detectron2 has no compiled COCOeval).

Same as the yacs recipe's ``INPUT.LSJ`` (ropevit_det.engine.lsj_augmentations): flip, ResizeScale(0.1, 2.0),
FixedSizeCrop(pad=False); the model pads every batch to the square (``model.backbone.square_pad``).
"""

import detectron2.data.transforms as T
from detectron2 import model_zoo
from detectron2.config import LazyCall as L

from ropevit_det.evaluation.fast_coco import build_coco_evaluator

image_size = 1024
dataloader = model_zoo.get_config("common/data/coco.py").dataloader
dataloader.train.mapper.augmentations = [
    L(T.RandomFlip)(horizontal=True),  # flip first
    L(T.ResizeScale)(min_scale=0.1, max_scale=2.0, target_height=image_size, target_width=image_size),
    L(T.FixedSizeCrop)(crop_size=(image_size, image_size), pad=False),
]
dataloader.train.mapper.image_format = "RGB"
dataloader.train.total_batch_size = 64
# recompute boxes from the masks after cropping
dataloader.train.mapper.recompute_boxes = True

dataloader.test.mapper.augmentations = [
    L(T.ResizeShortestEdge)(short_edge_length=image_size, max_size=image_size),
]
dataloader.evaluator = L(build_coco_evaluator)(
    dataset_name="${..test.dataset.names}",
    output_dir="${...train.output_dir}/inference",
)
