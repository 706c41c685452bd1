"""Run by tests/test_training.py: a 2-process (gloo) training run through ``ropevit-det train``'s own setup and
Trainer (tools/train_net.py). Every rank reports, per parameter tensor, a checksum before and after training
and the iteration counter, so the test can prove that the run trained (parameters moved, iterations advanced)
and that the ranks stayed in sync."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from detectron2.engine import launch
from detectron2.utils import comm

from ropevit_det.cli import train as train_net


def checksums(model: torch.nn.Module) -> dict[str, float]:
    return {name: p.detach().double().sum().item() + p.detach().double().abs().sum().item()
            for name, p in model.named_parameters() if p.requires_grad}


def main(args) -> None:
    cfg = train_net.setup(args)
    trainer = train_net.Trainer(cfg)
    trainer.resume_or_load(resume=False)
    model = trainer.model.module if hasattr(trainer.model, "module") else trainer.model
    before = checksums(model)
    trainer.train()
    after = checksums(model)
    report = {"rank": comm.get_rank(), "world": comm.get_world_size(), "iter": trainer.iter,
              "max_iter": cfg.SOLVER.MAX_ITER, "before": before, "after": after}
    all_reports = comm.all_gather(report)
    if comm.is_main_process():
        Path(cfg.OUTPUT_DIR, "sync_report.json").write_text(json.dumps(all_reports))
    train_net.shutdown_distributed()


if __name__ == "__main__":
    args = train_net.build_parser().parse_args()
    launch(main, args.num_gpus, num_machines=1, machine_rank=0, dist_url="auto", args=(args,))
