"""Camera-trap data: COCO Camera Traps files as datasets, mappings to MegaDetector classes, path matching, splits."""
