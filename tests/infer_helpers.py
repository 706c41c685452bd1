"""Helpers for the tests that run ``tools/infer.py`` as users do: in a subprocess, sometimes killed part-way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ropevit_det.camera_trap.results.journal import existing_journals, read_journal
from tests.camtrap_helpers import MINI_IMAGES
from tests.checkpoint_helpers import make_birder_net, save_birder_pt

REPO = Path(__file__).resolve().parents[1]


def tiny_card_run(root: Path, config: Path, files: list[str]) -> dict:
    """A card of ``files`` (links to the sample frames) and a tiny random-weight model under ``root``, with the
    infer flags every run on it shares: ``{"root": root, "common": [...]}``.

    Batch 1: a batch is padded to its largest image, so only single-image batches give every image the same input
    whatever the split between processes.
    """
    card = root / "card"
    card.mkdir()
    for name in files:
        (card / name).symlink_to(MINI_IMAGES / name)
    weights = save_birder_pt(make_birder_net(), root)
    common = ["--config", str(config), "--weights", str(weights), "--input", str(card), "--threshold", "0"]
    common += ["--class-names", "animal", "--batch-size", "1", "--num-workers", "0", "--no-progress"]
    return {"root": root, "common": common}


def run_infer(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(REPO / "tools/infer.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
    )


def journaled(output: Path) -> int:
    """Complete entries in all journals of ``output`` (a line being written is not counted)."""
    total = 0
    for path in existing_journals(output):
        try:
            total += len(read_journal(path).entries)
        except FileNotFoundError:  # removed between the listing and the read (the run just finished)
            pass
    return total


def kill_once_journaled(args: list[str], output: Path, entries: int, log: Path, timeout: float = 240) -> int:
    """Run tools/infer.py and SIGKILL its whole process group once its journals hold ``entries`` images.

    The test decides when the run dies, at a point it can check afterwards; returns the exit status.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "w") as err:  # a file, not a pipe: a full pipe would stall the run before the kill
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "tools/infer.py"), *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=REPO,
            env=env,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + timeout
            while journaled(output) < entries:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"the run ended or stalled before journaling {entries} images: {log.read_text()[-3000:]}"
                    )
                time.sleep(0.01)
            os.killpg(proc.pid, signal.SIGKILL)  # the run and every process it started (ranks, workers)
            return proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
