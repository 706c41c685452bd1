"""MegaDetector v5a as a benchmark peer: its network (YOLOv5x6, 3 classes) from the ``yolov5`` package that
MegaDetector's PyTorch detector imports, with random weights, fed and post-processed as MegaDetector does.

* Input: a 4:3 frame letterboxed by yolov5's own ``letterbox`` to 1280 px on the long side, stride 64 (1280 x 960), as
  ``megadetector.detection.pytorch_detector`` does in its default ("classic") mode.
* Network alone: ``model(x)[0]``, pixels scaled to [0, 1] first (MegaDetector's preprocessing).
* Post-processing: MegaDetector's own ``nms`` (objectness x class confidence, class-wise torchvision NMS,
  IoU 0.45, 300 detections at most), after a fixed number of candidates: random weights put every anchor near
  objectness 0.5, so raw counts would measure nothing. As for our model (``MODEL.ROI_HEADS.TOPK_CANDIDATES_TEST``),
  only the ``topk_candidates`` best-scoring rows keep their objectness; the others are zeroed and dropped by
  MegaDetector's confidence filter.

The ``yolov5`` package is the ``bench`` extra (tools/setup_env.sh installs it where it installs cleanly).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable

import numpy as np
import torch

__all__ = [
    "MDV5A_IMAGE_SIZE",
    "MDV5A_STRIDE",
    "build_mdv5a",
    "letterboxed_frame",
    "mdv5a_postprocess",
    "yolov5_model_config",
]

MDV5A_IMAGE_SIZE = 1280  # MegaDetector v5's default: the long side
MDV5A_STRIDE = 64  # the P6 models' largest stride, which MegaDetector uses for letterboxing at 1280
MDV5A_CLASSES = 3  # animal, person, vehicle
MDV5A_CONF_THRESH = 0.005  # MegaDetector's default output threshold (run_detector_batch)
MDV5A_NMS_IOU = 0.45  # pytorch_detector's NMS IoU in its default ("classic") compatibility mode
INSTALL_HINT = (
    "pip install --no-deps yolov5==7.0.14 ultralytics && pip install pandas seaborn thop psutil "
    "(or bash tools/setup_env.sh, which installs the bench extra where it installs cleanly)"
)


def yolov5_model_config(name: str = "yolov5x6.yaml") -> str:
    """Path of a model definition shipped in the ``yolov5`` package (``yolov5/models/hub/NAME``)."""
    try:
        import yolov5
    except ImportError as exc:
        raise ImportError(f"{exc}: MegaDetector's network needs the yolov5 package: {INSTALL_HINT}") from None
    path = os.path.join(os.path.dirname(yolov5.__file__), "models", "hub", name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing from this yolov5 install; reinstall yolov5==7.0.14")
    return path


def build_mdv5a(device: str | torch.device = "cpu", tiny: bool = False) -> torch.nn.Module:
    """MegaDetector v5a's network (YOLOv5x6, 3 classes), random weights, eval mode, fused as MegaDetector's
    loader fuses it (``attempt_load`` fuses conv and batch norm).

    ``tiny``: the same definition with depth/width multiples of 0.33/0.0625 (smoke tests; timings meaningless).
    """
    import yaml
    from yolov5.models.yolo import Model

    with open(yolov5_model_config(), encoding="utf-8") as f:
        definition = yaml.safe_load(f)
    if tiny:
        definition["depth_multiple"], definition["width_multiple"] = 0.33, 0.0625
    torch.manual_seed(0)
    model = Model(copy.deepcopy(definition), ch=3, nc=MDV5A_CLASSES)
    return model.fuse().eval().to(device)


def letterboxed_frame(image_size: int = MDV5A_IMAGE_SIZE, seed: int = 0, stride: int = MDV5A_STRIDE) -> np.ndarray:
    """A synthetic 4:3 camera frame (1536 x 2048 RGB uint8) letterboxed as MegaDetector does: (H, W, 3) uint8."""
    from yolov5.utils.augmentations import letterbox

    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(12, 16, 3)).astype(np.float32)
    frame = np.kron(coarse, np.ones((128, 128, 1), dtype=np.float32))  # 1536 x 2048 blocks
    frame = (frame + rng.uniform(0, 40, size=frame.shape)).clip(0, 255).astype(np.uint8)
    boxed, _, _ = letterbox(frame, new_shape=image_size, stride=stride, auto=True, scaleFill=False, scaleup=True)
    return boxed


def cap_yolo_candidates(prediction: torch.Tensor, topk_candidates: int) -> torch.Tensor:
    """``prediction`` (B, anchors, 5 + classes) with the objectness of all but the ``topk_candidates``
    best-scoring rows (objectness x best class confidence) of each image set to 0."""
    if topk_candidates <= 0 or prediction.shape[1] <= topk_candidates:
        return prediction
    score = prediction[..., 4] * prediction[..., 5:].max(-1).values
    keep = torch.zeros_like(score, dtype=torch.bool)
    keep.scatter_(1, score.topk(topk_candidates, dim=1).indices, True)
    capped = prediction.clone()
    capped[..., 4] = torch.where(keep, prediction[..., 4], torch.zeros_like(prediction[..., 4]))
    return capped


def mdv5a_postprocess(topk_candidates: int) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    """MegaDetector's post-processing of ``model(x)[0]``, after the candidate cap (see the module docstring)."""
    from megadetector.detection.pytorch_detector import nms

    def postprocess(prediction: torch.Tensor) -> list[torch.Tensor]:
        return nms(
            cap_yolo_candidates(prediction.float(), topk_candidates),
            conf_thres=MDV5A_CONF_THRESH,
            iou_thres=MDV5A_NMS_IOU,
        )

    return postprocess
