"""Model EMA (closed form, saved, evaluated) and test-time augmentation in --eval-only."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.engine import HookBase, SimpleTrainer

from ropevit_det.checkpoint import RoPEViTCheckpointer
from ropevit_det.data import generate_shapes_dataset, register_coco_dataset
from ropevit_det.engine import ModelEMA, Trainer, load_ema_weights
from tests.conftest import CONFIGS, REPO, tiny_cfg

QUICK_MASK = CONFIGS / "quick_schedules" / "ropevit_mrcnn_instant_test.yaml"


class _Toy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> dict:
        return {"loss": (self.linear(x) ** 2).mean()}


def test_ema_after_k_steps_equals_the_closed_form_average():
    decay, k = 0.7, 5
    model = _Toy()
    data = iter([torch.randn(4, 3) for _ in range(k)])
    trainer = SimpleTrainer(model, data, torch.optim.SGD(model.parameters(), lr=0.5))
    ema = ModelEMA(model, decay)
    history = []

    class Record(HookBase):
        def before_train(self) -> None:
            history.append({n: p.detach().clone() for n, p in model.named_parameters()})

        def after_step(self) -> None:
            history.append({n: p.detach().clone() for n, p in model.named_parameters()})

    trainer.register_hooks([Record(), ema])
    trainer.train(0, k)
    assert len(history) == k + 1 and not torch.equal(history[0]["linear.weight"], history[-1]["linear.weight"])
    for name, value in ema.module.named_parameters():
        closed = decay**k * history[0][name] + sum(
            (1 - decay) * decay ** (k - i) * history[i][name] for i in range(1, k + 1)
        )
        torch.testing.assert_close(value, closed, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> dict:
    paths = generate_shapes_dataset(tmp_path_factory.mktemp("shapes") / "data", num_train=4, num_val=2, image_size=128)
    for split in ("train", "val"):
        if f"ema_shapes_{split}" not in DatasetCatalog.list():
            register_coco_dataset(f"ema_shapes_{split}", paths[f"{split}_json"], paths[f"{split}_images"])
    return paths


def test_training_evaluates_and_saves_the_ema_weights(shapes, tmp_path, monkeypatch):
    cfg = tiny_cfg(
        QUICK_MASK,
        [
            "DATASETS.TRAIN",
            "('ema_shapes_train',)",
            "DATASETS.TEST",
            "('ema_shapes_val',)",
            "OUTPUT_DIR",
            str(tmp_path),
            "MODEL.ROI_HEADS.NUM_CLASSES",
            "3",
            "SOLVER.MAX_ITER",
            "2",
            "SOLVER.CHECKPOINT_PERIOD",
            "100",
            "TEST.EVAL_PERIOD",
            "2",
            "MODEL_EMA.ENABLED",
            "True",
            "MODEL_EMA.DECAY",
            "0.5",
        ],
    )
    cfg.freeze()
    evaluated = []
    monkeypatch.setattr(
        Trainer,
        "test",
        classmethod(
            lambda cls, cfg, model, evaluators=None: (
                evaluated.append({k: v.clone() for k, v in model.state_dict().items()}) or {}
            )
        ),
    )
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    ema_state, model_state = trainer.ema.module.state_dict(), trainer.model.state_dict()
    key = "roi_heads.box_predictor.cls_score.weight"
    assert len(evaluated) == 1 and not torch.equal(ema_state[key], model_state[key])
    assert all(torch.equal(evaluated[0][k], v) for k, v in ema_state.items())  # evaluated: the EMA, not the model

    # --eval-only with the EMA on reads the saved EMA into the model (tools/train_net.py use_ema_weights).
    model = Trainer.build_model(cfg)
    meta = RoPEViTCheckpointer(model).load(str(tmp_path / "model_final.pth"))
    assert load_ema_weights(model, meta)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in ema_state.items())


def test_eval_only_runs_tta_and_the_ema_weights(shapes, tmp_path):
    model = Trainer.build_model(tiny_cfg(QUICK_MASK, ["MODEL.ROI_HEADS.NUM_CLASSES", "3"]))
    torch.save(
        {
            "model": model.state_dict(),
            "model_ema": {"n_averaged": torch.tensor(3), **{f"module.{k}": v for k, v in model.state_dict().items()}},
        },
        tmp_path / "with_ema.pth",
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools/train_net.py"),
            "--config",
            str(QUICK_MASK),
            "--eval-only",
            "--val-json",
            str(shapes["val_json"]),
            "--val-images",
            str(shapes["val_images"]),
            "MODEL.WEIGHTS",
            str(tmp_path / "with_ema.pth"),
            "OUTPUT_DIR",
            str(tmp_path / "eval"),
            "MODEL.ROPE_VIT.DEPTH",
            "2",
            "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
            "0.0",
            "MODEL_EMA.ENABLED",
            "True",
            "TEST.AUG.ENABLED",
            "True",
            "TEST.AUG.MIN_SIZES",
            "(128, 160)",
            "TEST.AUG.MAX_SIZE",
            "224",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "evaluating the EMA weights saved in the checkpoint" in log
    assert "Running inference with test-time augmentation" in log
    assert (tmp_path / "eval" / "inference_TTA" / "coco_instances_results.json").is_file()


def test_tta_larger_than_the_square_padding_is_refused():
    with pytest.raises(ValueError, match=r"TEST.AUG.MAX_SIZE 4000 exceeds MODEL.SFP.SQUARE_PAD 1024"):
        tiny_cfg(CONFIGS / "ropevit_mrcnn.yaml", ["MODEL.SFP.SQUARE_PAD", "1024", "TEST.AUG.ENABLED", "True"])
