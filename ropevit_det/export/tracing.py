"""Trace a detectron2 ``GeneralizedRCNN`` with a RoPE ViT into a graph of fixed input size, through detectron2's
``TracingAdapter`` (as detectron2's ``tools/deploy/export_model.py`` does with ``--export-method tracing``).

The graph takes ``image`` (3, H, W) float pixels in ``INPUT.FORMAT``, already padded to the export size with the
pixel mean, and ``image_hw`` (2,) int64, the size of the real content inside it. ``image_hw`` is an input so
that proposals and boxes are clipped to the image, not to the padding, exactly as detectron2 does when it pads
a batch: with ``MODEL.SFP.SQUARE_PAD`` equal to the export size, eager and exported models see the same tensors.

Fixed input size, not dynamic: the RoPE table and the resized absolute position embedding are functions of the
patch grid, so the graph is only valid for the grid it was traced on. The RoPE table is computed eagerly for
that grid and embedded as a constant (the TorchScript-based ONNX exporter cannot trace ``repeat_interleave``
over traced sizes); the position embedding's bicubic resize is traced (a ``Resize`` node in ONNX).

ONNX is written by PyTorch's ``torch.export``-based exporter (``dynamo=True``) where it can capture the model, and
by the TorchScript-based one (``dynamo=False``, deprecated by PyTorch) only where it fails, with the reason
logged: the ViT alone (``export_vit_onnx``) goes through ``torch.export``; the whole detector does not, because
detectron2's RPN and ROI heads branch in Python on tensor values (docs/EXPORT.md, "Which ONNX exporter").
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from collections.abc import Iterator

import torch
from detectron2.export import TracingAdapter
from detectron2.modeling import GeneralizedRCNN
from detectron2.structures import ImageList

from ..modeling.rope_vit import RoPEViT
from .info import EXPORT_INFO_KEY, INPUT_NAMES, OUTPUT_NAMES, ExportInfo

__all__ = [
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

# detectron2's STABLE_ONNX_OPSET_VERSION (11) has no repeat_interleave / bicubic-resize forms this model needs.
ONNX_OPSET = 17
# The torch.export-based exporter writes opset 18 natively; converted down to 17 its Split nodes kept opset 18's
# ``num_outputs`` attribute, which ONNX Runtime rejects as an invalid graph (torch 2.14.1, onnxscript 0.7.2).
DYNAMO_ONNX_OPSET = 18

logger = logging.getLogger(__name__)


def _failure_reason(error: BaseException) -> str:
    """The gist of an exporter error (its full text runs to pages): the exception summary's first line, and where
    torch.export says the failing call was made ("The following call raised this error")."""
    text = str(error)
    summary = text.split("## Exception summary", 1)[-1]
    lines = [line.strip() for line in summary.splitlines() if line.strip()]
    reason = lines[0] if lines else type(error).__name__
    marker = "The following call raised this error:"
    if marker in text:
        where = [line.strip() for line in text.split(marker, 1)[1].splitlines() if line.strip()][:2]
        reason += " at " + ": ".join(where)
    return reason


def onnx_export(
    module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], input_names: list[str], output_names: list[str]
) -> tuple[bytes, str]:
    """``module`` traced at ``inputs`` as ONNX: ``(serialised model, exporter)``.

    PyTorch's ``torch.export``-based exporter first (``exporter == "dynamo"``, opset ``DYNAMO_ONNX_OPSET``); where
    ``torch.export`` cannot capture the module, the TorchScript-based one (``"torchscript"``, opset ``ONNX_OPSET``),
    with the reason logged as a warning."""
    try:
        program = torch.onnx.export(
            module,
            inputs,
            None,
            opset_version=DYNAMO_ONNX_OPSET,
            dynamo=True,
            verbose=False,
            input_names=input_names,
            output_names=output_names,
        )
    except Exception as error:  # torch.onnx raises several types (TorchExportError, ConversionError, ...)
        logger.warning(
            "the torch.export-based ONNX exporter failed (%s: %s); writing ONNX with PyTorch's "
            "TorchScript-based exporter instead (docs/EXPORT.md, 'Which ONNX exporter')",
            type(error).__name__,
            _failure_reason(error),
        )
    else:
        return program.model_proto.SerializeToString(), "dynamo"
    buffer = io.BytesIO()
    torch.onnx.export(
        module,
        inputs,
        buffer,
        opset_version=ONNX_OPSET,
        dynamo=False,
        input_names=input_names,
        output_names=output_names,
    )
    return buffer.getvalue(), "torchscript"


def patch_grid(vit: RoPEViT, input_hw: tuple[int, int]) -> tuple[int, int]:
    """The ViT's patch grid for an input of ``input_hw`` pixels (inputs are padded up to whole patches)."""
    return (math.ceil(input_hw[0] / vit.patch_size), math.ceil(input_hw[1] / vit.patch_size))


@contextlib.contextmanager
def fixed_rope_table(vit: RoPEViT, grid: tuple[int, int]) -> Iterator[torch.Tensor]:
    """While tracing, ``vit.rope_embedding`` returns the table of ``grid``, computed eagerly here, so that the
    trace embeds it as a constant; it refuses any other grid, so a trace at another size fails loudly."""
    device = vit.pos_embedding.device
    table = vit.rope_embedding(grid, device)

    def rope_embedding(grid_size: tuple[int, int], device: torch.device) -> torch.Tensor:
        if tuple(int(s) for s in grid_size) != grid:
            raise ValueError(
                f"traced at patch grid {tuple(int(s) for s in grid_size)}, but the RoPE table was fixed for {grid}"
            )
        return table

    vit.rope_embedding = rope_embedding  # instance attribute, shadows the method until removed below
    try:
        yield table
    finally:
        del vit.rope_embedding


def _size_divisibility(model: GeneralizedRCNN) -> int:
    """What detectron2 pads inputs to a multiple of: ``padding_constraints`` wins over the property (our pyramid
    reports 32 there and 0 in ``size_divisibility``, as ``ImageList.from_tensors`` reads them)."""
    constraints = getattr(model.backbone, "padding_constraints", {}) or {}
    return max(int(constraints.get("size_divisibility", model.backbone.size_divisibility)), 1)


def _find_vit(model: GeneralizedRCNN) -> RoPEViT:
    for module in model.backbone.modules():
        if isinstance(module, RoPEViT):
            return module
    raise ValueError(f"{type(model.backbone).__name__} holds no RoPEViT: only RoPE ViT detectors are exported here")


def _inference(model: GeneralizedRCNN, image: torch.Tensor, image_hw: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``GeneralizedRCNN.inference`` without its pre-/post-processing: one padded image, its content size."""
    normalized = ((image - model.pixel_mean) / model.pixel_std).unsqueeze(0)
    images = ImageList(normalized, [(image_hw[0], image_hw[1])])
    features = model.backbone(images.tensor)
    proposals, _ = model.proposal_generator(images, features, None)
    instances = model.roi_heads(images, features, proposals, None)[0][0]
    outputs = (instances.pred_boxes.tensor, instances.scores, instances.pred_classes)
    if instances.has("pred_masks"):
        outputs += (instances.pred_masks,)
    return outputs


def traceable_model(
    model: GeneralizedRCNN, input_hw: tuple[int, int]
) -> tuple[TracingAdapter, tuple[torch.Tensor, ...]]:
    """detectron2's ``TracingAdapter`` around ``model`` (eval mode) and sample inputs of size ``input_hw``."""
    if not isinstance(model, GeneralizedRCNN) or model.proposal_generator is None:
        raise ValueError(f"only two-stage GeneralizedRCNN models are exported, got {type(model).__name__}")
    divisor = _size_divisibility(model)
    if input_hw[0] % divisor or input_hw[1] % divisor:
        raise ValueError(
            f"export input size {input_hw} must be a multiple of the backbone's size divisibility {divisor}"
        )
    square = getattr(model.backbone, "padding_constraints", {}).get("square_size", 0)
    if square and tuple(input_hw) != (square, square):
        raise ValueError(
            f"the model pads every input to {square} x {square} (MODEL.SFP.SQUARE_PAD): export at "
            f"that size, got {input_hw}"
        )
    device = model.pixel_mean.device
    # Mid-grey content on a part of the canvas, so that the trace sees padding and a content size < the input.
    image = torch.full((3, *input_hw), 127.0, device=device)
    image_hw = torch.tensor([input_hw[0] * 3 // 4, input_hw[1]], dtype=torch.int64, device=device)
    # The adapter itself in eval mode too: torch.onnx warns of exporting a module in training mode otherwise.
    return TracingAdapter(model.eval(), (image, image_hw), _inference).eval(), (image, image_hw)


def export_model(model: GeneralizedRCNN, info: ExportInfo) -> bytes:
    """Trace ``model`` at ``info.input_hw`` and return the serialised ONNX model or TorchScript archive."""
    adapter, inputs = traceable_model(model, info.input_hw)
    vit = _find_vit(model)
    buffer = io.BytesIO()
    with fixed_rope_table(vit, patch_grid(vit, info.input_hw)), torch.no_grad():
        if info.fmt == "torchscript":
            traced = torch.jit.trace(adapter, inputs, check_trace=False)
            torch.jit.save(traced, buffer, _extra_files={EXPORT_INFO_KEY: info.to_json()})
        elif info.fmt == "onnx":
            import onnx

            serialised, _ = onnx_export(adapter, inputs, list(INPUT_NAMES), list(info.outputs))
            proto = onnx.load_from_string(serialised)
            onnx.helper.set_model_props(proto, {EXPORT_INFO_KEY: info.to_json()})
            return proto.SerializeToString()
        else:
            raise ValueError(f"unknown export format {info.fmt!r}; expected 'onnx' or 'torchscript'")
    return buffer.getvalue()


def outputs_of(model: GeneralizedRCNN) -> tuple[str, ...]:
    """The output names the traced graph of ``model`` will have."""
    return OUTPUT_NAMES if getattr(model.roi_heads, "mask_on", False) else OUTPUT_NAMES[:3]


def default_input_hw(model: GeneralizedRCNN, min_size_test: int) -> tuple[int, int]:
    """The export size when none is given: the model's square padding if it has one (then eager and export
    agree exactly), else ``min_size_test`` x 4/3 of it, the shape of most camera-trap frames, both rounded
    up to the backbone's size divisibility."""
    square = getattr(model.backbone, "padding_constraints", {}).get("square_size", 0)
    if square:
        return (square, square)
    divisor = _size_divisibility(model)
    round_up = lambda n: -(-n // divisor) * divisor  # noqa: E731
    return (round_up(min_size_test), round_up(math.ceil(min_size_test * 4 / 3)))


class _NeckOnly(torch.nn.Module):
    def __init__(self, vit: RoPEViT) -> None:
        super().__init__()
        self.vit = vit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit.detection_features(x)["neck"]


def export_vit_onnx(vit: RoPEViT, input_hw: tuple[int, int]) -> bytes:
    """The ViT alone (``detection_features``' neck for a (1, 3, H, W) normalised input) as ONNX, at ``input_hw``:
    what the accuracy guard and the benchmark compare, without the detection heads."""
    sample = torch.zeros(1, 3, *input_hw, device=vit.pos_embedding.device)
    with fixed_rope_table(vit, patch_grid(vit, input_hw)), torch.no_grad():
        serialised, _ = onnx_export(_NeckOnly(vit).eval(), (sample,), ["image"], ["neck"])
    return serialised
