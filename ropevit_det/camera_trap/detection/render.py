"""Draw an MD results entry onto its image: boxes, category and score, and the top species when classified.

Drawn with Pillow's ``ImageDraw`` rather than detectron2's ``Visualizer``: the Visualizer renders through a
matplotlib figure, far slower than the JPEG encoder that a folder of camera-trap frames should be bound by.
The boxes come from the MD entry itself (normalised), so a render always shows exactly what the results file
says.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["render_entry", "rendered_path"]

# MD's own colours would do as well; these read well on both daytime and infrared (grey) frames.
_CATEGORY_COLOURS = {"animal": (46, 204, 64), "person": (0, 116, 217), "vehicle": (255, 65, 54)}
_OTHER_COLOURS = [(255, 220, 0), (240, 18, 190), (57, 204, 204), (255, 133, 27), (177, 13, 201), (1, 255, 112)]


def rendered_path(rel_path: str) -> str:
    """Where a render of ``rel_path`` goes, relative to the render folder: same path, always a JPEG.

    ``a/b.jpg`` stays ``a/b.jpg``; ``a/b.png`` becomes ``a/b.png.jpg`` (so ``b.png`` and ``b.jpg`` side by side
    do not overwrite each other).
    """
    path = PurePosixPath(rel_path)
    return str(path) if path.suffix.lower() in (".jpg", ".jpeg") else f"{path}.jpg"


def _colour(category_id: str, name: str) -> tuple[int, int, int]:
    return _CATEGORY_COLOURS.get(name.lower(), _OTHER_COLOURS[int(category_id) % len(_OTHER_COLOURS)])


def render_entry(
    image: np.ndarray,
    entry: Mapping[str, Any],
    detection_categories: Mapping[str, str],
    classification_categories: Mapping[str, str],
    threshold: float,
) -> Image.Image:
    """The image with the entry's detections at or above ``threshold`` drawn on it.

    Args:
        image: RGB uint8 HWC, the image as displayed (any size: boxes are normalised).
        entry: an MD image entry (``detections`` with normalised ``bbox``, optional ``classifications``).
        detection_categories, classification_categories: MD id -> name maps.
        threshold: detections below this confidence are not drawn.
    """
    picture = Image.fromarray(image).convert("RGB")
    width, height = picture.size
    draw = ImageDraw.Draw(picture)
    line = max(2, round(min(width, height) / 250))
    font = ImageFont.load_default(size=max(12, round(min(width, height) / 40)))
    for det in entry.get("detections") or ():
        if det["conf"] < threshold:
            continue
        x, y, w, h = det["bbox"]
        box = (x * width, y * height, (x + w) * width, (y + h) * height)
        name = detection_categories.get(det["category"], det["category"])
        colour = _colour(det["category"], name)
        draw.rectangle(box, outline=colour, width=line)
        label = f"{name} {det['conf']:.2f}"
        if det.get("classifications"):
            species_id, species_conf = det["classifications"][0]
            label += f" | {classification_categories.get(species_id, species_id)} {species_conf:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        text_w, text_h = right - left, bottom - top
        # Above the box when there is room, else just inside its top edge.
        text_y = box[1] - text_h - 2 * line if box[1] - text_h - 2 * line >= 0 else box[1] + line
        text_x = min(max(box[0], 0), max(width - text_w - 2 * line, 0))
        draw.rectangle((text_x, text_y, text_x + text_w + 2 * line, text_y + text_h + 2 * line), fill=colour)
        draw.text((text_x + line - left, text_y + line - top), label, fill=(0, 0, 0), font=font)
    return picture
