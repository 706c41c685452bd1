"""tools/train_net.py end to end on tests/assets/camtrap_mini, from a random-weight birder checkpoint."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from detectron2.modeling import build_model

from ropevit_det.engine import optimizer_param_groups, rope_vit_lr_decay_rate
from tests.checkpoint_helpers import make_birder_net, save_birder_pt
from tests.conftest import CAMTRAP_MINI, CONFIGS, REPO, tiny_cfg

QUICK = CONFIGS / "quick_schedules" / "ropevit_faster_rcnn_instant_test.yaml"
CAMTRAP_ARGS = [
    "--train-json",
    str(CAMTRAP_MINI / "annotations.json"),
    "--train-images",
    str(CAMTRAP_MINI / "images"),
    "--val-json",
    str(CAMTRAP_MINI / "annotations.json"),
    "--val-images",
    str(CAMTRAP_MINI / "images"),
]


def run_tool(script: str, *args: str, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, str(REPO / script), *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env
    )


def read_metrics(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "metrics.json").read_text().splitlines()]


@pytest.fixture(scope="module")
def birder_weights(tmp_path_factory) -> Path:
    """A tiny rope_vit_reg4_b14 (2 blocks, width 64, 56 px) saved by birder's own code, random weights."""
    return save_birder_pt(make_birder_net(), tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, birder_weights) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("train")
    proc = run_tool(
        "tools/train_net.py",
        "--config",
        str(QUICK),
        *CAMTRAP_ARGS,
        "MODEL.WEIGHTS",
        str(birder_weights),
        "OUTPUT_DIR",
        str(out),
        "SOLVER.MAX_ITER",
        "4",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_training_writes_metrics_checkpoints_and_ap(trained_run, birder_weights) -> None:
    out, proc = trained_run
    log = proc.stdout + proc.stderr
    # Every tensor of the birder file (minus its classifier) went into the ViT, strictly.
    n_vit = sum(not k.startswith("classifier.") for k in make_birder_net().state_dict())
    assert f"backbone: {n_vit}/{n_vit} tensors loaded; heads: initialised from scratch" in log
    records = read_metrics(out)
    iterations = [r["iteration"] for r in records if "total_loss" in r]
    assert iterations[-1] == 3 and all(
        torch.isfinite(torch.tensor(r["total_loss"])) for r in records if "total_loss" in r
    )
    assert any("bbox/AP" in r and "bbox/AP50" in r for r in records)
    assert (out / "model_final.pth").exists() and (out / "inference" / "coco_instances_results.json").exists()
    # The checkpoint names its classes, so that tools/infer.py needs no --class-names.
    saved = torch.load(out / "model_final.pth", weights_only=True)
    assert saved["dataset_info"] == {
        "datasets": ["ropevit_cli_train"],
        "thing_classes": ["animal"],
        "num_classes": 1,
        "init_weights": str(birder_weights),
    }


def test_resume_continues_at_the_saved_iteration(trained_run) -> None:
    out, _ = trained_run
    before = len(read_metrics(out))
    proc = run_tool(
        "tools/train_net.py",
        "--config",
        str(QUICK),
        *CAMTRAP_ARGS,
        "--resume",
        "OUTPUT_DIR",
        str(out),
        "SOLVER.MAX_ITER",
        "6",
        "TEST.EVAL_PERIOD",
        "0",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = [r["iteration"] for r in read_metrics(out)[before:] if "total_loss" in r]
    assert resumed and min(resumed) >= 4 and max(resumed) == 5  # picked up after iteration 3, not from 0


def test_eval_only_reports_ap(trained_run, birder_weights) -> None:
    out, _ = trained_run
    proc = run_tool(
        "tools/train_net.py",
        "--config",
        str(QUICK),
        *CAMTRAP_ARGS,
        "--eval-only",
        "MODEL.WEIGHTS",
        str(out / "model_final.pth"),
        "OUTPUT_DIR",
        str(out / "eval"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "copypaste: AP,AP50,AP75" in proc.stdout + proc.stderr
    # The ViTDet-README-style table and the record that reproduces it.
    table = (out / "eval" / "eval_report.md").read_text().splitlines()
    assert table[0] == "| Name | pre-train | box AP | mask AP |"
    assert table[2].startswith(f"| ropevit_faster_rcnn_instant_test | {birder_weights} | ") and table[2].endswith(
        " - |"
    )
    record = json.loads((out / "eval" / "eval_report.json").read_text())
    assert record["metrics"]["bbox"]["AP"] == pytest.approx(float(table[2].split("|")[3]), abs=0.05)
    assert record["weights_sha256"] == hashlib.sha256((out / "model_final.pth").read_bytes()).hexdigest()
    assert len(record["config_sha256"]) == 64 and record["code_version"].startswith("git ")
    versions = record["versions"]
    assert {"python", "torch", "birder"} <= set(versions) and ("detectron2" in versions or "sal-detectron2" in versions)


def test_two_process_gloo_run_trains_and_keeps_parameters_in_sync(tmp_path) -> None:
    proc = run_tool(
        "tests/dist_sync_check.py",
        "--config",
        str(QUICK),
        "--num-gpus",
        "2",
        *CAMTRAP_ARGS,
        "OUTPUT_DIR",
        str(tmp_path),
        "SOLVER.MAX_ITER",
        "2",
        "SOLVER.IMS_PER_BATCH",
        "2",
        "MODEL.ROPE_VIT.PRETRAIN_IMG_SIZE",
        "56",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_trained_in_sync(tmp_path / "sync_report.json", max_iter=2)


def assert_trained_in_sync(report: Path, *, max_iter: int) -> None:
    """tests/dist_sync_check.py's report of a 2-process run: it trained, and the ranks stayed equal."""
    reports = json.loads(report.read_text())
    assert sorted(r["rank"] for r in reports) == [0, 1] and all(r["world"] == 2 for r in reports)
    # The iteration counter advanced as configured.
    assert all(r["iter"] == r["max_iter"] == max_iter for r in reports)
    # It trained: most trainable tensors moved (a few may get no gradient, e.g. unused anchors' deltas).
    for r in reports:
        moved = [name for name in r["before"] if r["after"][name] != r["before"][name]]
        assert len(moved) >= 0.8 * len(r["before"]), f"rank {r['rank']}: only {len(moved)} tensors moved"
        assert any(name.startswith("backbone.net.vit.encoder.block.") for name in moved)
    # The ranks started equal and ended equal, tensor by tensor.
    assert reports[0]["before"] == reports[1]["before"]
    assert reports[0]["after"] == reports[1]["after"]


def test_bad_dataset_stops_before_training_with_a_clear_message(tmp_path) -> None:
    bad = json.loads((CAMTRAP_MINI / "annotations.json").read_text())
    bad["annotations"][0]["bbox"][2] = -5.0
    bad_json = tmp_path / "bad.json"
    bad_json.write_text(json.dumps(bad))
    proc = run_tool(
        "tools/train_net.py",
        "--config",
        str(QUICK),
        "--train-json",
        str(bad_json),
        "--train-images",
        str(tmp_path / "no_such_folder"),
        "OUTPUT_DIR",
        str(tmp_path / "out"),
    )
    assert proc.returncode != 0
    assert "negative width or height" in proc.stderr and "Traceback" not in proc.stderr
    assert "no_such_folder" in proc.stderr
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_layerwise_learning_rates_and_weight_decay() -> None:
    cfg = tiny_cfg(QUICK)  # depth 2
    model = build_model(cfg)
    base_lr, decay = 1e-4, 0.7
    groups = optimizer_param_groups(model, base_lr, 0.1, decay, num_layers=2)
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    wd_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    params = dict(model.named_parameters())
    vit = "backbone.net.vit."
    expected_lr = {
        vit + "conv_proj.weight": base_lr * decay**3,
        vit + "pos_embedding": base_lr * decay**3,
        vit + "reg_tokens": base_lr * decay**3,
        vit + "encoder.block.0.attn.qkv.weight": base_lr * decay**2,
        vit + "encoder.block.1.mlp.3.weight": base_lr * decay**1,
        "backbone.simfp_2.0.weight": base_lr,
        "roi_heads.box_predictor.cls_score.weight": base_lr,
    }
    for name, lr in expected_lr.items():
        assert lr_of[id(params[name])] == pytest.approx(lr), name
    no_decay = [
        vit + "pos_embedding",
        vit + "class_token",
        vit + "reg_tokens",
        vit + "encoder.block.0.norm1.weight",
        vit + "encoder.block.0.norm1.bias",
        "backbone.simfp_2.1.weight",
    ]
    for name in no_decay:
        assert wd_of[id(params[name])] == 0.0, name
    for name in [vit + "encoder.block.0.attn.qkv.weight", vit + "conv_proj.weight", "roi_heads.box_head.conv1.weight"]:
        assert wd_of[id(params[name])] == 0.1, name
    assert len(lr_of) == sum(p.requires_grad for p in model.parameters())


def test_lr_decay_rate_for_vit_b_names() -> None:
    assert rope_vit_lr_decay_rate("backbone.net.vit.encoder.block.11.attn.qkv.weight", 0.7, 12) == pytest.approx(0.7)
    assert rope_vit_lr_decay_rate("backbone.net.vit.encoder.block.0.norm1.weight", 0.7, 12) == pytest.approx(0.7**12)
    assert rope_vit_lr_decay_rate("backbone.net.vit.class_token", 0.7, 12) == pytest.approx(0.7**13)
    assert rope_vit_lr_decay_rate("roi_heads.mask_head.predictor.weight", 0.7, 12) == 1.0


def test_cct_flags_train_on_the_original_camera_traps_file(tmp_path) -> None:
    """The real CCT file: string ids with slashes, category 0 'empty', a file_name prefix that does not match."""
    proc = run_tool(
        "tools/train_net.py",
        "--config",
        str(QUICK),
        "--cct-train-json",
        str(CAMTRAP_MINI / "serengeti_cct_original.json"),
        "--cct-images",
        str(CAMTRAP_MINI / "images"),
        "--cct-strip-prefix",
        "models/research/object_detection/test_images/snapshot_serengeti",
        "--cct-add-prefix",
        "serengeti_",
        "--cct-class-mode",
        "megadetector",
        "OUTPUT_DIR",
        str(tmp_path),
        "SOLVER.MAX_ITER",
        "1",
        "DATALOADER.FILTER_EMPTY_ANNOTATIONS",
        "False",
        "DATASETS.TEST",
        "()",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = (tmp_path / "config.yaml").read_text()
    assert "NUM_CLASSES: 3" in config  # animal / person / vehicle
    assert "4 images kept (4 with boxes" in proc.stdout + proc.stderr
    assert (tmp_path / "model_final.pth").exists()


def test_unreachable_weights_end_the_run_with_the_manual_route(tmp_path) -> None:
    """No network: the birder:// download fails within seconds, with the manual route and no traceback."""
    proc = run_tool(
        "tools/train_net.py",
        "--config",
        str(QUICK),
        *CAMTRAP_ARGS[:4],
        "MODEL.WEIGHTS",
        "birder://rope_vit_reg4_b14_capi-inat21",
        "OUTPUT_DIR",
        str(tmp_path / "out"),
        env={"ROPEVIT_DET_BASE_URL": "http://127.0.0.1:9", "ROPEVIT_DET_CACHE": str(tmp_path / "cache")},
    )
    assert proc.returncode != 0
    assert "ERROR: cannot reach http://127.0.0.1:9/" in proc.stderr and "Manual route" in proc.stderr
    assert "Traceback" not in proc.stderr
