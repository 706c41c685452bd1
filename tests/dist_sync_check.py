"""Run by tests/test_training.py: a 2-process (gloo) training run through ropevit-det train's (tools/train_net.py) own setup and
Trainer, then every rank reports a checksum of its parameters, so the test can prove they stayed in sync."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from detectron2.engine import launch
from detectron2.utils import comm

from ropevit_det.cli import train as train_net


def main(args) -> None:
    cfg = train_net.setup(args)
    trainer = train_net.Trainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    model = trainer.model.module if hasattr(trainer.model, "module") else trainer.model
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    report = {"rank": comm.get_rank(), "world": comm.get_world_size(), "sum": flat.double().sum().item(),
              "first": flat[:8].tolist(), "iter": trainer.iter}
    all_reports = comm.all_gather(report)
    if comm.is_main_process():
        Path(cfg.OUTPUT_DIR, "sync_report.json").write_text(json.dumps(all_reports))
    train_net.shutdown_distributed()


if __name__ == "__main__":
    args = train_net.build_parser().parse_args()
    launch(main, args.num_gpus, num_machines=1, machine_rank=0, dist_url="auto", args=(args,))
