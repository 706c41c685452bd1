"""detectron2's ``LVISEvaluator``, runnable with NumPy 2.

The ``lvis`` package (0.5.3, its last release, 2020) calls ``np.float`` in ``LVISEval.accumulate``; NumPy 1.24
removed that alias, and this project needs NumPy >= 2 (birder does). No maintained fork is published, so for
the duration of ``evaluate`` only, ``np.float`` is defined as the builtin ``float`` it always stood for; nothing
else changes, and an existing attribute is left alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
from detectron2.evaluation import LVISEvaluator

__all__ = ["LVISEvaluatorNumpy2", "numpy_float_alias"]


@contextlib.contextmanager
def numpy_float_alias() -> Iterator[None]:
    """``np.float`` as ``float`` inside the block (lvis 0.5.3's ``accumulate`` uses it)."""
    had_alias = "float" in np.__dict__
    if not had_alias:
        np.float = float  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if not had_alias:
            del np.float  # type: ignore[attr-defined]


class LVISEvaluatorNumpy2(LVISEvaluator):
    """``LVISEvaluator`` (same arguments and results) whose evaluation runs with :func:`numpy_float_alias`."""

    def __init__(self, *args, **kwargs) -> None:
        from ..data.lvis_datasets import require_lvis

        require_lvis()
        super().__init__(*args, **kwargs)

    def evaluate(self):
        with numpy_float_alias():
            return super().evaluate()
