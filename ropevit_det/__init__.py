"""ropevit_det: birder's RoPE ViT-B/14 (reg4) as a detectron2 backbone.

Importing this package registers ``build_ropevit_sfp_backbone`` with detectron2's
``BACKBONE_REGISTRY`` and the ``birder://`` path handler with its ``PathManager``;
``add_ropevit_config`` adds the config keys the backbone reads.
"""

import warnings

from ._deps import require_detectron2

# fvcore (which detectron2 imports) calls torch.jit.script at import time, and PyTorch flags that as deprecated:
# a warning about a dependency's import, not about the user's work, that every command would print twice. It is
# silenced for these imports only: no warning filter outlives this block.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    require_detectron2()

    from . import (
        checkpoint,  # noqa: F401  (registers the birder:// path handler)
        model_zoo,  # noqa: F401  (configs by name: model_zoo.get_config)
    )
    from .config import add_ropevit_config
    from .modeling import RoPEViT, build_ropevit_sfp_backbone

__all__ = ["RoPEViT", "add_ropevit_config", "build_ropevit_sfp_backbone", "model_zoo"]
__version__ = "0.1.0"
