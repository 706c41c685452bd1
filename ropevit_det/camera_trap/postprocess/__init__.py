"""Decisions on finished results through MegaDetector's tools: review pages, repeat-detection elimination, smoothing."""
