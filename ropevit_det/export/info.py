"""What an exported model needs beside its graph: the input size it was traced at, the pixel mean its padding
uses, and the names of its outputs. Stored inside the file (ONNX ``metadata_props``, TorchScript extra file)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

__all__ = ["EXPORT_INFO_KEY", "INPUT_NAMES", "OUTPUT_NAMES", "ExportInfo"]

EXPORT_INFO_KEY = "ropevit_det_export"
INPUT_NAMES = ("image", "image_hw")
# Boxes are in the exported input's pixels (before the rescale to the displayed size); masks are per-box
# 28 x 28 probabilities, pasted into the image by detectron2's ``detector_postprocess``.
OUTPUT_NAMES = ("boxes", "scores", "classes", "masks")


@dataclass(frozen=True)
class ExportInfo:
    """Args:
    input_hw: the one (height, width) the graph takes: inputs are padded (or shrunk, then padded) to it.
    pixel_mean: ``MODEL.PIXEL_MEAN``; padding with it is padding with zeros after normalisation, as
        detectron2 pads.
    input_format: ``INPUT.FORMAT`` of the channels (RGB for RoPE ViT).
    outputs: the graph's outputs, a prefix of ``OUTPUT_NAMES`` (``masks`` only for Mask R-CNN).
    num_classes: ``MODEL.ROI_HEADS.NUM_CLASSES``.
    score_thresh: ``MODEL.ROI_HEADS.SCORE_THRESH_TEST`` traced into the graph.
    config: the config file the model was built from (for the record).
    fmt: "onnx" or "torchscript".
    """

    input_hw: tuple[int, int]
    pixel_mean: tuple[float, float, float]
    input_format: str
    outputs: tuple[str, ...]
    num_classes: int
    score_thresh: float
    config: str
    fmt: str

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ExportInfo:
        data = json.loads(text)
        data["input_hw"] = tuple(data["input_hw"])
        data["pixel_mean"] = tuple(data["pixel_mean"])
        data["outputs"] = tuple(data["outputs"])
        return cls(**data)
