"""No weights file runs code: a ``.pkl``, ``.pth`` or ``.pt`` whose pickle would create a marker file is refused,
with one line naming the file and the fix, at every place that loads weights (train's checkpointer, infer's
detector, convert, the species classifier). Model-zoo ``.pkl`` files (dicts of numpy arrays) still load; a
trusted legacy file converts once with ``ropevit-det convert --trusted-pickle``."""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ropevit_det.camera_trap.species.classifier import load_species_classifier
from ropevit_det.checkpoint import RoPEViTCheckpointer, WeightsFileError
from ropevit_det.cli import convert as convert_cli
from ropevit_det.cli import infer as infer_cli
from ropevit_det.engine.predictor import load_detector
from tests.checkpoint_helpers import build_d2_model, tiny_cfg, vit_state
from tests.conftest import CONFIGS, REPO, TINY_VIT_OVERRIDES

QUICK = CONFIGS / "quick_schedules" / "ropevit_faster_rcnn_instant_test.yaml"
FIX = "ropevit-det convert --trusted-pickle"


class MarkerPayload:
    """Unpickling this calls ``open(path, "w")``: it creates the marker file, a harmless stand-in for any code."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def write_hostile(path: Path, marker: Path) -> Path:
    """A weights-shaped file (``{"model": ..., "__author__": ...}``) that also carries the payload."""
    payload = {"model": {"w": np.zeros(2, np.float32)}, "__author__": "someone", "extra": MarkerPayload(marker)}
    if path.suffix == ".pkl":
        with open(path, "wb") as f:
            pickle.dump(payload, f)
    else:
        torch.save(payload, path)
    return path


@pytest.fixture(params=["pkl", "pth", "pt"])
def hostile(request, tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "payload_ran"
    return write_hostile(tmp_path / f"evil.{request.param}", marker), marker


def assert_refused(message: str, path: Path, marker: Path) -> None:
    assert not marker.exists(), "the file's pickle ran"
    assert str(path) in message and FIX in message, message
    assert "\n" not in message.strip()


def test_the_payload_is_live(tmp_path):
    """Control: an unrestricted load runs the payload, so the refusals below are worth something."""
    marker = tmp_path / "ran"
    path = write_hostile(tmp_path / "evil.pkl", marker)
    with open(path, "rb") as f:
        pickle.load(f)  # noqa: S301 (the point of the control)
    assert marker.exists()


def test_train_checkpointer_refuses(hostile):
    path, marker = hostile
    model = build_d2_model(tiny_cfg())
    before = vit_state(model)
    with pytest.raises(WeightsFileError) as info:
        # What `ropevit-det train` does with MODEL.WEIGHTS (Trainer.resume_or_load; --eval-only; LazyConfig).
        RoPEViTCheckpointer(model, save_dir=str(path.parent / "out")).resume_or_load(str(path), resume=False)
    assert_refused(str(info.value), path, marker)
    assert all(torch.equal(before[k], v) for k, v in vit_state(model).items())


def test_infer_detector_loading_refuses(hostile):
    path, marker = hostile
    cfg = tiny_cfg()
    cfg.MODEL.WEIGHTS = str(path)
    with pytest.raises(WeightsFileError) as info:
        load_detector(cfg)
    assert_refused(str(info.value), path, marker)


def test_species_classifier_refuses(hostile):
    path, marker = hostile
    with pytest.raises(WeightsFileError) as info:
        load_species_classifier(tiny_cfg(num_classes=3), str(path))
    assert_refused(str(info.value), path, marker)


def test_convert_refuses(hostile, capsys):
    path, marker = hostile
    assert convert_cli.main([str(path), str(path.parent / "out.pth")]) == 1
    err = capsys.readouterr().err
    assert not marker.exists()
    assert str(path) in err and len(err.strip().splitlines()) == 1
    assert not (path.parent / "out.pth").exists()


def test_infer_cli_names_the_weights_flag(tmp_path):
    marker = tmp_path / "ran"
    path = write_hostile(tmp_path / "evil.pkl", marker)
    with pytest.raises(SystemExit) as info:
        infer_cli.main(
            [
                "--config",
                str(QUICK),
                "--weights",
                str(path),
                "--input",
                str(REPO / "tests" / "assets"),
                "--output",
                str(tmp_path / "r.json"),
                *TINY_VIT_OVERRIDES,
            ]
        )
    assert_refused(str(info.value), path, marker)
    assert str(info.value).startswith("ERROR: --weights:")


def test_infer_cli_missing_weights_is_one_line(tmp_path):
    missing = tmp_path / "nowhere" / "model_final.pth"
    with pytest.raises(SystemExit) as info:
        infer_cli.main(
            [
                "--config",
                str(QUICK),
                "--weights",
                str(missing),
                "--input",
                str(REPO / "tests" / "assets"),
                "--output",
                str(tmp_path / "r.json"),
                *TINY_VIT_OVERRIDES,
            ]
        )
    message = str(info.value)
    assert message.startswith("ERROR: --weights:") and str(missing) in message and "does not exist" in message
    assert "\n" not in message


@pytest.mark.parametrize("weights", ["missing", "hostile"])
def test_train_cli_weights_errors_are_one_line(tmp_path, weights):
    marker = tmp_path / "ran"
    path = tmp_path / "model_final.pth" if weights == "missing" else write_hostile(tmp_path / "evil.pkl", marker)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools/train_net.py"),
            "--config",
            str(QUICK),
            "--eval-only",
            *TINY_VIT_OVERRIDES,
            "MODEL.WEIGHTS",
            str(path),
            "OUTPUT_DIR",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ERROR:") and str(path) in last, done.stderr[-3000:]
    assert ("does not exist" in last) if weights == "missing" else (FIX in last and not marker.exists())


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_model_zoo_pkl_still_loads(tmp_path, protocol):
    """A detectron2 model-zoo .pkl (numpy arrays under "model", "__author__") loads through the restricted reader."""
    source = build_d2_model(tiny_cfg())
    torch.manual_seed(5)
    for p in source.parameters():
        p.data.normal_()
    state = {k: v.numpy().copy() for k, v in source.state_dict().items()}
    path = tmp_path / f"zoo_p{protocol}.pkl"
    with open(path, "wb") as f:
        pickle.dump(
            {"model": state, "__author__": "Detectron2 Model Zoo", "meta": [1, 2.0, ("x", np.int64(3))]},
            f,
            protocol=protocol,
        )
    target = build_d2_model(tiny_cfg())
    RoPEViTCheckpointer(target).load(str(path))
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_trusted_legacy_file_converts_once_and_then_loads(tmp_path, capsys):
    source = build_d2_model(tiny_cfg())
    legacy = tmp_path / "old_snapshot.pth"
    torch.save({"model": source.state_dict(), "iteration": 9, "args": argparse.Namespace(lr=0.1)}, legacy)
    model = build_d2_model(tiny_cfg())
    with pytest.raises(WeightsFileError, match=FIX):
        RoPEViTCheckpointer(model).load(str(legacy))
    converted = tmp_path / "snapshot.pth"
    assert convert_cli.main(["--trusted-pickle", str(legacy), str(converted)]) == 0
    assert "left out (not plain data): args" in capsys.readouterr().out
    assert torch.load(converted, weights_only=True)["iteration"] == 9
    RoPEViTCheckpointer(model).load(str(converted))
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
