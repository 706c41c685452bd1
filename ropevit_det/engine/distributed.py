"""Wrapping a model for several processes, and getting the bare model back: one home for both directions."""
from __future__ import annotations

import torch
from detectron2.utils import comm
from torch.nn.parallel import DistributedDataParallel

__all__ = ["unwrap_model", "wrap_for_distributed"]


def wrap_for_distributed(model: torch.nn.Module) -> torch.nn.Module:
    """DDP on GPUs (one device per process) and on the CPU (no device_ids), identity for one process."""
    if comm.get_world_size() == 1:
        return model
    on_cuda = next(model.parameters()).is_cuda
    device_ids = [comm.get_local_rank()] if on_cuda else None
    return DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model inside ``wrap_for_distributed``'s DDP wrapper (the model itself when not wrapped)."""
    return model.module if isinstance(model, DistributedDataParallel) else model
