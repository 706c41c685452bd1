"""A LazyConfig recipe trains and evaluates through our tool (``ropevit-det train --config lazy/...py``), from a
birder checkpoint, on synthetic shapes with masks: in one process, in two (gloo, ranks in sync), and with
test-time augmentation (``test.aug``) in ``--eval-only``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from detectron2.config import instantiate

from ropevit_det.data import generate_shapes_dataset
from ropevit_det.engine import check_lazy_config
from tests.checkpoint_helpers import TINY_SIZE, make_birder_net, save_birder_pt
from tests.conftest import REPO
from tests.engine.test_lazy_config import TINY_LAZY_OVERRIDES, lazy_cfg
from tests.engine.test_training import assert_trained_in_sync, run_tool

# Small images instead of LSJ's 1024 px crop (same augmentation types, smaller target).
SMALL = [
    f"model.backbone.net.vit.img_size={TINY_SIZE}",
    "dataloader.train.mapper.augmentations.1.target_height=160",
    "dataloader.train.mapper.augmentations.1.target_width=160",
    "dataloader.train.mapper.augmentations.2.crop_size=[160,160]",
    "dataloader.test.mapper.augmentations.0.short_edge_length=160",
    "dataloader.test.mapper.augmentations.0.max_size=160",
    "dataloader.train.total_batch_size=2",
    "dataloader.train.num_workers=0",
    "dataloader.test.num_workers=0",
    "model.roi_heads.box_predictor.test_score_thresh=0.0",
    # Narrow heads and few RoIs, as the quick schedules (the heads dominate a tiny model's step).
    "model.roi_heads.batch_size_per_image=64",
    "model.proposal_generator.pre_nms_topk=[200,200]",
    "model.proposal_generator.post_nms_topk=[100,50]",
    "model.roi_heads.box_head.conv_dims=[32,32,32,32]",
    "model.roi_heads.box_head.fc_dims=[64]",
    "model.roi_heads.box_predictor.input_shape.channels=64",
    "model.roi_heads.mask_head.conv_dims=[32,32,32,32,32]",
    "train.device=cpu",
    "train.amp.enabled=False",
    "train.log_period=1",
    "train.checkpointer.period=100",
]


def run_train(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(REPO / "tools/train_net.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
    )


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> dict:
    return generate_shapes_dataset(tmp_path_factory.mktemp("shapes") / "data", num_train=4, num_val=2, image_size=128)


def data_flags(shapes: dict) -> list[str]:
    return [
        "--train-json",
        str(shapes["train_json"]),
        "--train-images",
        str(shapes["train_images"]),
        "--val-json",
        str(shapes["val_json"]),
        "--val-images",
        str(shapes["val_images"]),
    ]


def test_lazy_mask_rcnn_trains_and_evaluates_through_our_tool(shapes, tmp_path: Path) -> None:
    weights = save_birder_pt(make_birder_net(), tmp_path / "weights")
    out = tmp_path / "run"
    proc = run_train(
        "--config",
        "lazy/ropevit_mrcnn.py",
        *data_flags(shapes),
        *TINY_LAZY_OVERRIDES,
        *SMALL,
        f"train.output_dir={out}",
        "train.max_iter=2",
        f"train.init_checkpoint={weights}",
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    n_vit = sum(not k.startswith("classifier.") for k in make_birder_net().state_dict())
    assert f"backbone: {n_vit}/{n_vit} tensors loaded; heads: initialised from scratch" in log  # strictly
    records = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    assert [r["iteration"] for r in records if "loss_mask" in r][-1] == 1
    assert any("segm/AP" in r and "bbox/AP" in r for r in records)
    assert (out / "model_final.pth").exists() and (out / "config.yaml").exists()

    proc = run_train(
        "--config",
        "lazy/ropevit_mrcnn.py",
        "--eval-only",
        *data_flags(shapes),
        *TINY_LAZY_OVERRIDES,
        *SMALL,
        f"train.output_dir={out / 'eval'}",
        f"train.init_checkpoint={out / 'model_final.pth'}",
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "copypaste: AP,AP50,AP75" in proc.stdout + proc.stderr
    table = (out / "eval" / "eval_report.md").read_text().splitlines()
    assert table[2].startswith(f"| ropevit_mrcnn | {weights} | ")  # pre-train: the run's init weights
    record = json.loads((out / "eval" / "eval_report.json").read_text())
    assert set(record["metrics"]) == {"bbox", "segm"} and record["datasets"] == ["ropevit_cli_val"]


def test_lazy_two_process_gloo_run_trains_and_keeps_parameters_in_sync(shapes, tmp_path: Path) -> None:
    """The Lazy twin of test_training's 2-process test, through the same tests/dist_sync_check.py."""
    weights = save_birder_pt(make_birder_net(), tmp_path / "weights")
    out = tmp_path / "run"
    proc = run_tool(
        "tests/dist_sync_check.py",
        "--config",
        "lazy/ropevit_mrcnn.py",
        "--num-gpus",
        "2",
        *data_flags(shapes),
        *TINY_LAZY_OVERRIDES,
        *SMALL,  # batch 2: one image per rank
        f"train.output_dir={out}",
        "train.max_iter=2",
        f"train.init_checkpoint={weights}",
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert_trained_in_sync(out / "sync_report.json", max_iter=2)


def test_lazy_eval_only_runs_tta_and_the_ema_weights(shapes, tmp_path: Path) -> None:
    """As test_ema_tta's yacs test: ``test.aug.enabled=True`` adds GeneralizedRCNNWithTTA's results to the report."""
    model = instantiate(lazy_cfg("lazy/ropevit_mrcnn.py", [*SMALL, "model.roi_heads.num_classes=3"]).model)
    state = model.state_dict()
    ema = {"n_averaged": torch.tensor(3), **{f"module.{k}": v for k, v in state.items()}}
    torch.save({"model": state, "model_ema": ema}, tmp_path / "with_ema.pth")
    out = tmp_path / "eval"
    proc = run_train(
        "--config",
        "lazy/ropevit_mrcnn.py",
        "--eval-only",
        *data_flags(shapes),
        *TINY_LAZY_OVERRIDES,
        *SMALL,
        f"train.output_dir={out}",
        f"train.init_checkpoint={tmp_path / 'with_ema.pth'}",
        "train.model_ema.enabled=True",
        "test.aug.enabled=True",
        "test.aug.min_sizes=[128,160]",
        "test.aug.max_size=224",
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "evaluating the EMA weights saved in the checkpoint" in log
    assert "Running inference with test-time augmentation" in log
    assert (out / "inference_TTA" / "coco_instances_results.json").is_file()
    record = json.loads((out / "eval_report.json").read_text())
    assert set(record["metrics"]) == {"bbox", "segm", "bbox_TTA", "segm_TTA"}
    rows = (out / "eval_report.md").read_text().splitlines()
    assert any(row.startswith("| ropevit_mrcnn (TTA) | ") for row in rows)


def test_lazy_tta_larger_than_the_square_padding_is_refused() -> None:
    cfg = lazy_cfg("lazy/ropevit_mrcnn.py", ["model.backbone.square_pad=1024", "test.aug.enabled=True"])
    with pytest.raises(
        ValueError,
        match=r"test.aug.max_size 4000 exceeds model.backbone.square_pad 1024.*"
        r"set test.aug.max_size=1024 \(or less\)",
    ):
        check_lazy_config(cfg)
    check_lazy_config(
        lazy_cfg(
            "lazy/ropevit_mrcnn.py",
            ["model.backbone.square_pad=1024", "test.aug.enabled=True", "test.aug.max_size=1024"],
        )
    )
