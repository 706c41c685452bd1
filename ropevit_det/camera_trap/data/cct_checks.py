"""Is a COCO Camera Traps file self-consistent: ids of one type and unique, annotations of known images and
categories, boxes of four finite numbers >= 0. Metrics and splits of an inconsistent file would silently lie."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from ...errors import UserInputError


class CCTConsistencyError(UserInputError):
    """A CCT file whose ids or boxes would make two readings of it possible (so metrics or splits would lie)."""


def _ids_hint(value: Any, known: set[Any]) -> str:
    """Why ``value`` is not among ``known``: a type mismatch ("12" vs 12) is the usual cause."""
    same_text = [k for k in known if str(k) == str(value)]
    if same_text:
        return (
            f" (image id {same_text[0]!r} is a {type(same_text[0]).__name__}, annotation image_id {value!r} a "
            f"{type(value).__name__}: write both as the same type)"
        )
    return ""


def _finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)  # an int is finite however large (and too big for float)


def check_cct_consistency(data: dict[str, Any], source: str | Path, *, max_listed: int = 3) -> None:
    """Refuse a CCT file whose ids or boxes do not mean one thing, naming what is wrong.

    Checked: image, annotation and category ids are strings or integers and unique; every annotation's
    ``image_id`` is an image's id of the same type (``"12"`` is not ``12``) and its ``category_id`` a category's;
    every ``bbox`` is null or four finite numbers with ``x``, ``y`` >= 0 and ``w``, ``h`` >= 0; ``file_name`` is a
    string and ``width`` / ``height``, where given, numbers >= 0.

    Args:
        data: the parsed file (as :func:`read_cct_json` returns it).
        source: how messages name the file, e.g. ``"CCT file data/cct.json"``.

    Raises:
        CCTConsistencyError: naming ``source``, the check and the first entries at fault.
    """

    def fail(problem: str, bad: list[str], fix: str) -> CCTConsistencyError:
        listed = ", ".join(bad[:max_listed]) + (f" and {len(bad) - max_listed} more" if len(bad) > max_listed else "")
        return CCTConsistencyError(f"{source}: {problem}: {listed}; {fix}")

    def valid_id(value: Any) -> bool:
        return isinstance(value, (str, int)) and not isinstance(value, bool)

    for key in ("images", "annotations", "categories"):
        items = data.get(key, [])
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise CCTConsistencyError(f"{source}: '{key}' must be a list of objects")
        bad = [
            f"{key}[{i}] id {item.get('id')!r}"
            for i, item in enumerate(data.get(key, []))
            if "id" in item and not valid_id(item["id"])
        ]
        if bad:
            raise fail(f"{key} ids must be strings or integers", bad, "fix the ids")
        counts = Counter(item["id"] for item in data.get(key, []) if "id" in item)
        repeated = [repr(i) for i, n in counts.items() if n > 1]
        if repeated:
            raise fail(
                f"{key} ids used more than once",
                repeated,
                "give each a unique id (annotations cannot say which one they belong to)",
            )
    bad = [
        f"images[{i}] file_name {image['file_name']!r}"
        for i, image in enumerate(data["images"])
        if not isinstance(image["file_name"], str)
    ]
    bad += [
        f"images[{i}] {key} {image[key]!r}"
        for i, image in enumerate(data["images"])
        for key in ("width", "height")
        if image.get(key) is not None and not (_finite_number(image[key]) and image[key] >= 0)
    ]
    if bad:
        raise fail(
            "image file names must be strings, and width / height numbers >= 0 (0: unknown)", bad, "fix these images"
        )
    image_ids = {image["id"] for image in data["images"]}
    category_ids = {c["id"] for c in data["categories"] if "id" in c}
    orphans, unknown_categories, bad_boxes = [], [], []
    type_hint = ""
    for i, ann in enumerate(data.get("annotations", [])):
        name = f"annotation {ann.get('id', f'#{i}')!r}"
        image_id = ann.get("image_id")
        if not valid_id(image_id) or image_id not in image_ids:
            orphans.append(f"{name} of image_id {image_id!r}")
            type_hint = type_hint or _ids_hint(image_id, image_ids)
        if ann.get("category_id") not in category_ids:
            unknown_categories.append(f"{name} of category_id {ann.get('category_id')!r}")
        bbox = ann.get("bbox")
        if bbox is None:
            continue
        numbers = isinstance(bbox, list) and len(bbox) == 4 and all(_finite_number(v) for v in bbox)
        if not numbers or min(bbox) < 0:
            bad_boxes.append(f"{name} bbox {bbox!r}")
    if orphans:
        raise fail(
            f"annotations of images that are not in 'images'{type_hint}",
            orphans,
            "add the images or remove the annotations (results would be scored without them)",
        )
    if unknown_categories:
        raise fail(
            "annotations of categories that are not in 'categories'",
            unknown_categories,
            "add the categories or fix the ids",
        )
    if bad_boxes:
        raise fail(
            "boxes that are not [x, y, width, height] with four finite numbers >= 0",
            bad_boxes,
            "fix or remove these boxes",
        )
