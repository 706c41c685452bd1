"""Training on one's own data is safe to start and to resume: no COCO fallback, the run's own config, clear errors."""

from __future__ import annotations

import pytest

from ropevit_det.config import load_config
from ropevit_det.errors import UserInputError
from tests.conftest import CAMTRAP_MINI, CONFIGS
from tests.engine.test_training import run_tool

QUICK = CONFIGS / "quick_schedules" / "ropevit_faster_rcnn_instant_test.yaml"
TRAIN = ["--train-json", str(CAMTRAP_MINI / "annotations.json"), "--train-images", str(CAMTRAP_MINI / "images")]
VAL = ["--val-json", str(CAMTRAP_MINI / "annotations.json"), "--val-images", str(CAMTRAP_MINI / "images")]


def test_training_without_a_test_set_evaluates_nothing_and_says_so(tmp_path) -> None:
    proc = run_tool(
        "tools/train_net.py",
        "--config",
        str(QUICK),
        *TRAIN,
        "OUTPUT_DIR",
        str(tmp_path),
        "SOLVER.MAX_ITER",
        "2",
        "TEST.EVAL_PERIOD",
        "1",
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "no test set (no --val-json): this run evaluates nothing" in log
    assert "coco_2017_val" not in log and "\n  TEST: []\n" in (tmp_path / "config.yaml").read_text()
    assert (tmp_path / "model_final.pth").exists()


def test_eval_only_and_resume_on_a_run_folder_use_its_config_and_data(tmp_path) -> None:
    first = run_tool(
        "tools/train_net.py",
        "--config",
        str(QUICK),
        *TRAIN,
        *VAL,
        "OUTPUT_DIR",
        str(tmp_path),
        "SOLVER.MAX_ITER",
        "2",
        "SOLVER.CHECKPOINT_PERIOD",
        "1",
    )
    assert first.returncode == 0, first.stderr[-3000:]
    # No data flags, no schedule override: both come from the run's own folder.
    evaluated = run_tool(
        "tools/train_net.py",
        "--config",
        str(QUICK),
        "--eval-only",
        "OUTPUT_DIR",
        str(tmp_path),
        "MODEL.WEIGHTS",
        str(tmp_path / "model_final.pth"),
    )
    log = evaluated.stdout + evaluated.stderr
    assert evaluated.returncode == 0, log[-3000:]
    assert f"using the run's own config {tmp_path / 'config.yaml'}" in log
    assert "copypaste: AP,AP50,AP75" in log and "coco_2017_val" not in log
    # --resume keeps the run's schedule (MAX_ITER 2, not the file's 4): it is finished, nothing more is trained.
    resumed = run_tool("tools/train_net.py", "--config", str(QUICK), "--resume", "OUTPUT_DIR", str(tmp_path))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "MAX_ITER: 2" in (tmp_path / "config.yaml").read_text()
    assert "Starting training from iteration 2" in resumed.stdout + resumed.stderr


def test_eval_only_without_a_test_set_is_refused(tmp_path) -> None:
    proc = run_tool("tools/train_net.py", "--config", str(QUICK), "--eval-only", *TRAIN, "OUTPUT_DIR", str(tmp_path))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "--eval-only has no test set to evaluate: pass --val-json" in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["OUTPUT_DIR", "x", "--resume"], "--resume comes after the KEY VALUE config overrides"),
        (["SOLVER.MAX_ITR", "3"], "Non-existent key: SOLVER.MAX_ITR"),
        (["SOLVER.MAX_ITER"], "KEY VALUE pairs, but 1 items were given"),
    ],
)
def test_bad_overrides_are_one_line(tmp_path, args, message) -> None:
    proc = run_tool("tools/train_net.py", "--config", str(QUICK), *args, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert message in proc.stderr


def test_a_user_config_anywhere_inherits_a_packaged_one(tmp_path) -> None:
    mine = tmp_path / "elsewhere" / "mine.yaml"
    mine.parent.mkdir()
    mine.write_text("_BASE_: ropevit://quick_schedules/ropevit_faster_rcnn_instant_test.yaml\nSOLVER:\n  MAX_ITER: 7\n")
    cfg = load_config(str(mine))
    assert cfg.SOLVER.MAX_ITER == 7 and cfg.MODEL.ROPE_VIT.DEPTH == 2 and cfg.MODEL.BACKBONE.NAME
    assert load_config("ropevit://ropevit_mrcnn.yaml").MODEL.MASK_ON


def test_a_config_cannot_run_code(tmp_path) -> None:
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.yaml"
    evil.write_text(f"_BASE_: {QUICK}\nSOLVER:\n  MAX_ITER: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(UserInputError, match="holds a Python object tag"):
        load_config(str(evil))
    assert not marker.exists()


def test_a_missing_base_names_the_file(tmp_path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("_BASE_: nowhere.yaml\n")
    with pytest.raises(UserInputError, match="nowhere.yaml cannot be read"):
        load_config(str(broken))


def test_commands_start_without_warnings_about_dependencies() -> None:
    proc = run_tool("tools/train_net.py", "--help", env={"PYTHONWARNINGS": "default"})
    assert proc.returncode == 0 and "Warning" not in proc.stderr, proc.stderr[-2000:]
