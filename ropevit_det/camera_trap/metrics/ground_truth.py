"""Ground truth for the camera-trap metrics: a CCT or COCO file read into one record per image, with every
label mapped to a MegaDetector class (animal / person / vehicle, or ignore)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.cct import read_cct_json
from ..data.cct_checks import check_cct_consistency
from ..data.class_mapping import IGNORE, MD_CLASSES, is_empty_category, load_md_mapping, mapped_md_class
from ..data.matching import strip_path_prefix
from ..inputs.exif import image_size_from_header

logger = logging.getLogger(__name__)


def md_class_of(name: str, mapping: Mapping[str, str]) -> str:
    """MD class of a category name; the names animal/person/vehicle map to themselves."""
    return name if name in MD_CLASSES else mapped_md_class(name, mapping)


@dataclass
class GroundTruthImage:
    """What the metrics need of one ground-truth image."""

    file_name: str  # after prefix rewriting
    labels: set[str]  # MD classes present (boxed or image-level); empty set = empty frame
    boxes: list[tuple[str, list[float]]]  # (category name in the ground truth, absolute [x, y, w, h])
    has_unboxed_label: bool  # a non-empty label without any box: the image cannot be used for box AP
    only_ignored: bool  # every label maps to "ignore": neither positive nor a clean negative
    width: int | None
    height: int | None
    seq_id: str | None

    @property
    def is_empty(self) -> bool:
        return not self.labels and not self.only_ignored


def load_ground_truth(
    gt_file: str | Path,
    *,
    mapping_file: str | Path | None = None,
    image_root: str | Path | None = None,
    strip_prefix: str | None = None,
    add_prefix: str = "",
) -> tuple[list[GroundTruthImage], dict[Any, str]]:
    """Read a CCT or COCO file into :class:`GroundTruthImage` records.

    Args:
        gt_file: CCT or plain COCO JSON (boxes optional, ``empty`` categories and image-level labels allowed).
        mapping_file: species -> MD class mapping (see :func:`..data.class_mapping.load_md_mapping`).
        image_root: where to read missing ``width``/``height`` from image headers (needed for box AP only).
        strip_prefix, add_prefix: rewrite each ``file_name`` (as in :func:`ropevit_det.camera_trap.data.cct.
            resolve_image_paths`); the rewritten name is matched to results and looked up under ``image_root``.

    Returns:
        ``(images, {category id: name})``.

    Raises:
        ValueError: the file cannot be read, or its ids or boxes are inconsistent
            (:func:`ropevit_det.camera_trap.data.cct_checks.check_cct_consistency`).
    """
    data = read_cct_json(gt_file)
    # Ids of another type than the annotations' ("12" vs 12) or unknown images would score every image empty.
    check_cct_consistency(data, f"ground truth {gt_file}")
    mapping = load_md_mapping(mapping_file)
    names = {c["id"]: c["name"] for c in data["categories"]}
    anns_by_image: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for ann in data["annotations"]:
        anns_by_image[ann["image_id"]].append(ann)
    images = []
    for image in data["images"]:
        labels: set[str] = set()
        boxes: list[tuple[str, list[float]]] = []
        unboxed, ignored = False, False
        for ann in anns_by_image.get(image["id"], []):
            name = names.get(ann.get("category_id"))
            if name is None:
                raise ValueError(
                    f"{gt_file}: annotation {ann.get('id')!r} has unknown category_id {ann.get('category_id')!r}"
                )
            if is_empty_category(name):
                continue
            md_class = md_class_of(name, mapping)
            if md_class == IGNORE:
                ignored = True
                continue
            labels.add(md_class)
            if ann.get("bbox") is not None:
                boxes.append((name, [float(v) for v in ann["bbox"]]))
            else:
                unboxed = True
        file_name = add_prefix + strip_path_prefix(image["file_name"], strip_prefix)
        width, height = image.get("width"), image.get("height")
        if (not width or not height) and image_root is not None and (Path(image_root) / file_name).is_file():
            width, height = image_size_from_header(Path(image_root) / file_name)
        images.append(
            GroundTruthImage(
                file_name=file_name,
                labels=labels,
                boxes=boxes,
                has_unboxed_label=unboxed and not boxes,
                only_ignored=ignored and not labels,
                width=width or None,
                height=height or None,
                seq_id=None if image.get("seq_id") is None else str(image["seq_id"]),
            )
        )
    return images, names
