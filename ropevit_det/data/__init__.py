"""Datasets: COCO-format registration with a pre-flight check, and the synthetic demo dataset."""

from .coco_datasets import DatasetError, read_coco_categories, register_coco_dataset, validate_coco_dataset
from .synthetic import SHAPE_CLASSES, generate_shapes_dataset

__all__ = [
    "DatasetError",
    "read_coco_categories",
    "register_coco_dataset",
    "validate_coco_dataset",
    "SHAPE_CLASSES",
    "generate_shapes_dataset",
]
