"""Evaluation: detectron2's COCOEvaluator with a fast engine even without detectron2's compiled _C."""

from .fast_coco import FasterCOCOEvaluator, build_coco_evaluator, detectron2_has_fast_cocoeval

__all__ = ["FasterCOCOEvaluator", "build_coco_evaluator", "detectron2_has_fast_cocoeval"]
