"""Export (ONNX, TorchScript) through detectron2's TracingAdapter, and runtimes that run the export or a CPU
fast path behind the ``engine.predictor.Detector`` interface."""

from .cpu_backend import (
    CPU_BACKENDS,
    INT8_ENGINES,
    Int8Detector,
    cpu_detector,
    default_int8_engine,
    export_for_runtime,
    quantize_vit_linears,
)
from .info import EXPORT_INFO_KEY, INPUT_NAMES, OUTPUT_NAMES, ExportInfo
from .runtime import RUNTIMES, ExportedDetector, read_export_info
from .tracing import (
    DYNAMO_ONNX_OPSET,
    ONNX_OPSET,
    default_input_hw,
    export_model,
    export_vit_onnx,
    fixed_rope_table,
    onnx_export,
    outputs_of,
    patch_grid,
    traceable_model,
)

__all__ = [
    "CPU_BACKENDS",
    "INT8_ENGINES",
    "Int8Detector",
    "cpu_detector",
    "default_int8_engine",
    "export_for_runtime",
    "quantize_vit_linears",
    "EXPORT_INFO_KEY",
    "INPUT_NAMES",
    "OUTPUT_NAMES",
    "ExportInfo",
    "RUNTIMES",
    "ExportedDetector",
    "read_export_info",
    "DYNAMO_ONNX_OPSET",
    "ONNX_OPSET",
    "default_input_hw",
    "export_model",
    "export_vit_onnx",
    "fixed_rope_table",
    "onnx_export",
    "outputs_of",
    "patch_grid",
    "traceable_model",
]
