"""A small, deterministic, SYNTHETIC instance-segmentation dataset for the demo (no download).

Each image is a noisy, blotchy gray-ish background with 1-4 non-overlapping filled shapes of three
classes: circle, square (rotated) and triangle (equilateral, rotated). Every class keeps to one hue family
(reds, greens, blues) with random shade, size, position and rotation, so a tiny detector can learn the
task in minutes on a CPU; the shapes themselves still have to be found, outlined and told apart.

The masks are exact: the pixels of a shape are painted through the very rasterisation that pycocotools
(and so COCO evaluation) applies to its annotated polygon, and its box and area are those of that mask.
Objects are at least ~20 px wide and tall.

Nothing here is real data; the numbers a model reaches on it say nothing about natural images.
"""

from __future__ import annotations

import colorsys
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image

__all__ = ["SHAPE_CLASSES", "generate_shapes_dataset"]

SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle")
# Hue family per class (HSV hue in [0, 1)): red, green, blue.
_CLASS_HUES = {"circle": 0.0, "square": 0.33, "triangle": 0.62}
# Bump when the images or annotations for the same parameters would change: old outputs get rebuilt.
_GENERATOR_VERSION = 1
_MANIFEST = "synthetic_shapes.json"
_MIN_OBJECT_DIAMETER = 30  # circumscribed circle; the smallest box side is then >= 0.7 * 30 - 1 = 20 px
_MAX_OBJECT_DIAMETER = 72
_GAP = 3  # px between the circumscribed circles of two shapes, so that masks never touch


def _shape_polygon(kind: str, cx: float, cy: float, radius: float, angle: float) -> list[float]:
    """Vertices [x0, y0, x1, y1, ...] of a shape inscribed in the circle (cx, cy, radius)."""
    n_vertices = {"circle": 32, "square": 4, "triangle": 3}[kind]
    if kind == "circle":
        angle = 0.0
    ts = angle + 2 * math.pi * np.arange(n_vertices) / n_vertices
    xy = np.stack([cx + radius * np.cos(ts), cy + radius * np.sin(ts)], axis=1)
    # Rounded so that the JSON and the painted pixels come from the very same numbers.
    return [round(float(v), 2) for v in xy.reshape(-1)]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Low-saturation blotches plus pixel noise, float32 HxWx3 in [0, 255]."""
    base = rng.uniform(70, 170) + rng.uniform(-12, 12, size=3)
    coarse = rng.normal(0, 22, size=(size // 16 + 2, size // 16 + 2, 3))
    coarse_img = Image.fromarray(np.clip(coarse + 128, 0, 255).astype(np.uint8))
    blotches = np.asarray(coarse_img.resize((size, size), Image.BILINEAR), dtype=np.float32) - 128
    fine = rng.normal(0, 7, size=(size, size, 3))
    return np.clip(base + blotches + fine, 0, 255).astype(np.float32)


def _random_color(rng: np.random.Generator, kind: str) -> np.ndarray:
    hue = (_CLASS_HUES[kind] + rng.uniform(-0.05, 0.05)) % 1.0
    rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.65, 1.0), rng.uniform(0.7, 1.0))
    return np.array(rgb, dtype=np.float32) * 255


def _render_image(rng: np.random.Generator, size: int, max_diameter: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One image (uint8 HxWx3) and its objects: class index, polygon, box [x, y, w, h], mask area."""
    pixels = _background(rng, size)
    placed: list[tuple[float, float, float]] = []  # (cx, cy, radius)
    objects: list[dict[str, Any]] = []
    for _ in range(int(rng.integers(1, 5))):
        class_index = int(rng.integers(len(SHAPE_CLASSES)))
        kind = SHAPE_CLASSES[class_index]
        radius = rng.uniform(_MIN_OBJECT_DIAMETER, max_diameter) / 2
        # Rejection sampling for a free spot; giving up leaves fewer shapes, never overlapping ones.
        for _attempt in range(100):
            cx, cy = rng.uniform(radius + 2, size - radius - 2, size=2)
            if all(math.hypot(cx - x, cy - y) > radius + r + _GAP for x, y, r in placed):
                break
        else:
            continue
        placed.append((cx, cy, radius))
        polygon = _shape_polygon(kind, cx, cy, radius, rng.uniform(0, 2 * math.pi))
        rle = mask_util.frPyObjects([polygon], size, size)[0]
        mask = mask_util.decode(rle).astype(bool)
        shade = _random_color(rng, kind) + rng.normal(0, 6, size=(int(mask.sum()), 3))
        pixels[mask] = np.clip(shade, 0, 255)
        # Box and area of the rasterised mask (pycocotools' toBbox/area), as in COCO itself: the box then
        # encloses exactly the pixels of the mask, also at sharp corners that the raster cuts off.
        box = [float(v) for v in mask_util.toBbox(rle)]
        area = float(mask_util.area(rle))
        objects.append({"class_index": class_index, "polygon": polygon, "bbox": box, "area": area})
    return np.round(pixels).astype(np.uint8), objects


def _write_split(
    folder: Path, json_path: Path, split: str, count: int, seed: int, size: int, max_diameter: int
) -> None:
    folder.mkdir(parents=True)
    images, annotations = [], []
    for index in range(count):
        # One independent stream per (seed, split, image): an image does not depend on the split sizes.
        rng = np.random.default_rng([seed, {"train": 0, "val": 1}[split], index])
        pixels, objects = _render_image(rng, size, max_diameter)
        file_name = f"{index:06d}.png"  # PNG: lossless, so the pixels are exactly reproducible
        Image.fromarray(pixels).save(folder / file_name)
        image_id = index + 1
        images.append({"id": image_id, "file_name": file_name, "width": size, "height": size})
        for obj in objects:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": obj["class_index"] + 1,
                    "bbox": obj["bbox"],
                    "area": obj["area"],
                    "segmentation": [obj["polygon"]],
                    "iscrowd": 0,
                }
            )
    coco = {
        "info": {
            "description": f"SYNTHETIC shapes ({split}), generated by ropevit_det.data.synthetic; not real data",
            "version": str(_GENERATOR_VERSION),
        },
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(SHAPE_CLASSES)],
    }
    json_path.write_text(json.dumps(coco, separators=(",", ":")), encoding="utf-8")


def _paths(root: Path) -> dict[str, Path]:
    return {
        "root": root,
        "train_json": root / "train.json",
        "train_images": root / "train",
        "val_json": root / "val.json",
        "val_images": root / "val",
    }


def _read_manifest(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads((root / _MANIFEST).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None


def _is_complete(root: Path, manifest: dict[str, Any]) -> bool:
    if _read_manifest(root) != manifest:
        return False
    paths = _paths(root)
    params = manifest["params"]
    return (
        paths["train_json"].is_file()
        and paths["val_json"].is_file()
        and len(list(paths["train_images"].glob("*.png"))) == params["num_train"]
        and len(list(paths["val_images"].glob("*.png"))) == params["num_val"]
    )


def generate_shapes_dataset(
    out_dir: str | os.PathLike, num_train: int, num_val: int, seed: int = 0, image_size: int = 160
) -> dict[str, Path]:
    """Write the synthetic shapes dataset (COCO JSON + PNG images), unless it is already there.

    Layout: ``out_dir/{train,val}.json``, ``out_dir/{train,val}/NNNNNN.png`` and a manifest
    ``out_dir/synthetic_shapes.json`` with the parameters. A second call with the same parameters
    returns at once; with other parameters it rebuilds the directory. The output is built in a
    temporary sibling folder and renamed into place, so an interrupted run or a concurrent caller
    (e.g. several training processes) never sees a half-written dataset.

    Args:
        out_dir: target folder; must not exist, be empty, or hold an earlier output of this function.
        num_train: number of training images.
        num_val: number of held-out images (drawn from an independent stream).
        seed: the same seed gives byte-identical JSON and pixel-identical images.
        image_size: side of the square images in pixels (>= 96).

    Returns:
        Paths under keys ``root``, ``train_json``, ``train_images``, ``val_json``, ``val_images``
        (ready for :func:`ropevit_det.data.register_coco_dataset`).
    """
    if num_train < 1 or num_val < 1:
        raise ValueError(f"num_train and num_val must be >= 1, got {num_train} and {num_val}.")
    if image_size < 96:
        raise ValueError(f"image_size must be >= 96 px so that shapes of >= 20 px fit; got {image_size}.")
    root = Path(out_dir)
    manifest = {
        "generator": "ropevit_det.data.synthetic.generate_shapes_dataset",
        "version": _GENERATOR_VERSION,
        "params": {"num_train": num_train, "num_val": num_val, "seed": seed, "image_size": image_size},
    }
    if _is_complete(root, manifest):
        return _paths(root)
    if root.exists() and any(root.iterdir()) and _read_manifest(root) is None:
        raise ValueError(
            f"{root} is not empty and was not written by generate_shapes_dataset; refusing to overwrite it. "
            "Fix: choose an empty or new output folder."
        )

    max_diameter = min(_MAX_OBJECT_DIAMETER, int(image_size * 0.45))
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for split, count in (("train", num_train), ("val", num_val)):
            paths = _paths(tmp)
            _write_split(paths[f"{split}_images"], paths[f"{split}_json"], split, count, seed, image_size, max_diameter)
        # The manifest goes last: its presence marks a complete output.
        (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        if root.exists():
            if _is_complete(root, manifest):  # a concurrent caller finished first
                return _paths(root)
            shutil.rmtree(root)  # empty, or an earlier output of ours with other parameters
        try:
            os.rename(tmp, root)
        except OSError:
            if not _is_complete(root, manifest):  # lost a race to a caller with other parameters
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _paths(root)


def empty_frame(size: int = 160, seed: int = 0) -> np.ndarray:
    """A frame of the synthetic domain with no shape in it: the background alone (uint8 HxWx3), as an empty
    camera-trap frame is the scene without an animal."""
    return np.round(_background(np.random.default_rng(seed), size)).astype(np.uint8)
