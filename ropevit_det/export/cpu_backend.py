"""Inference backends for CPUs without bf16, each with the interface of ``engine.predictor.Detector``
(a list of detectron2 input dicts in, a list of ``Instances`` out).

* ``int8``: the ViT's linear layers (qkv, proj, MLP: about half the FLOPs at 1024 px, the rest is attention)
  quantized to int8 by dynamic quantization (activations quantized on the fly); attention, norms and heads stay
  fp32. Two engines (``quantize_vit_linears``): ``torch.ao.quantization.quantize_dynamic`` (fbgemm), the default
  while PyTorch ships it because it is the faster one on x86 CPUs without AMX, and torchao's
  ``Int8DynamicActivationInt8WeightConfig``, its maintained successor, used once ``torch.ao`` is gone or when
  asked for. A quantized copy is made, so that a species classifier sharing the detector's ViT stays fp32.
* ``onnxruntime`` / ``openvino``: the model exported at start-up (``tracing.export_model``, fixed input size)
  and run by that runtime in fp32.

Which to pick is measured by ``python tools/benchmark.py`` from a clone (docs/PERFORMANCE_MEGADETECTOR.md); accuracy
guards
in tests/export/test_cpu_backend.py.
"""

from __future__ import annotations

import copy
import logging
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

__all__ = [
    "CPU_BACKENDS",
    "INT8_ENGINES",
    "Int8Detector",
    "cpu_detector",
    "default_int8_engine",
    "export_for_runtime",
    "quantize_vit_linears",
]

CPU_BACKENDS = ("int8", "onnxruntime", "openvino")
INT8_ENGINES = ("torch.ao", "torchao")


class _DropTorchaoEnumNotice(logging.Filter):
    """torchao registers its ``KernelPreference`` enum with ``torch.utils._pytree.register_constant`` at import,
    which torch 2.14 logs as deprecated for enums. The call is torchao's, harmless, and nothing a user can
    act on; this one record is dropped, any other is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "register_constant() on Enum subclasses is deprecated" not in record.getMessage()


def _torchao_quantization():
    """``(quantize_, Int8DynamicActivationInt8WeightConfig)`` from torchao, or an error saying how to get it."""
    pytree_log = logging.getLogger("torch.utils._pytree")
    notice = _DropTorchaoEnumNotice()
    pytree_log.addFilter(notice)
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except ImportError as exc:
        raise ImportError(f"the int8 backend needs torchao ({exc}): pip install torchao") from None
    finally:
        pytree_log.removeFilter(notice)
    return quantize_, Int8DynamicActivationInt8WeightConfig


def default_int8_engine() -> str:
    """``"torch.ao"`` while PyTorch still ships ``torch.ao.quantization.quantize_dynamic`` (1.2-1.5x faster than
    torchao's eager int8 on x86 without AMX, docs/PERFORMANCE_MEGADETECTOR.md "int8 on torchao"), ``"torchao"``
    once it is gone."""
    return "torch.ao" if hasattr(torch.ao.quantization, "quantize_dynamic") else "torchao"


def quantize_vit_linears(module: torch.nn.Module, engine: str | None = None) -> torch.nn.Module:
    """``module`` with the ``nn.Linear`` layers of every RoPEViT encoder inside it quantized to int8 (dynamic
    quantization, in place). Only the encoder blocks: the detection heads keep fp32 scores and box deltas.

    ``engine`` (one of ``INT8_ENGINES``; default ``default_int8_engine()``):

    * ``"torch.ao"``: ``torch.ao.quantization.quantize_dynamic`` (fbgemm: int8 weights per tensor, activations
      per batch, requantization fused into the GEMM). PyTorch deprecates it (a DeprecationWarning on every call).
    * ``"torchao"``: torchao's ``Int8DynamicActivationInt8WeightConfig``, its maintained successor (int8 weights
      per output channel, activations per token, ``torch._int_mm``; scaling runs as separate eager ops)."""
    engine = engine or default_int8_engine()
    if engine not in INT8_ENGINES:
        raise ValueError(f"unknown int8 engine {engine!r}; choose one of {', '.join(INT8_ENGINES)}")
    vits = [m for m in module.modules() if isinstance(m, RoPEViT)]
    if not vits:
        raise ValueError(f"{type(module).__name__} holds no RoPEViT to quantize")
    if engine == "torch.ao":
        for vit in vits:
            torch.ao.quantization.quantize_dynamic(vit.encoder, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
        return module
    quantize_, Int8Config = _torchao_quantization()
    for vit in vits:
        # set_inductor_config=False: nothing is compiled here, and torchao would otherwise change global
        # torch._inductor settings for the whole process.
        quantize_(
            vit.encoder, Int8Config(set_inductor_config=False), filter_fn=lambda m, _: isinstance(m, torch.nn.Linear)
        )
    return module


class Int8Detector:
    """The detectron2 model with its ViT's linear layers in int8 (see the module docstring); CPU, fp32 heads.
    ``engine``: as in :func:`quantize_vit_linears`."""

    def __init__(self, model: GeneralizedRCNN, engine: str | None = None) -> None:
        from ..engine.predictor import Detector

        self.model = quantize_vit_linears(copy.deepcopy(model).cpu().eval(), engine)
        self.device = torch.device("cpu")
        self._detector = Detector(self.model, "cpu")

    def __call__(self, inputs):
        return self._detector(inputs)


def export_for_runtime(
    model: GeneralizedRCNN, cfg: CfgNode, path: str | os.PathLike, input_hw: tuple[int, int] | None = None
) -> ExportInfo:
    """Write ``model`` as ONNX at ``input_hw`` (default: ``default_input_hw``) to ``path``; return its info."""
    model = copy.deepcopy(model).cpu().eval()  # tracing must not leave anything on the caller's model
    hw = tuple(input_hw) if input_hw else default_input_hw(model, cfg.INPUT.MIN_SIZE_TEST)
    info = ExportInfo(
        input_hw=hw,
        pixel_mean=tuple(cfg.MODEL.PIXEL_MEAN),
        input_format=cfg.INPUT.FORMAT,
        outputs=outputs_of(model),
        num_classes=cfg.MODEL.ROI_HEADS.NUM_CLASSES,
        score_thresh=cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST,
        config="",
        fmt="onnx",
    )
    Path(path).write_bytes(export_model(model, info))
    return info


def cpu_detector(
    backend: str,
    model: GeneralizedRCNN,
    cfg: CfgNode,
    threads: int | None = None,
    input_hw: tuple[int, int] | None = None,
):
    """A detector object for ``backend`` (one of ``CPU_BACKENDS``) built from the loaded eager ``model``."""
    if backend == "int8":
        return Int8Detector(model)
    if backend in ("onnxruntime", "openvino"):
        with tempfile.TemporaryDirectory(prefix="ropevit_det_export_") as tmp:
            path = Path(tmp) / "model.onnx"
            export_for_runtime(model, cfg, path, input_hw)
            return ExportedDetector(path, backend, threads)  # the runtime holds the model in memory from here
    raise ValueError(f"unknown CPU backend {backend!r}; choose one of {', '.join(CPU_BACKENDS)}")
