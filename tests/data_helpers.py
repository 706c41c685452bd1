"""Shared helpers for the data and evaluation tests: tiny COCO-format datasets written to a temp folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.camtrap_helpers import CAMTRAP_MINI as CAMTRAP_DIR  # noqa: F401  (the sample frames in tests/assets)
from tests.camtrap_helpers import unique_name  # noqa: F401  (re-exported for the data tests)


def tiny_coco(num_images: int = 3, size: int = 64) -> dict[str, Any]:
    """A valid COCO dict: non-contiguous category ids (listed out of order), one image without annotations."""
    images = [{"id": i + 1, "file_name": f"img_{i}.png", "width": size, "height": size} for i in range(num_images)]
    annotations = []
    for i in range(num_images - 1):  # the last image stays empty
        for k, cat in enumerate((7, 12)):
            x, y = 4 + 20 * k, 6 + 3 * i
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": cat,
                    "bbox": [x, y, 16, 20],
                    "area": 320.0,
                    "iscrowd": 0,
                    "segmentation": [[x, y, x + 16, y, x + 16, y + 20, x, y + 20]],
                }
            )
    categories = [{"id": 12, "name": "twelve"}, {"id": 3, "name": "three"}, {"id": 7, "name": "seven"}]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_coco(folder: Path, coco: dict[str, Any], create_images: bool = True) -> tuple[Path, Path]:
    """Write ``coco`` as folder/annotations.json and (empty placeholder) image files; return (json, image_root).

    The pre-flight check only stats files, so placeholders suffice; tests that decode images write real ones.
    """
    image_root = folder / "images"
    image_root.mkdir(parents=True, exist_ok=True)
    if create_images:
        for img in coco.get("images", []):
            (image_root / img["file_name"]).write_bytes(b"")
    json_file = folder / "annotations.json"
    json_file.write_text(json.dumps(coco, indent=1), encoding="utf-8")
    return json_file, image_root
