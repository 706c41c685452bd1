"""Pretrained birder weights for the detectron2 model: read, convert, download, load (strictly).

Importing this package registers the ``birder://`` path handler with detectron2's ``PathManager``, and makes
detectron2's stock ``DetectionCheckpointer`` refuse raw birder files with the fix instead of a type error.
"""
from .birder_format import BirderCheckpoint, read_birder_checkpoint
from .checkpointer import RawBirderCheckpointError, RoPEViTCheckpointer, check_pixel_stats, install_stock_checkpointer_guard
from .conversion import (
    VIT_PREFIX,
    KeyMappingError,
    birder_to_d2_checkpoint,
    birder_to_d2_key_table,
    check_against_model,
    convert_birder_state,
)
from .path_handler import (
    BirderPathHandler,
    WeightsDownloadError,
    cache_dir,
    converted_published,
    fetch_published,
    register_birder_handler,
)
from .published import PUBLISHED_WEIGHTS, PublishedWeights, get_published

register_birder_handler()
install_stock_checkpointer_guard()

__all__ = [
    "BirderCheckpoint",
    "read_birder_checkpoint",
    "RawBirderCheckpointError",
    "RoPEViTCheckpointer",
    "check_pixel_stats",
    "install_stock_checkpointer_guard",
    "VIT_PREFIX",
    "KeyMappingError",
    "birder_to_d2_checkpoint",
    "birder_to_d2_key_table",
    "check_against_model",
    "convert_birder_state",
    "BirderPathHandler",
    "WeightsDownloadError",
    "cache_dir",
    "converted_published",
    "fetch_published",
    "register_birder_handler",
    "PUBLISHED_WEIGHTS",
    "PublishedWeights",
    "get_published",
]
