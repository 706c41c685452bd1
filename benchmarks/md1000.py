"""MegaDetector 1000's models as benchmark peers next to v5a: cedar (YOLOv9c, 640 px), larch (YOLO11L, 640),
sorrel (YOLO11s, 960) and spruce (YOLOv5s, 640), each its published architecture at its published input size and
stride, with random weights, fed and post-processed as MegaDetector's PyTorch detector does.

* Networks: cedar, larch and sorrel from the ``ultralytics`` package's own model definitions (``yolov9c.yaml``,
  ``yolo11l.yaml``, ``yolo11s.yaml``, shipped inside the package), spruce from the ``yolov5`` package's
  ``yolov5s.yaml``; 3 classes (animal, person, vehicle); conv and batch norm fused, as the loaders fuse them.
* Input: the same synthetic 4:3 frame as v5a, letterboxed by yolov5's ``letterbox`` to the model's long side,
  stride 32 (the P5 models' largest stride).
* Post-processing: what ``megadetector.detection.pytorch_detector`` calls for each model type (classic mode,
  confidence 0.005, IoU 0.45): its own ``nms`` for the YOLOv5 layout (spruce, as v5a), the ``ultralytics``
  library's ``non_max_suppression`` for the anchor-free layout (B, 4 + classes, anchors) of ultralytics models,
  which its ``nms`` would misread. Random weights are made to score near 0.5 (class biases zeroed, see
  ``build_peer``), as v5a's do, so that candidates reach NMS. Before it, the same candidate cap as ours and
  v5a's: only the ``topk_candidates`` best rows keep their scores.

Both packages are the ``bench`` extra (tools/setup_env.sh installs them with --no-deps).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .megadetector import (
    INSTALL_HINT,
    MDV5A_CLASSES,
    MDV5A_CONF_THRESH,
    MDV5A_IMAGE_SIZE,
    MDV5A_NMS_IOU,
    MDV5A_STRIDE,
    build_mdv5a,
    letterboxed_frame,
    mdv5a_postprocess,
)

__all__ = [
    "PEERS",
    "PeerModel",
    "build_peer",
    "cap_anchor_free_candidates",
    "peer_frame",
    "peer_postprocess",
]


@dataclass(frozen=True)
class PeerModel:
    """One MegaDetector model as the benchmark builds it.

    Args:
        name: MegaDetector's short name ("mdv5a", "cedar", ...).
        architecture: the published network.
        library: "yolov5" (anchor-based, objectness at index 4) or "ultralytics" (anchor-free, no objectness).
        definition: the model definition file inside that package.
        image_size: the published input size (long side of the letterbox).
        stride: the letterbox's stride (the network's largest).
        speed_vs_v5a: MegaDetector's own ``normalized_typical_inference_speed`` (v5a = 1), for the report.
    """

    name: str
    architecture: str
    library: str
    definition: str
    image_size: int
    stride: int
    speed_vs_v5a: float


PEERS = {
    "mdv5a": PeerModel("mdv5a", "YOLOv5x6", "yolov5", "hub/yolov5x6.yaml", MDV5A_IMAGE_SIZE, MDV5A_STRIDE, 1.0),
    "cedar": PeerModel("cedar", "YOLOv9c", "ultralytics", "yolov9c.yaml", 640, 32, 2.0),
    "larch": PeerModel("larch", "YOLO11L", "ultralytics", "yolo11l.yaml", 640, 32, 2.4),
    "sorrel": PeerModel("sorrel", "YOLO11s", "ultralytics", "yolo11s.yaml", 960, 32, 7.0),
    "spruce": PeerModel("spruce", "YOLOv5s", "yolov5", "yolov5s.yaml", 640, 32, 12.7),
}


def _peer(name: str) -> PeerModel:
    if name not in PEERS:
        raise ValueError(f"unknown MegaDetector peer {name!r}; choose from {sorted(PEERS)}")
    return PEERS[name]


def build_peer(name: str, device: str | torch.device = "cpu", tiny: bool = False) -> torch.nn.Module:
    """The peer's network with random weights (seed 0), fused and in eval mode. ``tiny`` only shrinks v5a
    (its own smoke-test width); the MegaDetector 1000 models are small enough to build whole."""
    peer = _peer(name)
    if name == "mdv5a":
        return build_mdv5a(device, tiny=tiny)
    torch.manual_seed(0)
    if peer.library == "yolov5":
        import yaml

        try:
            import yolov5
            from yolov5.models.yolo import Model
        except ImportError as exc:
            raise ImportError(f"{exc}: {name} needs the yolov5 package: {INSTALL_HINT}") from None
        path = os.path.join(os.path.dirname(yolov5.__file__), "models", peer.definition)
        with open(path, encoding="utf-8") as f:
            definition = yaml.safe_load(f)
        model = Model(copy.deepcopy(definition), ch=3, nc=MDV5A_CLASSES)
        # yolov5 initialises objectness and class biases low (a training prior): at this small size random
        # weights would then score below MegaDetector's 0.005 (see the ultralytics case below); zeroed, they score
        # near 0.5 and the candidate cap sets NMS's work. (v5a is left as built: at full size it scores near 0.5.)
        with torch.no_grad():
            for conv in model.model[-1].m:
                conv.bias.view(model.model[-1].na, -1)[:, 4:] = 0
        return model.fuse().eval().to(device)
    try:
        from ultralytics.nn.tasks import DetectionModel
    except ImportError as exc:
        raise ImportError(f"{exc}: {name} needs the ultralytics package: {INSTALL_HINT}") from None
    model = DetectionModel(peer.definition, ch=3, nc=MDV5A_CLASSES, verbose=False)
    # Ultralytics initialises the class biases to about -8 (a prior for training from scratch), so random weights
    # would score every anchor near 3e-4, below MegaDetector's 0.005, and NMS would get nothing to do. Zeroed,
    # every anchor scores near 0.5, as v5a's random objectness does, and the candidate cap sets NMS's work.
    with torch.no_grad():
        for branch in model.model[-1].cv3:
            branch[-1].bias.zero_()
    return model.fuse(verbose=False).eval().to(device)


def peer_frame(name: str, image_size: int | None = None) -> np.ndarray:
    """The synthetic 4:3 frame letterboxed to the peer's size (or ``image_size``) and stride: (H, W, 3) uint8."""
    peer = _peer(name)
    return letterboxed_frame(image_size or peer.image_size, stride=peer.stride)


def cap_anchor_free_candidates(prediction: torch.Tensor, topk_candidates: int) -> torch.Tensor:
    """``prediction`` (B, 4 + classes, anchors), ultralytics' layout, with the class scores of all but the
    ``topk_candidates`` best anchors (best class score) of each image set to 0."""
    if topk_candidates <= 0 or prediction.shape[2] <= topk_candidates:
        return prediction
    score = prediction[:, 4:].max(1).values  # (B, anchors)
    keep = torch.zeros_like(score, dtype=torch.bool)
    keep.scatter_(1, score.topk(topk_candidates, dim=1).indices, True)
    capped = prediction.clone()
    capped[:, 4:] = prediction[:, 4:] * keep[:, None]
    return capped


def peer_postprocess(name: str, topk_candidates: int) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    """MegaDetector's post-processing of the peer's ``model(x)[0]``, after the candidate cap: a list of
    (detections, 6) tensors, x1 y1 x2 y2 confidence class."""
    peer = _peer(name)
    if peer.library == "yolov5":
        return mdv5a_postprocess(topk_candidates)  # MegaDetector's own nms, as for v5a
    try:
        from ultralytics.utils.nms import non_max_suppression
    except ImportError:  # before mid-2025 it lived in ops (pytorch_detector tries both too)
        from ultralytics.utils.ops import non_max_suppression

    def postprocess(prediction: torch.Tensor) -> list[torch.Tensor]:
        return non_max_suppression(
            cap_anchor_free_candidates(prediction.float(), topk_candidates),
            conf_thres=MDV5A_CONF_THRESH,
            iou_thres=MDV5A_NMS_IOU,
            agnostic=False,
            multi_label=False,
        )

    return postprocess
