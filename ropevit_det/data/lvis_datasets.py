"""LVIS-format datasets of any category set, and the federated-loss class weights for LazyConfigs.

detectron2's ``register_lvis_instances`` only knows LVIS v0.5/v1's own categories (it looks the metadata up
by the dataset's name), so a file in the LVIS format with other categories (a subset, a test set, your own
data) cannot be registered with it. ``register_lvis_format_dataset`` takes the categories, and the per-class
image counts that the federated loss weighs by, from the file itself; loading stays detectron2's
``load_lvis_json``, and the metadata says ``evaluator_type="lvis"`` so that ``LVISEvaluator`` is used.
"""

from __future__ import annotations

import importlib
import json
import os
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.lvis import load_lvis_json
from detectron2.data.detection_utils import get_fed_loss_cls_weights

__all__ = ["fed_loss_cls_weights", "lvis_format_metadata", "register_lvis_format_dataset", "require_lvis"]


def lvis_format_metadata(json_file: str | os.PathLike) -> dict[str, Any]:
    """``thing_classes`` and ``class_image_count`` from an LVIS-format file (ids must be 1..N, as LVIS's).

    ``image_count`` is read from each category when present (LVIS v1 files have it), else counted.

    Raises:
        ValueError: the category ids are not 1..N.
    """
    with open(json_file, encoding="utf-8") as f:
        data = json.load(f)
    categories = sorted(data["categories"], key=lambda c: c["id"])
    ids = [c["id"] for c in categories]
    if ids != list(range(1, len(ids) + 1)):
        raise ValueError(
            f"{json_file}: LVIS category ids must be 1..{len(ids)} (detectron2 maps id - 1 to the class "
            f"index), got {ids[:10]}{' ...' if len(ids) > 10 else ''}"
        )
    counted: dict[int, set] = defaultdict(set)
    for ann in data.get("annotations", []):
        counted[ann["category_id"]].add(ann["image_id"])
    return {
        "thing_classes": [c["name"] for c in categories],
        "class_image_count": [
            {"id": c["id"], "image_count": c.get("image_count", len(counted[c["id"]]))} for c in categories
        ],
    }


LVIS_INSTALL = "python -m pip install --no-deps lvis==0.5.3 (tools/setup_env.sh does it)"


def require_lvis() -> None:
    """The ``lvis`` package (LVIS API) that detectron2's LVIS loader and evaluator import.

    Raises:
        ImportError: it is missing; the message gives the install command. ``--no-deps``: its metadata pulls
            opencv-python, which would replace the cv2 of opencv-python-headless.
    """
    try:
        importlib.import_module("lvis")
    except ImportError as error:
        raise ImportError(f"LVIS data and evaluation need the lvis package: {LVIS_INSTALL}") from error


def register_lvis_format_dataset(name: str, json_file: str | os.PathLike, image_root: str | os.PathLike) -> None:
    """Register an LVIS-format file (images located by ``coco_url``'s last two parts under ``image_root``)."""
    require_lvis()
    json_file, image_root = str(json_file), os.path.join(str(image_root), "")
    meta = lvis_format_metadata(json_file)
    DatasetCatalog.register(name, lambda: load_lvis_json(json_file, image_root, dataset_name=None))
    MetadataCatalog.get(name).set(json_file=json_file, image_root=image_root, evaluator_type="lvis", **meta)


def fed_loss_cls_weights(dataset_names: str | list[str], freq_weight_power: float = 0.5) -> Callable[[], torch.Tensor]:
    """What ``FastRCNNOutputLayers(get_fed_loss_cls_weights=...)`` takes, for LazyConfigs.

    ViTDet's LVIS config passes a lambda that reads ``dataloader.train.dataset.names`` from the module's own
    config object, so an override of the dataset (``dataloader.train.dataset.names=...``) never reaches it.
    ``L(fed_loss_cls_weights)(dataset_names="${dataloader.train.dataset.names}")`` follows the override.
    """
    return partial(get_fed_loss_cls_weights, dataset_names, freq_weight_power)
