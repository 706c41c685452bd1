"""COCO-format datasets named on the command line: a pre-flight check and detectron2 registration.

detectron2's own loader (``load_coco_json``) fails late and tersely on bad input: a ``KeyError`` for an
unknown category id after minutes of set-up, an ``AssertionError`` for duplicate annotation ids, a
``FileNotFoundError`` for a missing image only when the data loader first reaches it. The check here
runs before training, reads only the JSON and the directory listings (it never decodes an image), and
reports every problem it finds in one :class:`DatasetError`.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter, defaultdict
from typing import Any, Iterable

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.catalog import Metadata
from detectron2.data.datasets import register_coco_instances

from ..errors import UserInputError

__all__ = [
    "DatasetError",
    "validate_coco_dataset",
    "register_coco_dataset",
    "read_coco_categories",
]

# How many offending paths / ids a message quotes; the counts are always complete.
_MAX_EXAMPLES = 5


class DatasetError(UserInputError):
    """A COCO-format dataset cannot be used as given. The message lists every problem found and a fix.

    ``argument`` (the ``role`` given) says which set it is (``"training"``, ``"evaluation"``, or None when not
    known), so that a
    command line can name the options that gave its paths.
    """

    def __init__(self, message: str, role: str | None = None):
        super().__init__(message, argument=role)


# Parsed "categories" per JSON file, keyed by (path, mtime, size). The pre-flight check already parses
# the JSON once; registration reuses its categories instead of parsing a COCO-sized file (~450 MB) again.
_CATEGORY_CACHE: dict[tuple[str, int, int], list[dict[str, Any]]] = {}


def _file_key(json_file: str) -> tuple[str, int, int]:
    st = os.stat(json_file)
    return (os.path.realpath(json_file), st.st_mtime_ns, st.st_size)


def _examples(items: Iterable[Any]) -> str:
    items = list(items)
    shown = ", ".join(repr(x) for x in items[:_MAX_EXAMPLES])
    return shown + (f" and {len(items) - _MAX_EXAMPLES} more" if len(items) > _MAX_EXAMPLES else "")


def _is_number(x: Any) -> bool:
    # bool is an int subclass in Python, but `true` is never a valid coordinate.
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_id(x: Any) -> bool:
    # COCO ids are integers; real-world files (COCO Camera Traps) also use strings. Both are hashable
    # and work with pycocotools; anything else (null, lists, floats) does not resolve reliably.
    return (isinstance(x, int) and not isinstance(x, bool)) or isinstance(x, str)


def _load_json(json_file: str, role: str | None) -> Any:
    """Parse the annotation file, or raise a DatasetError saying what is wrong with it."""
    if not os.path.exists(json_file):
        raise DatasetError(
            f"COCO annotation file not found: {json_file}\n"
            f"  Fix: give the path of an existing COCO-format JSON file; relative paths are "
            f"resolved from the current directory {os.getcwd()}.",
            role,
        )
    if not os.path.isfile(json_file):
        raise DatasetError(
            f"COCO annotation path is not a file: {json_file}\n  Fix: give the JSON file itself, not a folder.", role
        )
    try:
        with open(json_file, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetError(
            f"COCO annotation file is not valid JSON: {json_file}\n"
            f"  line {e.lineno}, column {e.colno}: {e.msg}\n"
            "  Fix: repair or re-export the file; `python -m json.tool FILE` shows the same position.",
            role,
        ) from e
    except UnicodeDecodeError as e:
        raise DatasetError(
            f"COCO annotation file is not UTF-8 text: {json_file} ({e})\n  Fix: re-export it as UTF-8 JSON.", role
        ) from e


def _missing_image_files(image_root: str, file_names: list[str]) -> list[str]:
    """Paths (joined as detectron2 joins them) that do not exist as files.

    One directory listing per folder instead of one ``stat`` per image: with ~100k images on a network
    disk that is the difference between a second and minutes.
    """
    by_dir: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for name in file_names:
        path = os.path.join(image_root, name)
        by_dir[os.path.dirname(path)].append((os.path.basename(path), path))
    missing = []
    for folder, entries in by_dir.items():
        try:
            with os.scandir(folder) as it:
                present = {e.name for e in it if e.is_file()}
        except (FileNotFoundError, NotADirectoryError):
            present = set()
        missing.extend(path for base, path in entries if base not in present)
    return sorted(missing)


def _check_annotation(ann: dict[str, Any], image_ids: set, category_ids: set, bad: dict[str, list]) -> None:
    """Append the offending value (annotation id, or the unresolved id) to each bucket of ``bad`` it breaks."""
    ann_id = ann.get("id")
    if ann.get("image_id") not in image_ids:
        bad["dangling_image_id"].append(ann.get("image_id"))
    if ann.get("category_id") not in category_ids:
        bad["dangling_category_id"].append(ann.get("category_id"))
    if ann.get("ignore", 0):
        bad["ignore_flag"].append(ann_id)

    bbox = ann.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
        bad["malformed_box"].append(ann_id)
    elif bbox[2] < 0 or bbox[3] < 0:
        bad["negative_box"].append(ann_id)
    elif bbox[2] == 0 or bbox[3] == 0:
        bad["zero_box"].append(ann_id)

    segm = ann.get("segmentation")
    if isinstance(segm, list) and segm:
        # detectron2 keeps polygons with an even number (>= 6) of coordinates and silently drops the
        # whole instance (box included) when none is left.
        if not any(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in segm):
            bad["bad_polygon"].append(ann_id)


# Bucket -> (what is wrong, how to fix it). Ordered as reported.
_ANNOTATION_RULES: dict[str, tuple[str, str]] = {
    "malformed_box": (
        "have no valid 'bbox' (it must be a list of 4 finite numbers [x, y, width, height])",
        "export boxes as absolute-pixel [x, y, width, height]",
    ),
    "negative_box": (
        "have a box with negative width or height",
        "COCO boxes are [x, y, width, height], not [x1, y1, x2, y2]; convert them or drop these annotations",
    ),
    "zero_box": (
        "have a zero-size box (width or height is 0)",
        "drop these annotations or give them their real extent",
    ),
    "dangling_image_id": (
        "have an image_id that is not the id of any entry in 'images'",
        "add the missing images to 'images' or drop these annotations",
    ),
    "dangling_category_id": (
        "have a category_id that is not the id of any entry in 'categories'",
        "add the missing categories to 'categories' or fix these ids",
    ),
    "ignore_flag": (
        "carry 'ignore': 1, which detectron2 rejects",
        "mark such regions with 'iscrowd': 1 instead",
    ),
    "bad_polygon": (
        "have a 'segmentation' without any valid polygon (an even number >= 6 of coordinates); "
        "detectron2 would silently drop these instances",
        "fix the polygons, or remove 'segmentation' to train boxes only",
    ),
}


def _duplicates(values: Iterable[Any]) -> list[Any]:
    return sorted((k for k, n in Counter(values).items() if n > 1), key=str)


def _check_categories(categories: list[Any]) -> tuple[list[str], set]:
    """Problems with 'categories', and the set of valid category ids."""
    problems = []
    bad = [i for i, c in enumerate(categories) if not (isinstance(c, dict) and _is_id(c.get("id")) and "name" in c)]
    if bad:
        problems.append(
            f"{len(bad)} of {len(categories)} categories lack an integer/string 'id' or a 'name' "
            f"(positions {_examples(bad)}). Fix: give each category {{'id': ..., 'name': ...}}."
        )
    ids = [c["id"] for c in categories if isinstance(c, dict) and _is_id(c.get("id"))]
    if _duplicates(ids):
        problems.append(f"category ids occur more than once: {_examples(_duplicates(ids))}. Fix: make them unique.")
    return problems, set(ids)


def _is_valid_image_entry(img: Any) -> bool:
    return (
        isinstance(img, dict)
        and _is_id(img.get("id"))
        and isinstance(img.get("file_name"), str)
        and _is_number(img.get("width"))
        and _is_number(img.get("height"))
        and img["width"] > 0
        and img["height"] > 0
    )


def _check_images(raw_images: list[Any], image_root: str) -> tuple[list[str], set]:
    """Problems with 'images' and their files, and the set of valid image ids."""
    problems = []
    bad = [
        img.get("id", f"#{i}") if isinstance(img, dict) else f"#{i}"
        for i, img in enumerate(raw_images)
        if not _is_valid_image_entry(img)
    ]
    if bad:
        problems.append(
            f"{len(bad)} of {len(raw_images)} images lack an id, a 'file_name' or a positive 'width'/'height' "
            f"(ids or #positions: {_examples(bad)}). Fix: each image needs {{'id', 'file_name', 'width', 'height'}}."
        )
    images = [img for img in raw_images if isinstance(img, dict)]
    ids = [img["id"] for img in images if _is_id(img.get("id"))]
    if _duplicates(ids):
        problems.append(f"image ids occur more than once: {_examples(_duplicates(ids))}. Fix: make them unique.")

    file_names = [img["file_name"] for img in images if isinstance(img.get("file_name"), str)]
    if file_names and not os.path.isdir(image_root):
        problems.append(
            f"the image folder does not exist: {image_root}. Fix: give the folder that the "
            "'file_name' entries are relative to."
        )
    elif file_names:
        missing = _missing_image_files(image_root, file_names)
        if missing:
            problems.append(
                f"{len(missing)} of {len(file_names)} image files are missing: {_examples(missing)}. "
                f"Fix: check that the image folder {image_root} is the one the 'file_name' entries are relative to, "
                "and that the images were copied completely."
            )
    return problems, set(ids)


def _check_annotations(annotations: list[Any], image_ids: set, category_ids: set) -> list[str]:
    problems = []
    non_dicts = [i for i, a in enumerate(annotations) if not isinstance(a, dict)]
    if non_dicts:
        problems.append(
            f"{len(non_dicts)} annotations are not JSON objects (positions {_examples(non_dicts)}). "
            "Fix: export the dataset in COCO instances format."
        )
    anns = [a for a in annotations if isinstance(a, dict)]
    bad: dict[str, list] = defaultdict(list)
    for ann in anns:
        _check_annotation(ann, image_ids, category_ids, bad)
    for key, (what, fix) in _ANNOTATION_RULES.items():
        if bad[key]:
            # Dangling references are listed by the unresolved id, the other rules by annotation id.
            dangling = key.startswith("dangling")
            values = sorted(set(bad[key]), key=str) if dangling else bad[key]
            problems.append(
                f"{len(bad[key])} of {len(anns)} annotations {what} "
                f"({'ids' if dangling else 'annotation ids'}: {_examples(values)}). Fix: {fix}."
            )
    ann_ids = [a.get("id") for a in anns]
    without_id = sum(1 for x in ann_ids if not _is_id(x))
    if without_id:
        problems.append(f"{without_id} annotations have no integer/string 'id'. Fix: give each a unique id.")
    duplicates = _duplicates(x for x in ann_ids if _is_id(x))
    if duplicates:
        problems.append(
            f"{len(duplicates)} annotation ids occur more than once (detectron2 refuses such files): "
            f"{_examples(duplicates)}. Fix: renumber the annotations."
        )
    return problems


def validate_coco_dataset(json_file: str | os.PathLike, image_root: str | os.PathLike, *, for_training: bool) -> None:
    """Check a COCO-format dataset before it is used, and report all problems at once.

    Reads the JSON and lists the image folders; image files are not opened.

    Args:
        json_file: the COCO instances JSON (``images``, ``annotations``, ``categories``).
        image_root: the folder that ``images[*].file_name`` is relative to.
        for_training: a training set must have images and at least one usable (non-crowd) box;
            an evaluation set may have images without annotations, or no ``annotations`` at all.

    Raises:
        DatasetError: with one line per problem (counts, the first few offending paths or ids, a fix).
    """
    json_file, image_root = os.fspath(json_file), os.fspath(image_root)
    role = "training" if for_training else "evaluation"
    data = _load_json(json_file, role)
    if not isinstance(data, dict):
        raise DatasetError(
            f"COCO annotation file {json_file} holds a JSON {type(data).__name__}, not an object with "
            "'images', 'annotations' and 'categories'.\n  Fix: export the dataset in COCO instances format.",
            role,
        )

    problems: list[str] = []
    # An evaluation set may omit "annotations" (a test-dev style file: predictions are only saved).
    required = ["images", "categories"] + (["annotations"] if for_training or "annotations" in data else [])
    for key in required:
        if not isinstance(data.get(key), list):
            state = "is missing" if key not in data else f"is a {type(data[key]).__name__}, not a list"
            problems.append(f"the top-level '{key}' {state}. Fix: export the dataset in COCO instances format.")
    raw_images, categories, annotations = (
        data[key] if isinstance(data.get(key), list) else [] for key in ("images", "categories", "annotations")
    )
    if not categories and isinstance(data.get("categories"), list):
        problems.append("'categories' is empty. Fix: list the classes as {'id': ..., 'name': ...}.")

    category_problems, category_ids = _check_categories(categories)
    image_problems, image_ids = _check_images(raw_images, image_root)
    problems += category_problems + image_problems + _check_annotations(annotations, image_ids, category_ids)

    # An empty set is a problem of its own, reported even when the pieces above are fine.
    if isinstance(data.get("images"), list) and not raw_images:
        problems.append(
            f"the {'training' if for_training else 'evaluation'} set has no images ('images' is empty). "
            "Fix: use the annotation file of a non-empty dataset."
        )
    elif for_training and isinstance(data.get("annotations"), list):
        usable = [
            a for a in annotations if isinstance(a, dict) and not a.get("iscrowd", 0) and a.get("image_id") in image_ids
        ]
        if not usable:
            problems.append(
                f"the training set has no annotations to learn from ({len(annotations)} annotations, none "
                "non-crowd on a listed image). Fix: add annotations, or use this file for evaluation only."
            )

    if problems:
        raise DatasetError(
            f"COCO dataset check failed: {len(problems)} problem(s) in {json_file} (images under {image_root}):\n"
            + "\n".join(f"  - {p}" for p in problems),
            role,
        )
    # Only a clean file is worth remembering: registration then needs no second parse.
    _CATEGORY_CACHE[_file_key(json_file)] = [dict(c) for c in categories]


def read_coco_categories(json_file: str | os.PathLike) -> list[dict[str, Any]]:
    """The ``categories`` list of a COCO JSON file (cached per file path, size and mtime).

    Args:
        json_file: the COCO instances JSON.
    """
    json_file = os.fspath(json_file)
    key = _file_key(json_file) if os.path.isfile(json_file) else None
    if key is not None and key in _CATEGORY_CACHE:
        return _CATEGORY_CACHE[key]
    data = _load_json(json_file, None)
    categories = data.get("categories") if isinstance(data, dict) else None
    if not isinstance(categories, list) or not categories:
        raise DatasetError(f"{json_file} has no 'categories' list. Fix: export the dataset in COCO instances format.")
    if not all(isinstance(c, dict) and _is_id(c.get("id")) and "name" in c for c in categories):
        raise DatasetError(
            f"{json_file}: some categories lack an 'id' or a 'name'. Fix: give each category "
            "{'id': ..., 'name': ...}; validate_coco_dataset() lists all problems of the file."
        )
    _CATEGORY_CACHE[key] = categories
    return categories


def _category_metadata(categories: list[dict[str, Any]]) -> dict[str, Any]:
    """thing_classes and the dataset-id -> contiguous-id map, computed exactly as detectron2's
    ``load_coco_json`` computes them, so its later ``MetadataCatalog.set`` agrees with ours."""
    by_id = {c["id"]: c for c in categories}  # like pycocotools: a repeated id keeps the last entry
    cat_ids = sorted(by_id)
    return {
        "thing_classes": [by_id[i]["name"] for i in cat_ids],
        "thing_dataset_id_to_contiguous_id": {v: i for i, v in enumerate(cat_ids)},
    }


def register_coco_dataset(name: str, json_file: str | os.PathLike, image_root: str | os.PathLike) -> Metadata:
    """Register a COCO-format dataset with detectron2 under ``name``.

    Uses detectron2's ``register_coco_instances``, so loading is lazy and done by ``load_coco_json``:
    every image is kept, including those without annotations (evaluation needs them; training drops
    them through ``DATALOADER.FILTER_EMPTY_ANNOTATIONS``), and category ids need not be 1..K.
    Unlike a bare ``register_coco_instances``, the class metadata (``thing_classes``,
    ``thing_dataset_id_to_contiguous_id``) is set right away, so ``MODEL.ROI_HEADS.NUM_CLASSES`` and the
    evaluator can use it before the dataset is first loaded.

    Registering the same name again with the same files is a no-op (``main()`` may run twice in one
    process); with different files it is an error.

    Args:
        name: the dataset name used in ``DATASETS.TRAIN`` / ``DATASETS.TEST``.
        json_file: the COCO instances JSON.
        image_root: the folder that ``images[*].file_name`` is relative to.

    Returns:
        The dataset's detectron2 ``Metadata``.
    """
    json_file, image_root = os.fspath(json_file), os.fspath(image_root)
    if name in DatasetCatalog.list():
        meta = MetadataCatalog.get(name)
        old = (meta.get("json_file"), meta.get("image_root"))
        if old == (json_file, image_root):
            return meta
        raise ValueError(
            f"Dataset name {name!r} is already registered with json_file={old[0]!r}, image_root={old[1]!r}; "
            f"cannot re-register it with json_file={json_file!r}, image_root={image_root!r}. "
            "Fix: choose another dataset name."
        )
    register_coco_instances(name, _category_metadata(read_coco_categories(json_file)), json_file, image_root)
    return MetadataCatalog.get(name)
