"""Camera-trap workflow: COCO Camera Traps data, MegaDetector-format results, robust image input, metrics.

Modules: ``cct`` (CCT files as detectron2 datasets), ``split`` (location-disjoint splits), ``md_format``
(MegaDetector results files, checkpointing and resume), ``image_io`` (input listing and robust decoding),
``metrics`` (image / sequence / box metrics), ``classes`` and ``matching`` (shared helpers), ``inference``
(batch detection behind ``tools/infer.py``), ``species`` (species labels from the RoPE ViT classifier),
``render`` (boxes drawn onto frames) and ``coco_results`` (MD results as COCO results JSON).
"""
