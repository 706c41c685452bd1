"""``tools/infer.py`` against the faults users meet: a full disk, a read-only folder, ``--output`` that is a folder,
another run on the same output (a job array that forgot the task id), a resume with other settings.

Each ends in one line naming the problem and the fix, a non-zero exit, and nothing written lost: the journal
stays, and ``--resume`` once the fault is fixed gives exactly the result of an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from ropevit_det.camera_trap.results.journal import (
    existing_journals,
    make_header,
    read_journal,
)
from ropevit_det.camera_trap.results.run_identity import IDENTITY_KEY
from ropevit_det.camera_trap.results.run_lock import RunLock, lock_path
from ropevit_det.cli import infer as cli
from tests.camtrap_helpers import MINI_IMAGES
from tests.conftest import CONFIGS
from tests.infer_helpers import REPO, tiny_card_run

QUICK = CONFIGS / "quick_schedules" / "ropevit_faster_rcnn_instant_test.yaml"
OVERRIDES = ["MODEL.ROI_HEADS.NUM_CLASSES", "1", "TEST.DETECTIONS_PER_IMAGE", "3", "MODEL.SFP.SQUARE_PAD", "0"]
FILES = sorted(p.name for p in MINI_IMAGES.iterdir())[:4]


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    return tiny_card_run(tmp_path_factory.mktemp("faults"), QUICK, FILES)


def _in_process(setup: dict, output: Path, *extra: str) -> int:
    """cli.main in this process, on one thread like the subprocesses (same kernels, same rounding)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return cli.main([*setup["common"], "--output", str(output), *extra, *OVERRIDES])
    finally:
        torch.set_num_threads(threads)


def _command(setup: dict, output: Path, *extra: str) -> list[str]:
    return [sys.executable, str(REPO / "tools/infer.py"), *setup["common"], "--output", str(output), *extra, *OVERRIDES]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _run(command: list[str], preexec_fn=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=300, cwd=REPO, env=_env(), check=False, preexec_fn=preexec_fn
    )


def _one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("ERROR: "), stderr[-3000:]
    return last


@pytest.fixture(scope="module")
def reference(setup) -> dict:
    """The uninterrupted run."""
    out = setup["root"] / "reference.json"
    assert _in_process(setup, out) == 0
    return json.loads(out.read_text())


def _full_after_one_and_a_half_entries(reference: dict):
    """A ``preexec_fn`` that lets the run's files grow to about the journal's header, one entry and half of the
    next: the disk fills up in the middle of the journal, well before the results file."""

    def line(record: dict) -> int:
        return len(json.dumps(record, separators=(",", ":")).encode()) + 1

    header = make_header(reference["detection_categories"], None, reference["info"][IDENTITY_KEY])
    limit = line(header) + line(reference["images"][0]) + line(reference["images"][1]) // 2

    def limit_file_size() -> None:
        # Ignored, SIGXFSZ no longer kills the process: writes past the limit fail with EFBIG, as on a full disk.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_file_size


def test_a_full_disk_is_one_line_and_resume_completes_the_run(setup, reference):
    out = setup["root"] / "full" / "results.json"
    full = _run(_command(setup, out), _full_after_one_and_a_half_entries(reference))
    assert full.returncode != 0
    message = _one_line_error(full.stderr)
    assert "File too large" in message and "Free space" in message and "--resume" in message
    # What was journaled stays; no lock is left behind (released on the error).
    (journal,) = existing_journals(out)
    done = [e["file"] for e in read_journal(journal).entries]  # a torn last line is dropped
    assert done == FILES[: len(done)] and len(done) < len(FILES), full.stderr[-3000:]
    assert not lock_path(out).exists()

    # Resuming with another threshold would mix two runs in one file: refused, naming what differs.
    other = _run(_command(setup, out, "--resume", "--threshold", "0.5"))
    assert other.returncode != 0
    assert "score_threshold: 0.0 there, 0.5 here" in _one_line_error(other.stderr)
    assert [e["file"] for e in read_journal(journal).entries] == done  # nothing lost by the refusal

    assert _in_process(setup, out, "--resume") == 0  # the disk has room again
    assert json.loads(out.read_text())["images"] == reference["images"]
    assert existing_journals(out) == [] and not lock_path(out).exists()


@pytest.fixture()
def read_only_folder(tmp_path):
    """A folder that cannot be written, and how to make it writable again. As root (which chmod does not
    stop), a read-only tmpfs; otherwise a folder without write permission."""
    folder = tmp_path / "share"
    folder.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], check=True)
        make = ["mount", "-o", "remount,ro", str(folder)]
        fix = ["mount", "-o", "remount,rw", str(folder)]
        yield folder, lambda: subprocess.run(make, check=True), lambda: subprocess.run(fix, check=True)
        subprocess.run(["umount", str(folder)], check=True)
    else:
        yield folder, lambda: folder.chmod(0o555), lambda: folder.chmod(0o755)
        folder.chmod(0o755)


def test_a_read_only_output_folder_is_one_line_and_resume_completes_the_run(setup, reference, read_only_folder, capsys):
    folder, make_read_only, make_writable = read_only_folder
    out = folder / "results.json"
    # A run killed part-way left its journal there; then the share was made read-only.
    killed = _run(_command(setup, out), _full_after_one_and_a_half_entries(reference))
    assert killed.returncode != 0
    done = [e["file"] for e in read_journal(existing_journals(out)[0]).entries]
    assert len(done) < len(FILES)
    make_read_only()
    with pytest.raises(SystemExit) as refused:
        _in_process(setup, out, "--resume")
    message = str(refused.value)
    assert message.startswith(
        (
            f"ERROR: cannot write in {folder}: Read-only file system",
            f"ERROR: cannot write in {folder}: Permission denied",
        )
    ), message
    assert "Make the folder writable" in message and "--resume" in message
    assert [e["file"] for e in read_journal(existing_journals(out)[0]).entries] == done
    make_writable()
    assert _in_process(setup, out, "--resume") == 0
    assert json.loads(out.read_text())["images"] == reference["images"]


def test_an_output_that_is_a_folder_is_one_line(setup, tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    for flags in ((), ("--resume",), ("--overwrite",)):
        with pytest.raises(SystemExit) as refused:
            _in_process(setup, folder, *flags)
        assert str(refused.value) == (
            f"ERROR: --output {folder} is a folder, not a results file: give a file path "
            f"such as {folder / 'results.json'}"
        )
    assert list(folder.iterdir()) == []


def test_a_second_run_on_a_locked_output_is_refused_naming_the_first(setup, tmp_path):
    out = tmp_path / "results.json"
    # Another run holds the output (this process stands in for it).
    with RunLock(out) as other, pytest.raises(SystemExit) as refused:
        _in_process(setup, out, "--resume")
    holder = other.holder
    assert str(refused.value) == (
        f"ERROR: --output: {out} is being written by run {holder.run_id} (host {holder.host}, pid {holder.pid}, "
        f"started {holder.started}): wait for it (--wait-for-lock), or write to another output (a job array: put "
        "the task id in --output)"
    )
    assert not out.exists() and existing_journals(out) == []


def test_two_shard_runs_on_one_output_never_lose_an_image(setup, reference, tmp_path):
    """A job array whose --output forgot the task id: both tasks start together, each --shard K/2 --resume."""
    out = tmp_path / "results.json"
    logs = [tmp_path / f"task{k}.log" for k in (1, 2)]
    procs = []
    for k, log in zip((1, 2), logs):
        with open(log, "w") as err:
            procs.append(
                subprocess.Popen(
                    _command(setup, out, "--shard", f"{k}/2", "--resume"),
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    cwd=REPO,
                    env=_env(),
                )
            )
    codes = [proc.wait(timeout=300) for proc in procs]
    assert sorted(code == 0 for code in codes) == [False, True], [log.read_text()[-2000:] for log in logs]
    winner = codes.index(0)
    loser_message = _one_line_error(logs[1 - winner].read_text())
    # Refused while the winner held the lock, or, started after it finished, refused as another shard's resume.
    assert (
        "is being written by run" in loser_message
        or f"shard: '{winner + 1}/2' there, '{2 - winner}/2' here" in loser_message
    ), loser_message
    data = json.loads(out.read_text())
    shard_files = FILES[:2] if winner == 0 else FILES[2:]
    assert data["images"] == [e for e in reference["images"] if e["file"] in shard_files]  # each once, complete
    assert existing_journals(out) == [] and not lock_path(out).exists()
    # The refused task, re-run, is refused again by name (its results belong in another output), never merged in.
    again = _run(_command(setup, out, "--shard", f"{2 - winner}/2", "--resume"))
    assert again.returncode != 0 and "shard:" in _one_line_error(again.stderr)
    assert json.loads(out.read_text())["images"] == data["images"]
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_wait_for_lock_and_break_lock_reach_the_lock(setup, tmp_path, caplog):
    out = tmp_path / "results.json"
    out.write_text("{}")  # an earlier run's output: without --resume the run stops right after taking the lock
    other = RunLock(out).acquire()
    threading.Timer(1.0, other.release).start()
    with caplog.at_level(logging.INFO), pytest.raises(SystemExit, match="exists .*pass --resume"):
        _in_process(setup, out, "--wait-for-lock")  # waited for the other run, then took the lock
    assert "waiting for it to finish" in caplog.text
    lock_path(out).write_text(
        json.dumps({"run_id": "gone", "host": "node-17.cluster", "pid": 4242, "started": "2026-01-02T03:04:05+00:00"})
    )
    with pytest.raises(SystemExit, match=r"host node-17\.cluster.*--break-lock"):
        _in_process(setup, out)
    caplog.clear()
    with caplog.at_level(logging.WARNING), pytest.raises(SystemExit, match="exists .*pass --resume"):
        _in_process(setup, out, "--break-lock")
    assert "took over the lock of run gone" in caplog.text
    assert not lock_path(out).exists()  # given back when the run stopped
