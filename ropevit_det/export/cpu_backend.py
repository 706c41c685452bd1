"""Inference backends for CPUs without bf16, each with the interface of ``engine.predictor.Detector``
(a list of detectron2 input dicts in, a list of ``Instances`` out).

* ``int8``: the ViT's linear layers (qkv, proj, MLP: about half the FLOPs at 1024 px, the rest is attention)
  quantized to int8 with ``torch.ao``'s dynamic quantization: weights int8 per tensor, activations quantized
  on the fly per batch; attention, norms and heads stay fp32. Runs on fbgemm (AVX2, faster with AVX-512
  VNNI). A quantized copy is made, so that a species classifier sharing the detector's ViT stays fp32.
* ``onnxruntime`` / ``openvino``: the model exported at start-up (``tracing.export_model``, fixed input size)
  and run by that runtime in fp32.

Which to pick is measured by ``python tools/benchmark.py`` from a clone (docs/PERFORMANCE_MEGADETECTOR.md); accuracy guards
in tests/test_cpu_backend.py.
"""
from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

import torch
from detectron2.config import CfgNode
from detectron2.modeling import GeneralizedRCNN

from ..modeling.rope_vit import RoPEViT
from .info import ExportInfo
from .runtime import ExportedDetector
from .tracing import default_input_hw, export_model, outputs_of

__all__ = ["CPU_BACKENDS", "cpu_detector", "export_for_runtime", "quantize_vit_linears"]

CPU_BACKENDS = ("int8", "onnxruntime", "openvino")


def quantize_vit_linears(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` with the ``nn.Linear`` layers of every RoPEViT encoder inside it quantized to int8 (dynamic
    quantization, in place). Only the encoder blocks: the detection heads keep fp32 scores and box deltas."""
    vits = [m for m in module.modules() if isinstance(m, RoPEViT)]
    if not vits:
        raise ValueError(f"{type(module).__name__} holds no RoPEViT to quantize")
    for vit in vits:
        torch.ao.quantization.quantize_dynamic(vit.encoder, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    return module


class Int8Detector:
    """The detectron2 model with its ViT's linear layers in int8 (see the module docstring); CPU, fp32 heads."""

    def __init__(self, model: GeneralizedRCNN) -> None:
        from ..engine.predictor import Detector

        self.model = quantize_vit_linears(copy.deepcopy(model).cpu().eval())
        self.device = torch.device("cpu")
        self._detector = Detector(self.model, "cpu")

    def __call__(self, inputs):
        return self._detector(inputs)


def export_for_runtime(model: GeneralizedRCNN, cfg: CfgNode, path: str | os.PathLike,
                       input_hw: tuple[int, int] | None = None) -> ExportInfo:
    """Write ``model`` as ONNX at ``input_hw`` (default: ``default_input_hw``) to ``path``; return its info."""
    model = copy.deepcopy(model).cpu().eval()  # tracing must not leave anything on the caller's model
    hw = tuple(input_hw) if input_hw else default_input_hw(model, cfg.INPUT.MIN_SIZE_TEST)
    info = ExportInfo(input_hw=hw, pixel_mean=tuple(cfg.MODEL.PIXEL_MEAN), input_format=cfg.INPUT.FORMAT,
                      outputs=outputs_of(model), num_classes=cfg.MODEL.ROI_HEADS.NUM_CLASSES,
                      score_thresh=cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST, config="", fmt="onnx")
    Path(path).write_bytes(export_model(model, info))
    return info


def cpu_detector(backend: str, model: GeneralizedRCNN, cfg: CfgNode, threads: int | None = None,
                 input_hw: tuple[int, int] | None = None):
    """A detector object for ``backend`` (one of ``CPU_BACKENDS``) built from the loaded eager ``model``."""
    if backend == "int8":
        return Int8Detector(model)
    if backend in ("onnxruntime", "openvino"):
        with tempfile.TemporaryDirectory(prefix="ropevit_det_export_") as tmp:
            path = Path(tmp) / "model.onnx"
            export_for_runtime(model, cfg, path, input_hw)
            return ExportedDetector(path, backend, threads)  # the runtime holds the model in memory from here
    raise ValueError(f"unknown CPU backend {backend!r}; choose one of {', '.join(CPU_BACKENDS)}")
