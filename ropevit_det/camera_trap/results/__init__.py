"""MegaDetector-format results: the format, the resumable writer and its journal, merging, video entries, COCO."""
