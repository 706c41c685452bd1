"""Several inference processes on one CPU share its cores: threads per process = cores / processes, logged."""

from __future__ import annotations

import logging
import os

from ropevit_det.cli import infer as infer_cli
from ropevit_det.engine.cpu_threads import available_cores, share_cpu_cores, threads_per_process
from tests.conftest import REPO


def test_threads_per_process_shares_the_cores() -> None:
    assert threads_per_process(2, cores=2) == 1
    assert threads_per_process(2, cores=16) == 8
    assert threads_per_process(3, cores=2) == 1  # never zero
    assert threads_per_process(2) == max(1, available_cores() // 2)  # this machine


def test_share_sets_omp_num_threads_and_says_so() -> None:
    environ: dict[str, str] = {}
    line = share_cpu_cores(2, environ)
    threads = max(1, available_cores() // 2)
    assert environ == {"OMP_NUM_THREADS": str(threads)}
    assert line == (
        f"2 CPU processes on {available_cores()} cores: {threads} thread(s) each (cores / processes; "
        "set OMP_NUM_THREADS to choose)"
    )


def test_the_users_omp_num_threads_wins() -> None:
    environ = {"OMP_NUM_THREADS": "3"}
    line = share_cpu_cores(2, environ)
    assert environ == {"OMP_NUM_THREADS": "3"}
    assert "3 threads each, from your OMP_NUM_THREADS" in line


def test_infer_with_two_cpu_processes_starts_them_with_their_share(monkeypatch, caplog, tmp_path) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "unset below; restored after the test")
    monkeypatch.delenv("OMP_NUM_THREADS")
    started: dict[str, object] = {}

    def fake_launch(worker, num_gpus, **kwargs):  # what the processes would inherit, without starting them
        started.update(processes=num_gpus, omp=os.environ.get("OMP_NUM_THREADS"))

    monkeypatch.setattr(infer_cli, "launch", fake_launch)
    with caplog.at_level(logging.INFO, logger="ropevit_det.infer"):
        infer_cli.main(
            [
                "--config",
                "camera_trap/ropevit_faster_rcnn_cct.yaml",
                "--weights",
                str(tmp_path / "w.pth"),
                "--input",
                str(REPO / "tests/assets/camtrap_mini/images"),
                "--output",
                str(tmp_path / "results.json"),
                "--num-gpus",
                "2",
                "--device",
                "cpu",
            ]
        )
    threads = max(1, available_cores() // 2)
    assert started == {"processes": 2, "omp": str(threads)}
    assert f"2 CPU processes on {available_cores()} cores: {threads} thread(s) each" in caplog.text


def test_train_with_two_cpu_processes_starts_them_with_their_share(monkeypatch, caplog) -> None:
    from ropevit_det.cli import train as train_cli

    monkeypatch.setenv("OMP_NUM_THREADS", "unset below; restored after the test")
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(train_cli.torch.cuda, "is_available", lambda: False)
    started: dict[str, object] = {}
    monkeypatch.setattr(
        train_cli,
        "launch",
        lambda worker, num_gpus, **kwargs: started.update(processes=num_gpus, omp=os.environ.get("OMP_NUM_THREADS")),
    )
    with caplog.at_level(logging.INFO, logger="ropevit_det.train_net"):
        train_cli.main(["--config", "ropevit_mrcnn.yaml", "--num-gpus", "2"])
    threads = max(1, available_cores() // 2)
    assert started == {"processes": 2, "omp": str(threads)}
    assert f"2 CPU processes on {available_cores()} cores: {threads} thread(s) each" in caplog.text
