"""Camera-trap workflow: COCO Camera Traps data, MegaDetector-format results, robust image input, metrics.

Submodules are imported where used (``from ropevit_det.camera_trap.cct import register_cct_dataset``), so
that reading an MD results file does not pull in detectron2 or torch.
"""
