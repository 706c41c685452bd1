"""Several processes: wrapping a model for them, getting the bare model back, and tearing the group down."""

from __future__ import annotations

import logging
import os
import sys

import torch
from detectron2.engine import create_ddp_model
from detectron2.utils import comm
from torch.nn.parallel import DistributedDataParallel

__all__ = ["shutdown_distributed", "unwrap_model", "wrap_for_distributed"]


def wrap_for_distributed(model: torch.nn.Module) -> torch.nn.Module:
    """detectron2's ``create_ddp_model``: DDP on GPUs (one device per process), identity for one process.

    On the CPU (gloo) DDP takes no ``device_ids``, which ``create_ddp_model`` would set to the local rank.
    """
    if comm.get_world_size() == 1:
        return model
    on_cuda = next(model.parameters()).is_cuda
    device_ids = [comm.get_local_rank()] if on_cuda else None
    return create_ddp_model(model, device_ids=device_ids, broadcast_buffers=False)


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model inside ``wrap_for_distributed``'s DDP wrapper (the model itself when not wrapped)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def shutdown_distributed() -> None:
    """After a successful multi-process run: tear the process group down and, on gloo, leave at once.

    detectron2's ``launch`` leaves the group up. On the CPU (gloo), PyTorch's own teardown at interpreter exit
    sometimes aborts a finished worker ("terminate called without an active exception", about 1 run in 20 here),
    turning a completed run into a failure. So gloo workers flush the logs and exit right after the work is
    done and saved. Only called on success: an error still exits non-zero with its message.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    comm.synchronize()
    gloo = torch.distributed.get_backend() == "gloo"
    torch.distributed.destroy_process_group()
    if gloo:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
