"""Helpers for the camera-trap tests: the sample frames in tests/assets, small images and CCT files made in a temp
folder."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# Real camera-trap frames kept in the repository, with their sources and licences (data/camtrap_mini/SOURCES.md).
CAMTRAP_MINI = Path(__file__).resolve().parent / "assets" / "camtrap_mini"
SERENGETI_CCT = CAMTRAP_MINI / "serengeti_cct_original.json"
MINI_COCO = CAMTRAP_MINI / "annotations.json"
MINI_IMAGES = CAMTRAP_MINI / "images"
# The original file's paths; the frames live here as images/serengeti_<basename>.
SERENGETI_PREFIX = "models/research/object_detection/test_images/snapshot_serengeti"
EXIF_ORIENTATION = 0x0112


def unique_name(prefix: str) -> str:
    """A dataset name not yet in detectron2's global catalogs (tests share one process)."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def save_rgb(path: Path, width: int, height: int, color=(90, 120, 60), **save_kwargs) -> Path:
    """A flat-colour RGB image (format from the extension)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), color).save(path, **save_kwargs)
    return path


def save_exif_rotated_jpeg(path: Path, stored_w: int = 40, stored_h: int = 20, orientation: int = 6) -> Path:
    """A JPEG stored ``stored_w`` x ``stored_h`` whose EXIF says "rotate 90 degrees clockwise to display".

    A red block sits at the stored top-left corner; a viewer shows it at the top-right.
    """
    pixels = np.zeros((stored_h, stored_w, 3), dtype=np.uint8)
    pixels[: stored_h // 2, : stored_w // 4] = (255, 0, 0)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    return path


def validate_md(data_or_path: Any) -> dict[str, Any]:
    """Run the megadetector package's own validator; returns its validation_results."""
    from PIL import ImageFile

    # Importing megadetector sets Pillow's process-wide ImageFile.LOAD_TRUNCATED_IMAGES = True (in its
    # visualization_utils); restore it, or later tests in this process would see truncated files decode.
    load_truncated = ImageFile.LOAD_TRUNCATED_IMAGES
    from megadetector.postprocessing.validate_batch_results import ValidateBatchResultsOptions, validate_batch_results

    ImageFile.LOAD_TRUNCATED_IMAGES = load_truncated

    options = ValidateBatchResultsOptions()
    options.raise_errors = False
    arg = str(data_or_path) if isinstance(data_or_path, Path) else data_or_path
    return validate_batch_results(arg, options)["validation_results"]
