"""``ropevit-det demo --camera-trap`` end to end, as a newcomer runs it (tools/demo.py from elsewhere), shortened
to 2 fine-tuning steps: every output it promises is written and valid, and it says where each one is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.camtrap_helpers import validate_md

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("demo_ct") / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "demo.py"),
            "--camera-trap",
            "--iterations",
            "2",
            "--output-dir",
            str(out),
        ],
        cwd=out.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc, out


def test_every_step_writes_its_output(demo_run):
    proc, out = demo_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "demo_results.json").read_text())
    # Split by location: no camera in both.
    locations = summary["split"]["locations"]
    assert locations["train"] and locations["val"] and not set(locations["train"]) & set(locations["val"])
    train = json.loads((out / "data" / "sample_cct_train.json").read_text())
    val = json.loads((out / "data" / "sample_cct_val.json").read_text())
    assert {im["location"] for im in train["images"]}.isdisjoint(im["location"] for im in val["images"])
    # The fine-tuned detector records its classes (it was trained on the sample's one category).
    assert summary["classes"] == ["animal"]
    import torch

    checkpoint = torch.load(out / "train" / "model_final.pth", weights_only=False, map_location="cpu")
    assert checkpoint["dataset_info"]["thing_classes"] == ["animal"] and checkpoint["iteration"] == 1
    # Detections for all 21 frames, in MegaDetector's format.
    results = out / "results.json"
    assert validate_md(results)["errors"] == []
    assert len(json.loads(results.read_text())["images"]) == 21
    assert (out / "review" / "index.html").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics  # eval-camtrap's report on the held-out split
    assert summary["camtrapdp_valid"] is True and (out / "camtrapdp" / "datapackage.json").is_file()
    assert summary["wall_time_s"]["total"] > summary["wall_time_s"]["fine_tune"] > 0


def test_it_says_where_each_output_is_and_what_the_numbers_mean(demo_run):
    proc, out = demo_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    for path in ("results.json", "review/index.html", "metrics.json", "camtrapdp/", "train/model_final.pth"):
        assert str(out / path) in proc.stdout, path
    assert "RANDOM weights" in proc.stdout and "chance" in proc.stdout and "recall" in proc.stdout


def test_without_the_sample_it_says_a_clone_is_needed(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "demo.py"),
            "--camera-trap",
            "--sample-dir",
            str(tmp_path / "nowhere"),
            "--output-dir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "clone" in proc.stderr and "Traceback" not in proc.stderr
