"""Which device a run uses: the one a config asks for, or the CPU where it asks for CUDA and there is none.

detectron2's configs default to ``MODEL.DEVICE: cuda``; a CPU-only user should not have to override it to run
a demo, a training or an inference. An explicit request on the command line (``infer --device cuda``) is
different: the tools refuse it with a message instead of silently running elsewhere.
"""

from __future__ import annotations

import torch


def available_device(requested: str) -> str:
    """``requested``, or ``"cpu"`` when it names CUDA and this machine has none."""
    return "cpu" if str(requested).startswith("cuda") and not torch.cuda.is_available() else str(requested)
