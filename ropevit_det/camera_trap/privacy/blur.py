"""Blurring boxes of one image, and choosing the boxes: which detections are people and vehicles.

What is blurred follows MegaDetector's ``category_names_to_blur`` (``visualize_detector_output`` and
``separate_detections_into_folders``): every detection whose category name is listed and whose confidence is at
or above the threshold. Two things differ on purpose:

* the region is the box plus a margin on every side (``margin``, a fraction of the box's size, at least a few
  pixels), because a detector's box can cut off an ear, a hand or the edge of a number plate;
* the strength scales with the box. MegaDetector blurs every box with a Gaussian of radius 40 pixels, which
  leaves a face in a large, high-resolution box readable. Here the Gaussian's sigma is half the region's shorter
  side, and pixelation's block is as big as the shorter side (never below ``min_sigma`` pixels), so that a big
  face and a small one are equally unrecognisable.

The region is blurred together with a band of its surroundings, then only the region is pasted back: the
blur is not bent by the crop edge, and outside the region every pixel is kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageFilter

__all__ = [
    "BLUR_METHODS",
    "DEFAULT_BLUR_CATEGORIES",
    "DEFAULT_STRENGTH",
    "BlurStyle",
    "blur_boxes",
    "blur_region",
    "boxes_to_blur",
]

BLUR_METHODS = ("gaussian", "pixelate")
DEFAULT_BLUR_CATEGORIES = ("person", "vehicle")
# Sigma (Gaussian) or block side (pixelation) as a fraction of the region's shorter side. Pixelation needs the
# coarser setting: its block edges are detail of their own, so a block is as big as the shorter side.
DEFAULT_STRENGTH = {"gaussian": 0.5, "pixelate": 1.0}


@dataclass(frozen=True)
class BlurStyle:
    """How strongly a box is hidden.

    Args:
        method: ``gaussian`` or ``pixelate``.
        margin: added on every side, as a fraction of the box's width and height.
        min_margin_px: the margin is never smaller than this (pixels).
        strength: Gaussian sigma, or pixel block side, as a fraction of the region's shorter side (None: the
            method's default, :data:`DEFAULT_STRENGTH`: strong enough that the tests' measures of detail and of
            text readability pass).
        min_sigma: the smallest sigma or block side (pixels), for small boxes.
    """

    method: str = "gaussian"
    margin: float = 0.1
    min_margin_px: int = 4
    strength: float | None = None
    min_sigma: float = 6.0

    def __post_init__(self) -> None:
        if self.method not in BLUR_METHODS:
            raise ValueError(f"method must be one of {', '.join(BLUR_METHODS)}, got {self.method!r}")
        if self.margin < 0 or (self.strength is not None and self.strength <= 0) or self.min_sigma <= 0:
            raise ValueError("margin must be >= 0, strength and min_sigma > 0")

    @property
    def scale(self) -> float:
        return DEFAULT_STRENGTH[self.method] if self.strength is None else self.strength


def blur_region(box_xyxy: Sequence[float], size: tuple[int, int], style: BlurStyle) -> tuple[int, int, int, int]:
    """The pixel region that hides a box: the box plus the margin, whole pixels, clipped to the image."""
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    mx = max(style.min_margin_px, style.margin * (x1 - x0))
    my = max(style.min_margin_px, style.margin * (y1 - y0))
    width, height = size
    left, top = max(0, int(x0 - mx)), max(0, int(y0 - my))
    right, bottom = min(width, int(-(-(x1 + mx) // 1))), min(height, int(-(-(y1 + my) // 1)))
    return left, top, max(left, right), max(top, bottom)


def _hidden(image: Image.Image, region: tuple[int, int, int, int], style: BlurStyle) -> Image.Image:
    left, top, right, bottom = region
    side = min(right - left, bottom - top)
    sigma = max(style.min_sigma, style.scale * side)
    if style.method == "pixelate":
        block = max(1, int(round(sigma)))
        crop = image.crop(region)
        small = crop.resize((max(1, -(-crop.width // block)), max(1, -(-crop.height // block))), Image.Resampling.BOX)
        return small.resize(crop.size, Image.Resampling.NEAREST)
    # Blur with 3 sigma of surroundings so that the crop edge does not shape the blur, paste the region only.
    pad = int(3 * sigma)
    outer = (max(0, left - pad), max(0, top - pad), min(image.width, right + pad), min(image.height, bottom + pad))
    blurred = image.crop(outer).filter(ImageFilter.GaussianBlur(radius=sigma))
    return blurred.crop((left - outer[0], top - outer[1], right - outer[0], bottom - outer[1]))


def blur_boxes(
    image: Image.Image, boxes_xyxy: Iterable[Sequence[float]], style: BlurStyle = BlurStyle()
) -> tuple[Image.Image, list[tuple[int, int, int, int]]]:
    """A copy of ``image`` with each box (pixels, ``x0, y0, x1, y1``) hidden; and the regions hidden.

    Each region is hidden in the image as the earlier boxes left it, so overlapping boxes stay hidden.
    """
    out = image.copy()
    regions = []
    for box in boxes_xyxy:
        region = blur_region(box, out.size, style)
        if region[2] > region[0] and region[3] > region[1]:
            out.paste(_hidden(out, region, style), region[:2])
            regions.append(region)
    return out, regions


def boxes_to_blur(
    entry: Mapping[str, Any], category_ids: Iterable[str], threshold: float, size: tuple[int, int]
) -> list[tuple[float, float, float, float]]:
    """Pixel boxes (``x0, y0, x1, y1``) of an MD results entry's detections to blur: category among
    ``category_ids`` and confidence at or above ``threshold`` (MegaDetector's rule)."""
    wanted = {str(c) for c in category_ids}
    width, height = size
    boxes = []
    for det in entry.get("detections") or []:
        if str(det.get("category")) in wanted and float(det.get("conf", 0.0)) >= threshold:
            x, y, w, h = (float(v) for v in det["bbox"])
            boxes.append((x * width, y * height, (x + w) * width, (y + h) * height))
    return boxes
