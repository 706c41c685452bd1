"""tools/demo.py end to end, drastically shortened: 2 iterations on a handful of synthetic images.

Too short to learn, so no AP value is asserted; the tests check that every piece the demo promises is
written (dataset, metrics.json, AP table, rendered predictions) and that the exit status follows the AP gate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "tools" / "demo.py"
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
NUM_TRAIN, NUM_VAL, NUM_RENDER = 4, 3, 2
SHORT_SCHEDULE = [
    "SOLVER.MAX_ITER",
    "2",
    "SOLVER.IMS_PER_BATCH",
    "2",
    "SOLVER.WARMUP_ITERS",
    "1",
]


def run_demo(output_dir: Path, min_box_ap50: float) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        str(DEMO),
        "--output-dir",
        str(output_dir),
        "--num-train",
        str(NUM_TRAIN),
        "--num-val",
        str(NUM_VAL),
        "--num-render",
        str(NUM_RENDER),
        "--min-box-ap50",
        str(min_box_ap50),
        *SHORT_SCHEDULE,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # cwd elsewhere: the demo must find its default config relative to itself, not to the current directory.
    return subprocess.run(cmd, cwd=output_dir.parent, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def passing_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("demo") / "out"
    return run_demo(out, min_box_ap50=0.0), out


def test_demo_generates_the_synthetic_dataset(passing_run):
    proc, out = passing_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    for split, count in (("train", NUM_TRAIN), ("val", NUM_VAL)):
        coco = json.loads((out / "data" / f"{split}.json").read_text())
        assert len(coco["images"]) == count
        assert "SYNTHETIC" in coco["info"]["description"]
        assert len(list((out / "data" / split).glob("*.png"))) == count


def test_demo_writes_training_metrics(passing_run):
    proc, out = passing_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = (out / "train" / "metrics.json").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert any("total_loss" in r and "loss_mask" in r for r in records), records
    assert (out / "train" / "model_final.pth").is_file()


def test_demo_results_hold_box_and_mask_ap(passing_run):
    proc, out = passing_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "demo_results.json").read_text())
    for task in ("bbox", "segm"):
        assert set(METRICS) <= set(results[task]), results[task]
    assert results["passed"] is True
    assert results["data"] == {"num_train": NUM_TRAIN, "num_val": NUM_VAL, "seed": 0, "image_size": 160}
    assert results["wall_time_s"]["total"] > results["wall_time_s"]["train_and_evaluate"] > 0
    # The AP table is printed with both tasks.
    assert "| bbox" in proc.stdout and "| segm" in proc.stdout and "AP50" in proc.stdout


def test_demo_renders_ground_truth_next_to_predictions(passing_run):
    proc, out = passing_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    pngs = sorted((out / "predictions").glob("*.png"))
    assert len(pngs) == NUM_RENDER
    with Image.open(pngs[0]) as image:
        # two 160 px panels drawn at scale 2, side by side with an 8 px gap
        assert image.size == (2 * 320 + 8, 320)


def test_demo_exits_nonzero_when_box_ap50_is_below_the_gate(tmp_path):
    proc = run_demo(tmp_path / "out", min_box_ap50=101.0)  # unreachable: AP is at most 100
    assert proc.returncode == 1
    assert "did not learn" in proc.stderr
    results = json.loads((tmp_path / "out" / "demo_results.json").read_text())
    assert results["passed"] is False
