"""Species labels for detections: the RoPE ViT classifier, the taxonomy, and which labels may be given."""
