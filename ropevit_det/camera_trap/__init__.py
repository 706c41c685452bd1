"""Camera-trap workflow: COCO Camera Traps data, MegaDetector-format results, robust image input, metrics.

Modules: ``cct`` (CCT files as detectron2 datasets), ``split`` (location-disjoint splits), ``md_format``
(MegaDetector results files, resume), ``journal`` (append-only checkpoints), ``image_io`` (input listing and
robust decoding), ``exif`` (displayed sizes, capture times), ``video`` and ``video_results`` (sampled frames,
MD video entries), ``metrics`` (image / sequence / box metrics), ``classes`` and ``matching`` (shared helpers),
``detector`` / ``detection_classes`` / ``inputs`` / ``inference`` (batch detection behind ``tools/infer.py``:
the model, its classes as MD categories, the worker-side inputs, the loop), ``sharding`` and ``merge`` (parts
of an input, merged results), ``species`` (species labels from the RoPE ViT classifier), ``render`` (boxes
drawn onto frames) and ``coco_results`` (MD results as COCO results JSON).
"""
