"""The detector's classes as MegaDetector categories: which id and which name each class gets.

A model whose classes are MegaDetector's ``animal`` / ``person`` / ``vehicle`` gets MD's ids ``"1"``, ``"2"``,
``"3"`` (what Timelapse and AddaxAI expect); any other model gets ``"1" .. "N"`` for its classes in order,
named by the user, else by the classes stored in the checkpoint by the training tool (``dataset_info``),
else by the config's dataset metadata (``thing_classes``), else ``class_0 .. class_{N-1}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detectron2.data import MetadataCatalog

from ..data.class_mapping import MD_CATEGORY_IDS

__all__ = ["DetectionClasses", "detection_classes", "parse_class_names"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectionClasses:
    """The detector's classes as MD categories.

    Args:
        ids: model class index -> MD category id (string of digits).
        names: model class index -> name.
    """

    ids: tuple[str, ...]
    names: tuple[str, ...]

    @property
    def categories(self) -> dict[str, str]:
        """MD ``detection_categories``."""
        return dict(zip(self.ids, self.names))


def parse_class_names(value: str) -> list[str]:
    """Class names from a comma-separated list (``"animal,person,vehicle"``) or a JSON file.

    The JSON file holds a list of names (model class order), or is a COCO / CCT file whose ``categories``,
    sorted by id, give the order, as detectron2's COCO loader (and so our training tool)
    assigns class indices.
    """
    path = Path(value)
    if value.lower().endswith(".json"):
        if not path.is_file():
            raise FileNotFoundError(f"class names file {path} does not exist")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"class names file {path} is not valid JSON: {exc}") from None
        if isinstance(data, dict) and isinstance(data.get("categories"), list):
            categories = sorted(data["categories"], key=lambda c: c["id"])
            names = [str(c["name"]) for c in categories]
        elif isinstance(data, list) and all(isinstance(n, str) for n in data):
            names = list(data)
        else:
            raise ValueError(f"class names file {path} must hold a JSON list of names or a COCO file with 'categories'")
    else:
        names = [n.strip() for n in value.split(",")]
    if not names or any(not n for n in names):
        raise ValueError(f"class names {value!r} hold an empty name; write e.g. 'animal,person,vehicle'")
    if len(set(names)) != len(names):
        raise ValueError(f"class names {value!r} repeat a name")
    return names


def detection_classes(
    num_classes: int,
    class_names: Sequence[str] | None = None,
    dataset_names: Sequence[str] = (),
    checkpoint_meta: Mapping[str, Any] | None = None,
) -> DetectionClasses:
    """Decide the MD ids and names of the detector's classes (see the module docstring).

    Args:
        num_classes: ``MODEL.ROI_HEADS.NUM_CLASSES``.
        class_names: names given by the user, in model class order.
        dataset_names: registered datasets to take ``thing_classes`` from (``DATASETS.TEST`` + ``TRAIN``).
        checkpoint_meta: what the checkpointer returned; checkpoints written by ``tools/train_net.py`` carry
            ``dataset_info.thing_classes``, the classes the model was trained on.
    """
    names: list[str] | None = list(class_names) if class_names is not None else None
    if names is not None and len(names) != num_classes:
        raise ValueError(
            f"the class names give {len(names)} names but the model has {num_classes} classes "
            "(MODEL.ROI_HEADS.NUM_CLASSES)"
        )
    trained_on = list((checkpoint_meta or {}).get("dataset_info", {}).get("thing_classes", []))
    if names is None and len(trained_on) == num_classes:
        names = trained_on
        logger.info("detection classes from the checkpoint: %s", ", ".join(names))
    if names is None:
        for dataset in dataset_names:
            thing_classes = MetadataCatalog.get(dataset).get("thing_classes", None)
            if thing_classes is not None and len(thing_classes) == num_classes:
                names = list(thing_classes)
                logger.info("detection classes from the metadata of dataset %r", dataset)
                break
    if names is None:
        logger.warning(
            "the model's %d class names are unknown: they are written as class_0 .. class_%d; "
            "name them (e.g. animal,person,vehicle)",
            num_classes,
            num_classes - 1,
        )
        names = [f"class_{i}" for i in range(num_classes)]
    lowered = [n.lower() for n in names]
    if set(lowered) <= set(MD_CATEGORY_IDS) and len(set(lowered)) == len(lowered):
        # MegaDetector's classes keep MegaDetector's ids whatever their order in the model.
        ids = tuple(str(MD_CATEGORY_IDS[n]) for n in lowered)
        return DetectionClasses(ids, tuple(lowered))
    return DetectionClasses(tuple(str(i + 1) for i in range(num_classes)), tuple(names))
