"""The training step for each precision: fp32, fp16/bf16 on CUDA, bf16 on CPU.

detectron2's ``AMPTrainer`` requires CUDA and always scales the loss; bf16 autocast on the CPU (fast on CPUs
with AVX-512 BF16 or AMX; docs/PERFORMANCE.md) needs neither, so ``CPUBF16Trainer`` adds only that.
"""

from __future__ import annotations

import time

import torch
from detectron2.config import CfgNode
from detectron2.engine import AMPTrainer, SimpleTrainer

PRECISIONS = {"float16": torch.float16, "bfloat16": torch.bfloat16}


class CPUBF16Trainer(SimpleTrainer):
    """``SimpleTrainer`` whose forward pass runs under ``torch.autocast("cpu", torch.bfloat16)``."""

    def run_step(self) -> None:
        assert self.model.training, "[CPUBF16Trainer] model was changed to eval mode!"
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss_dict = self.model(data)
        losses = sum(loss_dict.values())
        self.optimizer.zero_grad()
        losses.backward()
        self.after_backward()
        self._write_metrics(loss_dict, data_time)
        self.optimizer.step()


def build_step_trainer(cfg: CfgNode, model, data_loader, optimizer) -> SimpleTrainer:
    """Pick the step loop from ``SOLVER.AMP.ENABLED`` / ``SOLVER.AMP.PRECISION`` and ``MODEL.DEVICE``."""
    try:
        return step_trainer(
            model,
            data_loader,
            optimizer,
            amp=cfg.SOLVER.AMP.ENABLED,
            precision=cfg.SOLVER.AMP.PRECISION,
            device=cfg.MODEL.DEVICE,
        )
    except ValueError as error:
        raise ValueError(f"SOLVER.AMP.PRECISION: {error}") from None


def step_trainer(model, data_loader, optimizer, *, amp: bool, precision: str, device: str) -> SimpleTrainer:
    """The step loop for ``amp`` in ``precision`` ("float16" or "bfloat16") on ``device`` (yacs and Lazy configs)."""
    if not amp:
        return SimpleTrainer(model, data_loader, optimizer)
    if precision not in PRECISIONS:
        raise ValueError(f"the autocast precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    if device.startswith("cuda"):
        return AMPTrainer(model, data_loader, optimizer, precision=PRECISIONS[precision])
    if precision != "bfloat16":
        raise ValueError("on the CPU only bf16 autocast is supported: set the precision to bfloat16")
    return CPUBF16Trainer(model, data_loader, optimizer)
