"""Import MegaDetector's post-processing modules with a message that says how to get them.

The ``megadetector`` package is installed without its dependencies (they include a YOLO training stack that
cannot be built offline); what its post-processing imports comes from this project's ``camtrap`` extra.
"""

from __future__ import annotations

import importlib
from types import ModuleType

MD_VERSION = "10.0.28"
INSTALL_HINT = (
    f'pip install -e ".[camtrap]" && pip install --no-deps megadetector=={MD_VERSION} (tools/setup_env.sh does both)'
)


def import_md(module: str) -> ModuleType:
    """``importlib.import_module("megadetector." + module)``, leaving Pillow's global settings as they were.

    megadetector's ``visualization_utils`` sets ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES = True`` for the whole
    process on import; our image reader reports truncated files as failures, so the flag is restored.

    Raises:
        ImportError: megadetector or one of the modules it imports is missing; the message says how to install.
    """
    from PIL import ImageFile

    load_truncated = ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        return importlib.import_module(f"megadetector.{module}")
    except ImportError as exc:
        raise ImportError(f"megadetector.{module} cannot be imported ({exc}); install it with: {INSTALL_HINT}") from exc
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = load_truncated
