"""Fail early, and say how to fix it, when a dependency that pip cannot install for us is missing."""
from __future__ import annotations

import importlib.util

DETECTRON2_HELP = (
    "detectron2 is not installed (it is not published on PyPI). Install it one of two ways:\n"
    "  1. official, needs GitHub:  pip install --no-build-isolation "
    "'git+https://github.com/facebookresearch/detectron2.git'\n"
    "  2. offline registry fallback (no compiled ops):  bash tools/setup_env.sh\n"
    "     (pip download --no-deps --python-version 3.10 --only-binary=:all: sal-detectron2==0.7.2, "
    "then python -m installer on the wheel)"
)


def require_detectron2() -> None:
    if importlib.util.find_spec("detectron2") is None:
        raise ImportError(DETECTRON2_HELP)
