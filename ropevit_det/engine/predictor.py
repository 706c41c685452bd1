"""A detector as a batch predictor (detectron2's DefaultPredictor, for batches): load it, prepare inputs, run it.

``load_detector`` builds ``cfg``'s detectron2 model and loads ``MODEL.WEIGHTS``; :class:`InputSpec` turns a
decoded RGB image into detectron2's input dict in a DataLoader worker (resize with ``ResizeShortestEdge`` as
``DefaultPredictor`` does, with ``height`` / ``width`` set to the displayed size so boxes come back in it);
:class:`Detector` runs the model on one batch (optionally with the backbone under bf16 autocast).
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import transforms as T
from detectron2.modeling import GeneralizedRCNN, build_model
from detectron2.structures import Instances

from ..checkpoint import RoPEViTCheckpointer, check_pixel_stats
from ..checkpoint.conversion import CHECKPOINT_AUTHOR

__all__ = ["Detector", "InputSpec", "load_detector"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputSpec:
    """How an RGB image becomes a detector input (picklable, so DataLoader workers can do it).

    Args:
        min_size, max_size: ``INPUT.MIN_SIZE_TEST`` / ``MAX_SIZE_TEST`` (min_size 0: no resizing).
        input_format: ``INPUT.FORMAT`` (``"RGB"`` for RoPE ViT; ``"BGR"`` for models trained so).
    """

    min_size: int
    max_size: int
    input_format: str = "RGB"

    @classmethod
    def from_cfg(cls, cfg: CfgNode) -> InputSpec:
        if cfg.INPUT.FORMAT not in ("RGB", "BGR"):
            raise ValueError(f"INPUT.FORMAT {cfg.INPUT.FORMAT!r} is not supported by batch inference; use RGB or BGR")
        return cls(int(cfg.INPUT.MIN_SIZE_TEST), int(cfg.INPUT.MAX_SIZE_TEST), cfg.INPUT.FORMAT)

    def __call__(self, image_rgb: np.ndarray, original_hw: tuple[int, int]) -> dict[str, Any]:
        """detectron2's input dict; ``height``/``width`` are the displayed size, so boxes come back in it."""
        image = image_rgb if self.input_format == "RGB" else image_rgb[:, :, ::-1]
        if self.min_size > 0:
            resize = T.ResizeShortestEdge([self.min_size, self.min_size], self.max_size)
            image = resize.get_transform(image).apply_image(image)
        tensor = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        return {"image": tensor, "height": original_hw[0], "width": original_hw[1]}


def load_detector(cfg: CfgNode) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build ``cfg``'s model, load ``MODEL.WEIGHTS`` with :class:`RoPEViTCheckpointer`, switch to eval mode.

    Returns:
        ``(model, meta)``: ``meta`` is what the checkpointer returned (``class_to_idx``, ``rgb_stats``, ... for
        birder-derived weights), for species labels and the pixel-statistics check.
    """
    if not cfg.MODEL.WEIGHTS:
        raise ValueError("no detector weights: MODEL.WEIGHTS is empty (it must name a trained detectron2 checkpoint)")
    model = build_model(cfg)
    meta = RoPEViTCheckpointer(model, strict_heads=True).load(cfg.MODEL.WEIGHTS) or {}
    check_pixel_stats(cfg, meta)
    if meta.get("__author__") == CHECKPOINT_AUTHOR:
        # Converted birder weights hold a classification ViT only: the detection heads are random.
        logger.warning(
            "%s holds backbone weights only: the detection heads are untrained and the detections "
            "meaningless. Use a fine-tuned detector checkpoint (the training tool's model_final.pth).",
            cfg.MODEL.WEIGHTS,
        )
    return model.eval(), meta


class Detector:
    """Run a detectron2 model on batches of prepared inputs.

    Args:
        model: the detectron2 model (eval mode).
        device: the model's device.
        bf16: run the backbone under ``torch.autocast(device, bfloat16)`` (fast on GPUs and on CPUs with
            AVX-512 BF16). For ``GeneralizedRCNN`` only the backbone is autocast: it is nearly all the compute,
            and keeping the heads in float32 keeps scores at full precision (bf16 has 8 significant bits, so
            scores near 0.5 would move in steps of 0.004 and tie). Other meta-architectures run wholly in bf16.
    """

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu", bf16: bool = False):
        self.model = model.eval()
        self.device = torch.device(device)
        self.bf16 = bf16

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()

    @torch.no_grad()
    def __call__(self, inputs: list[dict[str, Any]]) -> list[Instances]:
        if not inputs:
            return []
        if self.bf16 and isinstance(self.model, GeneralizedRCNN) and self.model.proposal_generator is not None:
            outputs = self._bf16_backbone_inference(inputs)
        else:
            with self._autocast():
                outputs = self.model(inputs)
        return [out["instances"].to("cpu") for out in outputs]

    def _bf16_backbone_inference(self, inputs: list[dict[str, Any]]) -> list[dict[str, Instances]]:
        """``GeneralizedRCNN.inference`` with autocast around the backbone only."""
        model = self.model
        images = model.preprocess_image(inputs)
        with self._autocast():
            features = model.backbone(images.tensor)
        features = {name: f.float() for name, f in features.items()}
        proposals, _ = model.proposal_generator(images, features, None)
        results, _ = model.roi_heads(images, features, proposals, None)
        return GeneralizedRCNN._postprocess(results, inputs, images.image_sizes)
