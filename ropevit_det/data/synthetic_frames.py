"""Large synthetic frames with small and large shapes: where does a detector lose small, distant objects?

Camera-trap frames are 4K and rodents or distant deer cover a few dozen pixels of them. This draws the demo's
shapes (:mod:`.synthetic`: the same colours, kinds and background texture) on frames of any size, with
objects of the diameters asked for, so sliced inference and high-resolution inference can be compared against
plain inference on known boxes (``tools/benchmark_tiles.py``, the tiling tests).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image

from .synthetic import SHAPE_CLASSES, _random_color, _shape_polygon

__all__ = ["FrameObject", "render_frame"]


@dataclass(frozen=True)
class FrameObject:
    """One drawn shape: its class index and its box ``[x0, y0, x1, y1]`` in frame pixels (the raster's box)."""

    class_index: int
    box: tuple[float, float, float, float]

    @property
    def area(self) -> float:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """The demo's texture (low-saturation blotches plus pixel noise) at any size, float32 HxWx3."""
    base = rng.uniform(70, 170) + rng.uniform(-12, 12, size=3)
    coarse = rng.normal(0, 22, size=(height // 16 + 2, width // 16 + 2, 3))
    coarse_img = Image.fromarray(np.clip(coarse + 128, 0, 255).astype(np.uint8))
    blotches = np.asarray(coarse_img.resize((width, height), Image.BILINEAR), dtype=np.float32) - 128
    fine = rng.normal(0, 7, size=(height, width, 3)).astype(np.float32)
    return np.clip(base + blotches + fine, 0, 255).astype(np.float32)


def render_frame(
    rng: np.random.Generator, height: int, width: int, diameters: Sequence[float], *, gap: float = 8.0
) -> tuple[np.ndarray, list[FrameObject]]:
    """A ``height`` x ``width`` frame (uint8 RGB) with one shape per diameter (circumscribed circle), none touching.

    Shapes that find no free spot in 200 tries are left out, so the objects returned are the ones drawn.
    """
    pixels = _background(rng, height, width)
    placed: list[tuple[float, float, float]] = []
    objects: list[FrameObject] = []
    for diameter in diameters:
        radius = diameter / 2
        for _attempt in range(200):
            cx = rng.uniform(radius + 2, width - radius - 2)
            cy = rng.uniform(radius + 2, height - radius - 2)
            if all(math.hypot(cx - x, cy - y) > radius + r + gap for x, y, r in placed):
                break
        else:
            continue
        placed.append((cx, cy, radius))
        class_index = int(rng.integers(len(SHAPE_CLASSES)))
        kind = SHAPE_CLASSES[class_index]
        polygon = np.asarray(_shape_polygon(kind, cx, cy, radius, rng.uniform(0, 2 * math.pi)))
        # Rasterise in a crop around the shape: a full-frame mask of a 4K frame per shape would be slow.
        x0, y0 = max(int(cx - radius) - 2, 0), max(int(cy - radius) - 2, 0)
        x1, y1 = min(math.ceil(cx + radius) + 3, width), min(math.ceil(cy + radius) + 3, height)
        local = (polygon.reshape(-1, 2) - [x0, y0]).reshape(-1).tolist()
        rle = mask_util.frPyObjects([local], y1 - y0, x1 - x0)[0]
        mask = mask_util.decode(rle).astype(bool)
        shade = _random_color(rng, kind) + rng.normal(0, 6, size=(int(mask.sum()), 3))
        crop = pixels[y0:y1, x0:x1]
        crop[mask] = np.clip(shade, 0, 255)
        bx, by, bw, bh = (float(v) for v in mask_util.toBbox(rle))
        objects.append(FrameObject(class_index, (x0 + bx, y0 + by, x0 + bx + bw, y0 + by + bh)))
    return np.round(pixels).astype(np.uint8), objects
