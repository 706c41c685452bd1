"""Camera-trap workflow, one subpackage per stage.

``data`` (COCO Camera Traps files, class mappings, path matching, splits), ``inputs`` (listing, sharding, image and
video decoding, EXIF), ``detection`` (the batch job: worker-side inputs, categories, the loop, rendering),
``results`` (MegaDetector format, resumable writer and journal, merge, video entries, COCO results),
``postprocess`` (MegaDetector's review, repeat-detection elimination, smoothing), ``species`` (classifier,
taxonomy, label policy) and ``metrics`` (image / sequence / box metrics of a results file).
"""
