"""Pretrained birder weights for the detectron2 model: read, convert, download, load (strictly).

Importing this package registers the ``birder://`` path handler with detectron2's ``PathManager`` (a name
resolves to a converted detectron2 checkpoint, so detectron2's own loaders read it); it patches nothing.
"""

from .birder_format import BirderCheckpoint, read_birder_checkpoint
from .checkpointer import HeadClassesError, RoPEViTCheckpointer, check_pixel_stats
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
from .safe_pickle import WeightsFileError, convert_trusted_pickle, load_pickle_weights

register_birder_handler()

__all__ = [
    "BirderCheckpoint",
    "read_birder_checkpoint",
    "HeadClassesError",
    "RoPEViTCheckpointer",
    "check_pixel_stats",
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
    "WeightsFileError",
    "convert_trusted_pickle",
    "load_pickle_weights",
]
