"""COCO Camera Traps (CCT) files as detectron2 datasets.

CCT (https://lila.science/coco-camera-traps) is COCO plus camera-trap habits that ``load_coco_json`` does not
handle: string image ids (often with slashes), a category 0 ``empty``, image-level labels without ``bbox``,
images without ``width``/``height``, ``file_name`` paths from the machine that made the file, and
sequence / camera fields (``seq_id``, ``frame_num``, ``location``, ``datetime``) that camera-trap evaluation and
splitting need. This module reads such a file into detectron2's standard dataset dicts.

Images are sorted into four kinds:

* boxed: at least one box of a kept class -> a positive training/evaluation image;
* empty: no annotation, or only ``empty`` ones -> a negative (kept for evaluation always, for training unless
  ``keep_empty_for_training=False``);
* unboxed: an animal label without any box -> dropped, since the animal is there but unlocalised and would
  teach the detector that it is background;
* ignored: only classes the mapping sends to ``ignore`` -> dropped for the same reason.

Note: detectron2's training loader drops images without annotations unless
``DATALOADER.FILTER_EMPTY_ANNOTATIONS`` is False; negatives only reach the model with that setting.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.coco import convert_to_coco_json
from detectron2.structures import BoxMode

from ..inputs.exif import image_size_from_header  # sizes follow EXIF orientation, as detectron2's read_image does
from .cct_paths import resolve_image_paths
from .class_mapping import IGNORE, MD_CATEGORY_IDS, MD_CLASSES, is_empty_category, load_md_mapping, mapped_md_class
from .matching import MatchReport

logger = logging.getLogger(__name__)

ClassMode = Literal["species", "megadetector"]
# Optional CCT image fields carried into the dataset dicts (``date_captured`` is the older name of ``datetime``).
_SEQUENCE_FIELDS = ("seq_id", "seq_num_frames", "frame_num", "location")


def read_cct_json(json_file: str | Path) -> dict[str, Any]:
    """Load a CCT/COCO file and check the parts every reader relies on.

    Args:
        json_file: path of the JSON file.

    Returns:
        The parsed dict, with ``annotations`` defaulting to an empty list.
    """
    path = Path(json_file)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"CCT file {path} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"CCT file {path} is a folder; pass the .json file") from None
    except OSError as exc:
        raise ValueError(f"CCT file {path} cannot be read ({exc.strerror or exc}); check its permissions") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, over-long integers, nesting
        raise ValueError(f"CCT file {path} is not valid JSON ({exc}); pass a COCO Camera Traps .json file") from None
    if not isinstance(data, dict):
        raise ValueError(f"CCT file {path}: the top level must be an object with images/categories/annotations")
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"CCT file {path}: missing or invalid '{key}' list")
    data.setdefault("annotations", [])
    for i, image in enumerate(data["images"]):
        if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
            raise ValueError(f"CCT file {path}: images[{i}] lacks 'id' or 'file_name': {image}")
    return data


@dataclass
class CCTLoadResult:
    """Dataset dicts plus the class space and the counts a user needs to trust the load."""

    dicts: list[dict[str, Any]]
    thing_classes: list[str]
    dataset_id_to_contiguous_id: dict[int, int]
    counts: Counter = field(default_factory=Counter)
    match_report: MatchReport = field(default_factory=MatchReport)

    def summary(self) -> str:
        c = self.counts
        return (
            f"{len(self.dicts)} images kept ({c['boxed']} with boxes, {c['empty_kept']} empty); dropped: "
            f"{c['empty_dropped']} empty (keep_empty=False), {c['unboxed']} labelled without boxes, "
            f"{c['ignored']} only ignored classes, {c['unmatched']} not found on disk; "
            f"{c['boxes']} boxes ({c['degenerate_boxes']} degenerate dropped, {c['ignored_boxes']} ignored)"
        )


def _class_space(
    categories: list[dict[str, Any]], class_mode: ClassMode, mapping: dict[str, str]
) -> tuple[list[str], dict[int, int], dict[Any, int | None]]:
    """Returns (thing_classes, dataset id -> contiguous id, CCT category id -> contiguous id or None to ignore)."""
    if class_mode == "species":
        species = sorted((c for c in categories if not is_empty_category(c["name"])), key=lambda c: c["id"])
        thing_classes = [c["name"] for c in species]
        dataset_to_contiguous = {c["id"]: i for i, c in enumerate(species)}
        return thing_classes, dataset_to_contiguous, dict(dataset_to_contiguous)
    if class_mode == "megadetector":
        thing_classes = list(MD_CLASSES)
        dataset_to_contiguous = {MD_CATEGORY_IDS[name]: i for i, name in enumerate(MD_CLASSES)}
        cat_to_contiguous: dict[Any, int | None] = {}
        for c in categories:
            if is_empty_category(c["name"]):
                continue
            target = mapped_md_class(c["name"], mapping)
            cat_to_contiguous[c["id"]] = None if target == IGNORE else MD_CLASSES.index(target)
        return thing_classes, dataset_to_contiguous, cat_to_contiguous
    raise ValueError(f"class_mode must be 'species' or 'megadetector', got {class_mode!r}")


def load_cct_dataset(
    json_file: str | Path,
    image_root: str | Path,
    *,
    class_mode: ClassMode = "species",
    mapping_file: str | Path | None = None,
    keep_empty: bool = True,
    strip_prefix: str | None = None,
    add_prefix: str = "",
    match_basename: bool = True,
) -> CCTLoadResult:
    """Read a CCT file into detectron2 dataset dicts (see the module docstring for what is kept).

    Args:
        json_file: the CCT (or plain COCO) JSON file.
        image_root: folder holding the images.
        class_mode: "species" (the file's own categories, ``empty`` excluded) or "megadetector"
            (animal/person/vehicle with dataset ids 1/2/3, as in MD results files).
        mapping_file: JSON ``{species_name: "animal"|"person"|"vehicle"|"ignore"}`` for "megadetector" mode;
            names not in it map to animal, except human/person-like -> person and vehicle/car-like -> vehicle.
        keep_empty: keep empty frames as negatives.
        strip_prefix, add_prefix, match_basename: see :func:`resolve_image_paths`.

    Returns:
        A :class:`CCTLoadResult`. Each dict has the standard keys (``file_name``, ``image_id`` (1-based
        int), ``height``, ``width``, ``annotations`` with XYWH_ABS boxes and contiguous ``category_id``) plus
        ``cct_image_id``, ``cct_file_name``, ``seq_id``, ``seq_num_frames``, ``frame_num``, ``location``,
        ``datetime`` (None where the file has no value) and ``is_empty``.
    """
    if mapping_file is not None and class_mode != "megadetector":
        raise ValueError("mapping_file only applies to class_mode='megadetector'")
    data = read_cct_json(json_file)
    mapping = load_md_mapping(mapping_file)
    thing_classes, dataset_to_contiguous, cat_to_contiguous = _class_space(data["categories"], class_mode, mapping)
    category_names = {c["id"]: c["name"] for c in data["categories"]}

    anns_by_image: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for ann in data["annotations"]:
        anns_by_image[ann["image_id"]].append(ann)
    image_ids = {image["id"] for image in data["images"]}
    orphans = [ann_image for ann_image in anns_by_image if ann_image not in image_ids]
    if orphans:
        logger.warning(
            "%s: %d annotations refer to image ids not in 'images' (first: %r); ignored",
            json_file,
            sum(len(anns_by_image[i]) for i in orphans),
            orphans[0],
        )

    paths, report = resolve_image_paths(
        [im["file_name"] for im in data["images"]],
        image_root,
        strip_prefix=strip_prefix,
        add_prefix=add_prefix,
        match_basename=match_basename,
    )
    if report.matched == 0:
        raise FileNotFoundError(
            f"none of the {report.total} images of {json_file} was found under {image_root}. {report.describe()}. "
            "Point image_root at the image folder, and use strip_prefix / add_prefix to rewrite the file_name "
            "paths to the local layout (match_basename=True also searches by file name)."
        )
    if report.unmatched or report.ambiguous:
        logger.warning(
            "%s: %s. These images are skipped; use strip_prefix / add_prefix to fix the paths.",
            json_file,
            report.describe(),
        )

    counts: Counter = Counter()
    counts["unmatched"] = len(report.unmatched) + len(report.ambiguous)
    dicts: list[dict[str, Any]] = []
    for index, image in enumerate(data["images"]):
        path = paths.get(image["file_name"])
        if path is None:
            continue
        boxes, has_label, has_ignored = [], False, False
        for ann in anns_by_image.get(image["id"], []):
            cat = ann.get("category_id")
            if cat not in category_names:
                raise ValueError(
                    f"{json_file}: annotation {ann.get('id')!r} has category_id {cat!r}, which is not in 'categories'"
                )
            if is_empty_category(category_names[cat]):
                continue
            contiguous = cat_to_contiguous[cat]
            if contiguous is None:
                has_ignored = True
                counts["ignored_boxes"] += int(ann.get("bbox") is not None)
                continue
            bbox = ann.get("bbox")
            if bbox is None:
                has_label = True
                continue
            if len(bbox) != 4:
                raise ValueError(f"{json_file}: annotation {ann.get('id')!r} has bbox {bbox}; expected [x, y, w, h]")
            if bbox[2] <= 0 or bbox[3] <= 0:
                counts["degenerate_boxes"] += 1
                continue
            boxes.append(
                {
                    "bbox": [float(v) for v in bbox],
                    "bbox_mode": BoxMode.XYWH_ABS,
                    "category_id": contiguous,
                    "iscrowd": 0,
                }
            )
        if boxes:
            counts["boxed"] += 1
        elif has_label:
            counts["unboxed"] += 1
            continue
        elif has_ignored:
            counts["ignored"] += 1
            continue
        elif not keep_empty:
            counts["empty_dropped"] += 1
            continue
        else:
            counts["empty_kept"] += 1
        counts["boxes"] += len(boxes)

        width, height = image.get("width"), image.get("height")
        if not width or not height:
            width, height = image_size_from_header(path)
        record = {
            "file_name": str(path),
            "image_id": index + 1,  # int: COCOeval and faster-coco-eval need numeric ids
            "width": int(width),
            "height": int(height),
            "annotations": boxes,
            "is_empty": not boxes,
            "cct_image_id": image["id"],
            "cct_file_name": image["file_name"],
            "datetime": image.get("datetime", image.get("date_captured")),
        }
        for key in _SEQUENCE_FIELDS:
            value = image.get(key)
            record[key] = str(value) if key in ("seq_id", "location") and value is not None else value
        dicts.append(record)

    result = CCTLoadResult(dicts, thing_classes, dataset_to_contiguous, counts, report)
    logger.info("%s: %s", json_file, result.summary())
    return result


def register_cct_dataset(
    name: str,
    json_file: str | Path,
    image_root: str | Path,
    *,
    class_mode: ClassMode = "species",
    mapping_file: str | Path | None = None,
    keep_empty_for_training: bool = True,
    for_evaluation: bool = False,
    strip_prefix: str | None = None,
    add_prefix: str = "",
    match_basename: bool = True,
) -> None:
    """Register a CCT file in detectron2's ``DatasetCatalog`` / ``MetadataCatalog`` (loaded lazily on first use).

    Args:
        name: dataset name for ``DATASETS.TRAIN`` / ``DATASETS.TEST``.
        json_file, image_root, class_mode, mapping_file, strip_prefix, add_prefix, match_basename:
            see :func:`load_cct_dataset`.
        keep_empty_for_training: keep empty frames as negatives. Training also needs
            ``DATALOADER.FILTER_EMPTY_ANNOTATIONS = False`` for them to reach the model.
        for_evaluation: an evaluation set always keeps its empty frames (they are where false positives
            happen), whatever ``keep_empty_for_training`` says.

    The metadata gets ``thing_classes``, ``thing_dataset_id_to_contiguous_id``, ``evaluator_type="coco"`` and
    ``cct_json_file``. It deliberately has no ``json_file``: COCOEvaluator then builds its ground truth from
    these dicts (integer ids, the chosen class space) instead of reading the CCT file; see
    :func:`write_coco_gt_json` to write that file yourself.
    """
    keep_empty = keep_empty_for_training or for_evaluation
    kwargs = {
        "class_mode": class_mode,
        "mapping_file": mapping_file,
        "keep_empty": keep_empty,
        "strip_prefix": strip_prefix,
        "add_prefix": add_prefix,
        "match_basename": match_basename,
    }
    # The class space is known from the categories alone, so metadata is set without touching the images.
    data_categories = read_cct_json(json_file)["categories"]
    thing_classes, dataset_to_contiguous, _ = _class_space(data_categories, class_mode, load_md_mapping(mapping_file))
    DatasetCatalog.register(name, lambda: load_cct_dataset(json_file, image_root, **kwargs).dicts)
    MetadataCatalog.get(name).set(
        thing_classes=thing_classes,
        thing_dataset_id_to_contiguous_id=dataset_to_contiguous,
        evaluator_type="coco",
        image_root=str(image_root),
        cct_json_file=str(json_file),
        cct_class_mode=class_mode,
    )


def write_coco_gt_json(dataset_name: str, output_file: str | Path) -> Path:
    """Write a registered dataset as a plain COCO ground-truth file (what COCOEvaluator and pycocotools read).

    Reuses detectron2's ``convert_to_coco_json``; category ids are the dataset ids (the file's own ids in
    species mode, 1/2/3 in megadetector mode), image ids the 1-based ints of the dataset dicts.
    """
    output_file = Path(output_file)
    output_file.parent.mkdir(parents=True, exist_ok=True)
    convert_to_coco_json(dataset_name, str(output_file), allow_cached=False)
    return output_file
