"""ropevit_det: birder's RoPE ViT-B/14 (reg4) as a detectron2 backbone.

Importing this package registers ``build_ropevit_sfp_backbone`` with detectron2's
``BACKBONE_REGISTRY`` and the ``birder://`` path handler with its ``PathManager``;
``add_ropevit_config`` adds the config keys the backbone reads.
"""
from ._deps import require_detectron2

require_detectron2()

from . import checkpoint  # noqa: E402,F401  (registers the birder:// path handler)
from . import model_zoo  # noqa: E402,F401  (configs by name: model_zoo.get_config)
from .config import add_ropevit_config  # noqa: E402
from .modeling import RoPEViT, build_ropevit_sfp_backbone  # noqa: E402

__all__ = ["RoPEViT", "add_ropevit_config", "build_ropevit_sfp_backbone", "model_zoo"]
__version__ = "0.1.0"
