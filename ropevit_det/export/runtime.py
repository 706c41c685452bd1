"""Run an exported model (ONNX Runtime, OpenVINO or TorchScript) behind the interface of
``engine.predictor.Detector``: a list of detectron2 input dicts in, a list of ``Instances`` out, with boxes
(and pasted masks) in each input's ``height`` x ``width``.

Each image is shrunk if it does not fit the export size (aspect kept), padded with the pixel mean at the
bottom and right (zeros after normalisation, as detectron2 pads) and run alone: the graph takes batch 1.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Boxes, Instances

from .info import EXPORT_INFO_KEY, ExportInfo

__all__ = ["RUNTIMES", "ExportedDetector", "read_export_info"]

RUNTIMES = ("onnxruntime", "openvino", "torchscript")


def read_export_info(path: str | os.PathLike) -> ExportInfo:
    """The :class:`ExportInfo` stored in an exported ``.onnx`` or TorchScript file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"exported model {path} does not exist")
    if path.endswith(".onnx"):
        import onnx

        props = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
        text = props.get(EXPORT_INFO_KEY)
    else:
        extra = {EXPORT_INFO_KEY: ""}
        torch.jit.load(path, map_location="cpu", _extra_files=extra)
        text = extra[EXPORT_INFO_KEY] or None
    if text is None:
        raise ValueError(f"{path} was not written by `ropevit-det export`: it has no {EXPORT_INFO_KEY!r} record")
    return ExportInfo.from_json(text)


def _onnxruntime_session(path: str, threads: int) -> Callable[[np.ndarray, np.ndarray], list[np.ndarray]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return lambda image, hw: session.run(None, {"image": image, "image_hw": hw})


def _openvino_session(path: str, threads: int) -> Callable[[np.ndarray, np.ndarray], list[np.ndarray]]:
    import openvino as ov

    # f32 inference precision: on CPUs with bf16 OpenVINO would otherwise pick bf16 on its own.
    compiled = ov.Core().compile_model(
        path, "CPU", {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}
    )

    def run(image: np.ndarray, hw: np.ndarray) -> list[np.ndarray]:
        result = compiled({"image": image, "image_hw": hw})
        return [result[output] for output in compiled.outputs]

    return run


def _torchscript_session(path: str, threads: int) -> Callable[[np.ndarray, np.ndarray], list[np.ndarray]]:
    module = torch.jit.load(path, map_location="cpu").eval()

    def run(image: np.ndarray, hw: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [t.numpy() for t in module(torch.from_numpy(image), torch.from_numpy(hw))]

    return run


_SESSIONS = {"onnxruntime": _onnxruntime_session, "openvino": _openvino_session, "torchscript": _torchscript_session}


class ExportedDetector:
    """An exported model with the interface of ``engine.predictor.Detector`` (CPU).

    Args:
        path: a file written by ``ropevit-det export`` (``.onnx`` for onnxruntime / openvino, else TorchScript).
        runtime: one of ``RUNTIMES``.
        threads: intra-op threads (default: torch's thread count).
    """

    def __init__(self, path: str | os.PathLike, runtime: str = "onnxruntime", threads: int | None = None) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
        self.info = read_export_info(path)
        wanted = "torchscript" if runtime == "torchscript" else "onnx"
        if self.info.fmt != wanted:
            raise ValueError(f"{path} is a {self.info.fmt} export; runtime {runtime!r} needs a {wanted} export")
        self.runtime = runtime
        self.device = torch.device("cpu")
        self._run = _SESSIONS[runtime](os.fspath(path), threads or torch.get_num_threads())
        self._pad = torch.tensor(self.info.pixel_mean, dtype=torch.float32).view(3, 1, 1)

    def prepare(self, image: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(3, h, w) pixels -> the graph's ``image`` (3, H, W) float32 and ``image_hw`` (2,) int64."""
        height, width = self.info.input_hw
        image = image.to(torch.float32)
        h, w = image.shape[-2:]
        if h > height or w > width:
            scale = min(height / h, width / w)
            size = (min(height, round(h * scale)), min(width, round(w * scale)))
            image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]
            h, w = size
        canvas = self._pad.expand(3, height, width).clone()
        canvas[:, :h, :w] = image
        return canvas.numpy(), np.array([h, w], dtype=np.int64)

    def __call__(self, inputs: list[dict[str, Any]]) -> list[Instances]:
        results = []
        for item in inputs:
            image, image_hw = self.prepare(item["image"])
            outputs = dict(
                zip(self.info.outputs, (torch.from_numpy(np.asarray(o)) for o in self._run(image, image_hw)))
            )
            instances = Instances((int(image_hw[0]), int(image_hw[1])))
            instances.pred_boxes = Boxes(outputs["boxes"])
            instances.scores = outputs["scores"]
            instances.pred_classes = outputs["classes"].to(torch.int64)
            if "masks" in outputs:
                instances.pred_masks = outputs["masks"]
            height, width = item.get("height", image_hw[0]), item.get("width", image_hw[1])
            results.append(detector_postprocess(instances, int(height), int(width)))
        return results
