"""The models ``tools/benchmark.py`` compares, and the synthetic inputs it feeds them.

* ``ours``: Mask R-CNN from ``configs/ropevit_mrcnn.yaml`` (RoPE ViT-B/14 + SFP), random weights unless given.
* ``vitdet``: detectron2's own ViTDet ViT-B Mask R-CNN (``common/models/mask_rcnn_vitdet.py``), random weights.
* ``mdv5a``: MegaDetector v5a's YOLOv5x6 (``megadetector.py``), random weights, at its own 1280 px letterbox.

Both get the same synthetic images and ground truth, the same square padding (the benchmark size) and the
same test score threshold.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from detectron2.config import CfgNode, LazyConfig, instantiate
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances, PolygonMasks

from ropevit_det.config import load_config
from ropevit_det.model_zoo import get_config_file
from ropevit_det.modeling.roi_heads import CandidateCappedFastRCNNOutputLayers

__all__ = [
    "MDV5A_MODES",
    "RUNTIME_TASKS",
    "ModelSpec",
    "auto_window_size",
    "build_benchmark_model",
    "ours_cfg",
    "synthetic_images",
    "synthetic_training_batch",
    "vitdet_lazy_config_path",
]

OURS_CONFIG = "ropevit_mrcnn.yaml"  # a model-zoo name: the installed package's copy of configs/
VITDET_GLOBAL_BLOCKS = (2, 5, 8, 11)

# 2-block, 64-wide ViTs with the real patch sizes and token layouts, 64 sampled ROIs per training image
# instead of 512 and 50 test proposals instead of 1000: for smoke tests of the tool itself.
TINY_ROIS_PER_IMAGE = 64
TINY_TEST_PROPOSALS = 50
OURS_TINY_OPTS = [
    "MODEL.ROPE_VIT.EMBED_DIM",
    64,
    "MODEL.ROPE_VIT.DEPTH",
    2,
    "MODEL.ROPE_VIT.NUM_HEADS",
    2,
    "MODEL.ROPE_VIT.MLP_DIM",
    128,
    "MODEL.ROPE_VIT.PRETRAIN_IMG_SIZE",
    56,
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE",
    TINY_ROIS_PER_IMAGE,
    "MODEL.RPN.POST_NMS_TOPK_TEST",
    TINY_TEST_PROPOSALS,
]
TINY_GLOBAL_BLOCKS = (1,)


@dataclass(frozen=True)
class ModelSpec:
    """One row family of the benchmark: which model, and how it runs.

    Args:
        model: "ours" or "vitdet".
        mode: a label ("parity", "bf16", "fast", "fp32").
        autocast_dtype: ``torch.bfloat16`` / ``torch.float16`` for autocast, ``None`` for plain fp32.
        windowed: ours only: windowed attention with ``global_blocks`` left global (ViTDet's layout).
        description: one line for the report.
    """

    model: str
    mode: str
    autocast_dtype: torch.dtype | None = None
    windowed: bool = False
    description: str = ""
    extra_opts: tuple = field(default=())
    compile_blocks: bool = False
    int8_linears: bool = False  # ours: the ViT's linear layers in int8 (torch.ao dynamic quantization)
    # ours: the whole detector exported to ONNX at the benchmark size and run by this runtime
    # ("onnxruntime" / "openvino", fp32), as ``ropevit-det infer --backend RUNTIME`` runs it. Task
    # ``inference`` only: the export is the whole detector (see RUNTIME_TASKS).
    runtime: str | None = None

    @property
    def precision(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.autocast_dtype]


OUR_MODES = {
    "parity": ModelSpec("ours", "parity", None, False, "fp32, global attention in every block (as pretrained)"),
    "bf16": ModelSpec("ours", "bf16", torch.bfloat16, False, "bf16 autocast, global attention (as pretrained)"),
    "fast": ModelSpec(
        "ours",
        "fast",
        torch.bfloat16,
        True,
        "bf16 autocast, windowed attention, global blocks 2/5/8/11 (a fine-tuning choice)",
    ),
    # Not in the default set: torch.compile needs a C++ compiler (CPU) or Triton (GPU) and minutes of warm-up.
    "fast_compiled": ModelSpec(
        "ours",
        "fast_compiled",
        torch.bfloat16,
        True,
        "fast, with each ViT block compiled by torch.compile (fuses norms, RoPE, GELU, residuals)",
        compile_blocks=True,
    ),
    # The paths for CPUs without bf16 (tools/infer.py --backend int8); inference only (no backward in int8).
    "int8": ModelSpec(
        "ours",
        "int8",
        None,
        False,
        "fp32 with the ViT's linear layers in int8 (torch.ao dynamic quantization), global attention: the no-bf16 path",
        int8_linears=True,
    ),
    "int8_fast": ModelSpec(
        "ours",
        "int8_fast",
        None,
        True,
        "int8 linear layers, fp32 windowed attention, global blocks 2/5/8/11: the no-bf16 counterpart of fast",
        int8_linears=True,
    ),
    # The exported model on the CPU runtimes (ropevit-det infer --backend onnxruntime|openvino): fp32, global
    # attention, the whole detector as one graph at the benchmark size; inference only.
    "ort": ModelSpec(
        "ours",
        "ort",
        None,
        False,
        "the ONNX export (fp32, global attention) run by ONNX Runtime's "
        "CPU provider: ropevit-det infer --backend onnxruntime",
        runtime="onnxruntime",
    ),
    "openvino": ModelSpec(
        "ours",
        "openvino",
        None,
        False,
        "the ONNX export (fp32, global attention) run by "
        "OpenVINO on the CPU, f32 precision hint: ropevit-det infer --backend openvino",
        runtime="openvino",
    ),
}
# The tasks a runtime mode measures. The runtime runs what `infer` runs, the exported whole detector; a
# backbone-only row would need a second, backbone-only export that nothing ships, and training has no export.
RUNTIME_TASKS = ("inference",)
# MegaDetector v5a: fp32 is what it runs on CPUs, fp16 (model.half()) what it runs on GPUs.
MDV5A_MODES = {
    "fp32": ModelSpec("mdv5a", "fp32", None, False, "MegaDetector v5a (YOLOv5x6), fp32, 1280 px letterbox"),
    "fp16": ModelSpec("mdv5a", "fp16", torch.float16, False, "MegaDetector v5a, fp16 weights and inputs (GPU)"),
    "bf16": ModelSpec(
        "mdv5a",
        "bf16",
        torch.bfloat16,
        False,
        "MegaDetector v5a, bf16 autocast (not what MegaDetector runs; for reference)",
    ),
}
VITDET_MODES = {
    "fp32": ModelSpec("vitdet", "fp32", None, False, "detectron2 ViTDet-B, fp32 (its own window attention)"),
    "bf16": ModelSpec("vitdet", "bf16", torch.bfloat16, False, "detectron2 ViTDet-B, bf16 autocast"),
}


def auto_window_size(size: int, patch_size: int = 14, candidates: Sequence[int] = range(12, 17)) -> int:
    """The window (in patches) near ViTDet's 14 that wastes the fewest padding tokens on a ``size`` input.

    The grid is ``ceil(size / patch)`` patches; windows pad it up to whole windows. At 1024 px the grid is
    74: a window of 14 pads it to 84 (29% more tokens, all masked work), 15 pads it to 75 (3%).
    Ties go to the window closest to 14.
    """
    grid = math.ceil(size / patch_size)
    return min(candidates, key=lambda w: (math.ceil(grid / w) * w, abs(w - 14)))


def ours_cfg(
    size: int,
    spec: ModelSpec,
    device: str,
    score_thresh: float,
    window: int,
    global_blocks: Sequence[int] = VITDET_GLOBAL_BLOCKS,
    weights: str = "",
    tiny: bool = False,
    topk_candidates: int = 0,
    boxes_only: bool = False,
) -> CfgNode:
    """``configs/ropevit_mrcnn.yaml`` set up for the benchmark (see ``build_benchmark_model``)."""
    opts = [
        "MODEL.WEIGHTS",
        weights,
        "MODEL.DEVICE",
        device,
        "MODEL.SFP.SQUARE_PAD",
        size,
        "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
        score_thresh,
        "MODEL.ROI_HEADS.TOPK_CANDIDATES_TEST",
        topk_candidates,
        "MODEL.ROPE_VIT.WINDOW_SIZE",
        window if spec.windowed else 0,
        "MODEL.ROPE_VIT.GLOBAL_BLOCKS",
        list(global_blocks) if spec.windowed else [],
    ]
    if boxes_only:  # Faster R-CNN heads, as the camera-trap config: what MegaDetector's boxes compare with
        opts += ["MODEL.MASK_ON", False]
    return load_config(get_config_file(OURS_CONFIG), opts + (OURS_TINY_OPTS if tiny else []) + list(spec.extra_opts))


def vitdet_lazy_config_path() -> str:
    """detectron2's ViTDet Mask R-CNN model config, found without importing ``detectron2.model_zoo``
    (which imports ``pkg_resources``, gone from recent setuptools)."""
    spec = importlib.util.find_spec("detectron2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("detectron2 is not installed; see tools/setup_env.sh")
    path = os.path.join(
        spec.submodule_search_locations[0], "model_zoo", "configs", "common", "models", "mask_rcnn_vitdet.py"
    )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: this detectron2 install has no model_zoo configs")
    return path


def build_vitdet(
    size: int, device: str, score_thresh: float, tiny: bool = False, topk_candidates: int = 0
) -> torch.nn.Module:
    """detectron2's ViTDet ViT-B Mask R-CNN with ``img_size`` and square padding set to ``size``.

    ``topk_candidates`` > 0 swaps in our candidate-capped box predictor (a subclass of detectron2's, same
    parameters), so that both models run the same post-processing."""
    model_cfg = LazyConfig.load(vitdet_lazy_config_path()).model
    model_cfg.backbone.net.img_size = size  # global blocks' relative-position tables sized for this input
    model_cfg.backbone.square_pad = size
    model_cfg.roi_heads.box_predictor.test_score_thresh = score_thresh
    if topk_candidates:
        model_cfg.roi_heads.box_predictor._target_ = CandidateCappedFastRCNNOutputLayers
        model_cfg.roi_heads.box_predictor.test_topk_candidates = topk_candidates
    if tiny:
        net = model_cfg.backbone.net
        net.embed_dim, net.depth, net.num_heads, net.window_block_indexes = 64, 2, 2, [0]
        model_cfg.roi_heads.batch_size_per_image = TINY_ROIS_PER_IMAGE
        model_cfg.proposal_generator.post_nms_topk = (1000, TINY_TEST_PROPOSALS)  # (train, test)
    return instantiate(model_cfg).to(device)


def build_benchmark_model(
    spec: ModelSpec,
    size: int,
    device: str,
    score_thresh: float,
    window: int,
    weights: str = "",
    tiny: bool = False,
    topk_candidates: int = 0,
    boxes_only: bool = False,
    threads: int | None = None,
) -> torch.nn.Module:
    """The detectron2 ``GeneralizedRCNN`` for ``spec`` at input ``size``, on ``device``, in train mode; for a
    runtime mode (``spec.runtime``), that model exported at ``size`` x ``size`` and loaded by the runtime (an
    ``ExportedDetector``: detectron2 input dicts in, ``Instances`` out, CPU only).

    Args:
        spec: which model and mode.
        size: square input size; also the square padding, so the input is not padded further.
        device: "cpu" or "cuda".
        score_thresh: test score threshold of the box predictor (see ``tools/benchmark.py --score-thresh``).
        window: window size in patches for windowed modes of ours.
        weights: ours only: a checkpoint for ``MODEL.WEIGHTS`` ("" = random initialisation).
        tiny: 2-block, 64-wide ViTs (smoke tests of the tool; timings meaningless).
        topk_candidates: cap on the (proposal, class) pairs entering test-time NMS, both models (0 = none).
        boxes_only: ours only: no mask head (``MODEL.MASK_ON False``).
        threads: runtime modes: the runtime's intra-op threads (default: torch's thread count).
    """
    if spec.model == "vitdet":
        return build_vitdet(size, device, score_thresh, tiny, topk_candidates)
    if spec.model != "ours":
        raise ValueError(f"unknown model {spec.model!r}; expected 'ours' or 'vitdet'")
    global_blocks = TINY_GLOBAL_BLOCKS if tiny else VITDET_GLOBAL_BLOCKS
    cfg = ours_cfg(size, spec, device, score_thresh, window, global_blocks, weights, tiny, topk_candidates, boxes_only)
    model = build_model(cfg)
    if spec.compile_blocks:
        # Block by block: the backbone calls vit.detection_features, not forward, so compiling the ViT
        # module itself would compile nothing that runs. Blocks differ in drop-path rate and attention
        # layout, and each combination (x train/eval, x grad mode) is its own graph: raise dynamo's
        # per-function graph limit (8 by default) so that none falls back to eager.
        import torch._dynamo

        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 128)
        for block in model.backbone.net.vit.encoder.block:
            block.compile()
    if weights:
        from ropevit_det.checkpoint import RoPEViTCheckpointer

        RoPEViTCheckpointer(model).load(weights)
    if spec.int8_linears:
        from ropevit_det.export.cpu_backend import quantize_vit_linears

        quantize_vit_linears(model)
    if spec.runtime:
        if not str(device).startswith("cpu"):
            raise ValueError(f"mode {spec.mode!r} runs the export on the CPU ({spec.runtime}); got device {device!r}")
        from ropevit_det.export.cpu_backend import cpu_detector

        # The same weights, heads, candidate cap and score threshold as the eager modes, traced in at this size.
        return cpu_detector(spec.runtime, model.eval(), cfg, threads, (size, size))
    return model


def synthetic_images(batch: int, size: int, device: str | torch.device, seed: int = 0) -> torch.Tensor:
    """(batch, 3, size, size) float images in [0, 255]: smooth colour blobs plus pixel noise.

    Smooth structure rather than pure noise, so that features and attention are not all alike;
    deterministic for a seed.
    """
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, max(size // 32, 2), max(size // 32, 2), generator=generator)
    smooth = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    noise = torch.rand(batch, 3, size, size, generator=generator) * 0.15
    return ((smooth * 0.85 + noise).clamp(0, 1) * 255).to(device)


def _ellipse_polygon(x0: float, y0: float, x1: float, y1: float, vertices: int = 16) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1).reshape(-1)


def synthetic_instances(size: int, num_instances: int, num_classes: int, rng: np.random.Generator) -> Instances:
    """Ground truth for one ``size`` x ``size`` image: boxes, classes and ellipse polygon masks."""
    sides = rng.uniform(size / 16, size / 3, size=(num_instances, 2))
    corners = rng.uniform(0, 1, size=(num_instances, 2)) * (size - sides)
    boxes = np.concatenate([corners, corners + sides], axis=1)
    instances = Instances((size, size))
    instances.gt_boxes = Boxes(torch.as_tensor(boxes, dtype=torch.float32))
    instances.gt_classes = torch.as_tensor(rng.integers(0, num_classes, size=num_instances), dtype=torch.int64)
    instances.gt_masks = PolygonMasks([[_ellipse_polygon(*box)] for box in boxes])
    return instances


def synthetic_training_batch(
    images: torch.Tensor, num_instances: int = 8, num_classes: int = 80, seed: int = 0
) -> list[dict]:
    """detectron2 training inputs for ``images`` with synthetic instances (boxes, classes, polygon masks)."""
    rng = np.random.default_rng(seed)
    size = images.shape[-1]
    return [
        {
            "image": image,
            "height": size,
            "width": size,
            "instances": synthetic_instances(size, num_instances, num_classes, rng),
        }
        for image in images
    ]
