"""``tools/benchmark_scaling.py`` runs infer through the package's entry point (`python -m ropevit_det infer`), from
any folder."""

from __future__ import annotations

import subprocess
import sys

from benchmarks.commands import benchmark_scaling
from tests.camtrap_helpers import save_rgb
from tests.conftest import CONFIGS, TINY_VIT_OVERRIDES


def test_runs_infer_as_a_module_from_outside_the_clone(tmp_path, monkeypatch, capsys):
    frames = tmp_path / "frames"
    # Enough work per rank that its loop time (logged to 0.01 s) is not 0.00 (a 1-frame rank could be).
    for k in range(6):
        save_rgb(frames / f"IMG_{k}.JPG", 320, 240, color=(40 * k, 120, 60))
    commands: list[list[str]] = []
    real_run = subprocess.run

    def spy(command: list[str], **kwargs):
        commands.append(command)
        return real_run(command, **kwargs)

    monkeypatch.setattr(benchmark_scaling.subprocess, "run", spy)
    monkeypatch.chdir(tmp_path)  # not the repository: an installed package has no tools/infer.py next to it
    config = CONFIGS / "quick_schedules" / "ropevit_faster_rcnn_instant_test.yaml"
    assert (
        benchmark_scaling.main(
            [
                "--config",
                str(config),
                "--input",
                str(frames),
                "--processes",
                "2",
                "--num-workers",
                "0",
                *TINY_VIT_OVERRIDES,
                "MODEL.ROI_HEADS.NUM_CLASSES",
                "1",
            ]
        )
        == 0
    )
    assert [c[:4] for c in commands] == [[sys.executable, "-m", "ropevit_det", "infer"]]
    table = capsys.readouterr().out
    assert "| 2 | " in table and "| 1.00x |" in table
