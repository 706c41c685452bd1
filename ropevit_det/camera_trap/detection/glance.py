"""Glance, then look: which frames of a batch need the full-resolution pass.

Most camera-trap frames are empty, and the same RoPE weights run at any resolution. :class:`GlanceDetector` wraps
the detector the batch loop calls (``Detector``, or a CPU backend's): it first runs it on a small copy of each
frame (the *glance*, ``glance_size`` px on the long side), and runs the full-resolution pass only on the frames
where the glance found a candidate scoring at least ``escalation_threshold``. A frame that is not escalated keeps
the glance's own detections (all below the escalation threshold, boxes in the frame's displayed pixels as
usual). Each returned ``Instances`` carries the passes that ran (:func:`passes_of`), which the batch loop writes
into the image's MegaDetector entry as ``"passes": ["glance"]`` or ``["glance", "full"]``.

The default escalation threshold (``DEFAULT_ESCALATION_THRESHOLD``) was chosen on the demo domain (synthetic
shapes, ``benchmarks/commands/benchmark_glance.py``); on a real collection, check it with
``ropevit-det eval-camtrap --glance-report`` before trusting it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch.nn.functional as F
from detectron2.structures import Instances

__all__ = [
    "DEFAULT_ESCALATION_THRESHOLD",
    "FULL",
    "GLANCE",
    "GlanceDetector",
    "glance_input",
    "passes_of",
]

GLANCE = "glance"
FULL = "full"
# Chosen on the demo domain (see the module docstring): the lowest score that, on held-out synthetic frames,
# still escalated every frame holding a shape the single pass found above the typical threshold.
DEFAULT_ESCALATION_THRESHOLD = 0.05
_PASSES = "_passes"  # an attribute, not an Instances field: fields must have one value per box


def passes_of(instances: Instances | None) -> list[str] | None:
    """The passes that produced ``instances`` (``["glance"]`` / ``["glance", "full"]``); None when no glance ran."""
    passes = getattr(instances, _PASSES, None) if instances is not None else None
    return list(passes) if passes is not None else None


def glance_input(model_input: dict[str, Any], glance_size: int) -> dict[str, Any]:
    """``model_input`` with its image scaled (antialiased) to ``glance_size`` px on the long side; never
    enlarged. ``height`` / ``width`` stay the displayed size, so boxes come back in the frame's pixels."""
    image = model_input["image"]
    h, w = image.shape[-2:]
    scale = glance_size / max(h, w)
    if scale >= 1:
        return model_input
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    small = F.interpolate(image[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False)[0]
    small = small.round().clamp(0, 255).to(image.dtype) if not image.dtype.is_floating_point else small
    glanced = dict(model_input)
    glanced["image"] = small
    glanced.setdefault("height", h)
    glanced.setdefault("width", w)
    return glanced


class GlanceDetector:
    """A detector (a callable from a list of detectron2 inputs to a list of ``Instances``) that glances first.

    Args:
        detector: the wrapped detector (``engine.predictor.Detector`` or a CPU backend's detector).
        glance_size: long side of the glance, in pixels (>= 32).
        escalation_threshold: a glance candidate scoring at least this sends the frame to the full pass.
    """

    def __init__(
        self,
        detector: Callable[[list[dict[str, Any]]], Sequence[Instances]],
        *,
        glance_size: int,
        escalation_threshold: float = DEFAULT_ESCALATION_THRESHOLD,
    ) -> None:
        if glance_size < 32:
            raise ValueError(f"glance_size must be >= 32 px (the pyramid's stride-32 level), got {glance_size}")
        if not escalation_threshold >= 0.0:  # above 1: no frame is escalated (the glance alone, for the report)
            raise ValueError(f"escalation_threshold must be >= 0, got {escalation_threshold}")
        self.detector = detector
        self.glance_size = glance_size
        self.escalation_threshold = escalation_threshold
        self.glanced = 0  # frames glanced at, and of those escalated to the full pass (for the run's summary)
        self.escalated = 0

    def __getattr__(self, name: str) -> Any:  # model, device, bf16...: what callers read off the wrapped detector
        if name == "detector":
            raise AttributeError(name)
        return getattr(self.detector, name)

    def escalates(self, instances: Instances) -> bool:
        return bool(len(instances)) and bool((instances.scores >= self.escalation_threshold).any())

    def __call__(self, inputs: list[dict[str, Any]]) -> list[Instances]:
        if not inputs:
            return []
        outputs = list(self.detector([glance_input(x, self.glance_size) for x in inputs]))
        escalate = [i for i, instances in enumerate(outputs) if self.escalates(instances)]
        if escalate:
            for i, instances in zip(escalate, self.detector([inputs[i] for i in escalate])):
                outputs[i] = instances
        chosen = set(escalate)
        for i, instances in enumerate(outputs):
            setattr(instances, _PASSES, (GLANCE, FULL) if i in chosen else (GLANCE,))
        self.glanced += len(inputs)
        self.escalated += len(escalate)
        return outputs
