"""What the species classifier sees of a detection: a square crop around the box with some context (the
MegaClassifier / SpeciesNet recipe), resized and normalised as the weights expect."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

__all__ = ["DEFAULT_CONTEXT_MARGIN", "classification_transform", "square_crop", "square_crop_region"]

# Context around the box on each side, as a fraction of the box's longer side. Classifiers trained on whole
# iNat photos see the animal with its surroundings; a tight crop cuts off ears, tails and legs.
DEFAULT_CONTEXT_MARGIN = 0.1


def square_crop_region(box_xyxy: Sequence[float], margin: float = DEFAULT_CONTEXT_MARGIN) -> tuple[int, int, int]:
    """The square ``(left, top, side)`` in pixels around a box, grown by ``margin`` of its longer side per side.

    The square is centred on the box; it may extend past the image borders (those parts are padded).

    Args:
        box_xyxy: ``[x0, y0, x1, y1]`` in pixels.
        margin: context on each side as a fraction of the box's longer side.
    """
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    side = max(x1 - x0, y1 - y0, 1.0) * (1.0 + 2.0 * margin)
    side_px = max(1, math.ceil(side))
    left = math.floor((x0 + x1) / 2.0 - side_px / 2.0)
    top = math.floor((y0 + y1) / 2.0 - side_px / 2.0)
    return left, top, side_px


def square_crop(
    image: np.ndarray,
    box_xyxy: Sequence[float],
    margin: float = DEFAULT_CONTEXT_MARGIN,
    fill: Sequence[int] = (0, 0, 0),
) -> Image.Image:
    """Cut the :func:`square_crop_region` of a box out of an RGB image, padding outside the image with ``fill``.

    Args:
        image: RGB uint8, HWC.
        box_xyxy: the box in pixels of ``image``.
        margin: see :func:`square_crop_region`.
        fill: RGB colour of the padding. :class:`SpeciesClassifier` passes the classifier's mean colour, which
            normalises to zero: the padding then carries no signal, like the ViT's own zero padding.
    """
    left, top, side = square_crop_region(box_xyxy, margin)
    height, width = image.shape[:2]
    canvas = np.empty((side, side, 3), dtype=np.uint8)
    canvas[...] = np.asarray(fill, dtype=np.uint8)
    src_x0, src_y0 = max(left, 0), max(top, 0)
    src_x1, src_y1 = min(left + side, width), min(top + side, height)
    if src_x1 > src_x0 and src_y1 > src_y0:
        canvas[src_y0 - top : src_y1 - top, src_x0 - left : src_x1 - left] = image[src_y0:src_y1, src_x0:src_x1]
    return Image.fromarray(canvas)


def classification_transform(size: int, rgb_stats: Mapping[str, Sequence[float]]) -> v2.Compose:
    """PIL crop -> normalised CHW float tensor, the same steps as birder's ``inference_preset`` for a square crop.

    Args:
        size: the classifier's input side in pixels.
        rgb_stats: ``{"mean": (r, g, b), "std": (r, g, b)}`` on the 0..1 scale.
    """
    return v2.Compose(
        [
            v2.Resize((size, size), interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
            v2.PILToTensor(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(rgb_stats["mean"]), std=list(rgb_stats["std"])),
        ]
    )
