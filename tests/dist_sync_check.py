"""Run by tests/engine/test_training.py (yacs) and tests/engine/test_lazy_train.py (LazyConfig): a 2-process (gloo)
training run
through ``ropevit-det train``'s own setup and trainer (tools/train_net.py), for either config system. Every rank
reports, per parameter tensor, a checksum before and after training and the iteration counter, so the test can
prove that the run trained (parameters moved, iterations advanced) and that the ranks stayed in sync. The report is
``sync_report.json`` in the run's output folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from detectron2.config import CfgNode
from detectron2.engine import TrainerBase, launch
from detectron2.utils import comm

from ropevit_det.cli import train as train_net
from ropevit_det.engine import build_lazy_trainer
from ropevit_det.engine.distributed import shutdown_distributed, unwrap_model


def checksums(model: torch.nn.Module) -> dict[str, float]:
    return {
        name: p.detach().double().sum().item() + p.detach().double().abs().sum().item()
        for name, p in model.named_parameters()
        if p.requires_grad
    }


def yacs_run(cfg: CfgNode) -> tuple[TrainerBase, Callable[[], Any], int, str]:
    """The yacs ``Trainer``, weights loaded: (trainer, train, max_iter, output_dir)."""
    trainer = train_net.Trainer(cfg)
    trainer.resume_or_load(resume=False)
    return trainer, trainer.train, cfg.SOLVER.MAX_ITER, cfg.OUTPUT_DIR


def lazy_run(cfg: Any) -> tuple[TrainerBase, Callable[[], Any], int, str]:
    """The LazyConfig step trainer (``ropevit_det.engine.lazy``), weights loaded: as ``yacs_run``."""
    trainer, start_iter = build_lazy_trainer(cfg, resume=False)
    return trainer, lambda: trainer.train(start_iter, cfg.train.max_iter), cfg.train.max_iter, cfg.train.output_dir


def main(args) -> None:
    cfg = train_net.setup(args)  # a CfgNode for .yaml configs, a LazyConfig for .py
    trainer, train, max_iter, output_dir = (yacs_run if isinstance(cfg, CfgNode) else lazy_run)(cfg)
    model = unwrap_model(trainer.model)
    before = checksums(model)
    train()
    after = checksums(model)
    report = {
        "rank": comm.get_rank(),
        "world": comm.get_world_size(),
        "iter": trainer.iter,
        "max_iter": max_iter,
        "before": before,
        "after": after,
    }
    all_reports = comm.all_gather(report)
    if comm.is_main_process():
        Path(output_dir, "sync_report.json").write_text(json.dumps(all_reports))
    shutdown_distributed()


if __name__ == "__main__":
    args = train_net.build_parser().parse_args()
    launch(main, args.num_gpus, num_machines=1, machine_rank=0, dist_url="auto", args=(args,))
