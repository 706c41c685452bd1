"""detectron2's ``StandardROIHeads`` with an optional cap on the candidates that reach test-time NMS.

Why: ``FastRCNNOutputLayers.inference`` sends every (proposal, class) pair above ``SCORE_THRESH_TEST`` to
class-wise NMS. At a low threshold (camera-trap tools keep detections down to 0.005; benchmarks use 0)
that is up to 1,000 proposals x 80 classes per image, and on a GPU torchvision's batched NMS then loops
over the classes, one synchronising call each, which dominates a whole Mask R-CNN inference on a GPU
(docs/PERFORMANCE.md has the profile). detectron2's RetinaNet bounds the same step with ``TOPK_CANDIDATES_TEST``;
its ROI heads have no such option, hence this small subclass. With ``MODEL.ROI_HEADS.TOPK_CANDIDATES_TEST``
at 0 (the default) nothing changes; at K > 0 only the K highest-scoring pairs of each image enter NMS.
Outputs can then differ only when NMS suppresses so many of the top K that fewer than
``TEST.DETECTIONS_PER_IMAGE`` remain, i.e. in the lowest-scoring detections.

Selection only: thresholding, box decoding, NMS and the top-k of the output stay detectron2's own code.
"""

from __future__ import annotations

import torch
from detectron2.config import configurable
from detectron2.modeling import ROI_HEADS_REGISTRY, StandardROIHeads
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers, fast_rcnn_inference
from detectron2.structures import Instances

from .norms import use_fused_channel_layer_norms

__all__ = ["CandidateCappedFastRCNNOutputLayers", "CandidateCappedROIHeads", "cap_candidates"]


def cap_candidates(scores: torch.Tensor, topk_candidates: int) -> torch.Tensor:
    """``scores`` (R, K + 1) with all but the ``topk_candidates`` best foreground scores pushed below any
    score threshold, so that detectron2's own filter drops them before NMS.

    The background column (last) and non-finite rows are left as they are: detectron2 drops rows with a
    non-finite score itself. Non-finite entries never count among the best.
    """
    foreground = scores[:, :-1]
    if topk_candidates <= 0 or foreground.numel() <= topk_candidates:
        return scores
    lowest = torch.finfo(scores.dtype).min
    finite = torch.isfinite(foreground)
    ranked = torch.where(finite, foreground, lowest)
    keep = torch.zeros_like(foreground, dtype=torch.bool).view(-1)
    keep[ranked.view(-1).topk(topk_candidates).indices] = True
    capped = scores.clone()
    capped[:, :-1] = torch.where(keep.view_as(foreground) | ~finite, foreground, lowest)
    return capped


class CandidateCappedFastRCNNOutputLayers(FastRCNNOutputLayers):
    """``FastRCNNOutputLayers`` whose test-time inference caps the candidates per image before NMS."""

    @configurable
    def __init__(self, *args, test_topk_candidates: int = 0, **kwargs) -> None:
        """Args: as ``FastRCNNOutputLayers``, plus ``test_topk_candidates`` (0 = no cap)."""
        super().__init__(*args, **kwargs)
        if test_topk_candidates < 0:
            raise ValueError(f"test_topk_candidates must be >= 0 (0 = no cap), got {test_topk_candidates}")
        self.test_topk_candidates = test_topk_candidates

    @classmethod
    def from_config(cls, cfg, input_shape) -> dict:
        ret = super().from_config(cfg, input_shape)
        ret["test_topk_candidates"] = cfg.MODEL.ROI_HEADS.TOPK_CANDIDATES_TEST
        return ret

    def inference(
        self, predictions: tuple[torch.Tensor, torch.Tensor], proposals: list[Instances]
    ) -> tuple[list[Instances], list[torch.Tensor]]:
        if self.test_topk_candidates <= 0:
            return super().inference(predictions, proposals)
        boxes = self.predict_boxes(predictions, proposals)
        scores = [cap_candidates(s, self.test_topk_candidates) for s in self.predict_probs(predictions, proposals)]
        image_shapes = [x.image_size for x in proposals]
        return fast_rcnn_inference(
            boxes, scores, image_shapes, self.test_score_thresh, self.test_nms_thresh, self.test_topk_per_image
        )


@ROI_HEADS_REGISTRY.register()
class CandidateCappedROIHeads(StandardROIHeads):
    """``StandardROIHeads`` with ``CandidateCappedFastRCNNOutputLayers`` as its box predictor, and the box and
    mask heads' "LN" norms run as fused ``F.layer_norm`` (``norms.py``).

    Same modules and parameter names as ``StandardROIHeads``, so checkpoints move freely between the two.
    """

    @classmethod
    def _init_box_head(cls, cfg, input_shape) -> dict:
        ret = super()._init_box_head(cfg, input_shape)
        # The same initial weights as StandardROIHeads (copied, not re-drawn, with the random state left
        # untouched), so that switching between the two changes nothing in training either.
        with torch.random.fork_rng(devices=[]):
            capped = CandidateCappedFastRCNNOutputLayers(cfg, ret["box_head"].output_shape)
        capped.load_state_dict(ret["box_predictor"].state_dict())
        ret["box_predictor"] = capped
        use_fused_channel_layer_norms(ret["box_head"])
        return ret

    @classmethod
    def _init_mask_head(cls, cfg, input_shape) -> dict:
        ret = super()._init_mask_head(cfg, input_shape)
        if "mask_head" in ret:
            use_fused_channel_layer_norms(ret["mask_head"])
        return ret
