"""Camera-trap data: COCO Camera Traps files as datasets, class mappings to MegaDetector classes, path matching, splits."""
