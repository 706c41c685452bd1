"""One writer per output: the lock beside a results file, stale locks, waiting, run identity, the umask.

These run the writer and the lock in process (and one child process that hangs in its final write); the
command line's handling of them, with a real model, is in ``tests/camera_trap/test_camtrap_run_faults.py``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from ropevit_det.camera_trap.results.journal import (
    JournalError,
    journal_path,
    read_journal,
)
from ropevit_det.camera_trap.results.md_format import (
    ResultsFileError,
    image_entry,
    load_results,
    make_info,
)
from ropevit_det.camera_trap.results.merge import MergeError, merge_results
from ropevit_det.camera_trap.results.run_identity import IDENTITY_KEY
from ropevit_det.camera_trap.results.run_lock import (
    OutputLockedError,
    RunLock,
    check_lock_held,
    lock_path,
    read_lock,
)
from ropevit_det.camera_trap.results.writer import ResultsWriter
from ropevit_det.utils.atomic_json import write_json_atomic
from tests.camtrap_helpers import validate_md
from tests.lock_helpers import dead_pid

REPO = Path(__file__).resolve().parents[2]


def _info(**identity) -> dict:
    info = make_info("model_final.pth")
    info[IDENTITY_KEY] = {
        "weights_sha256": "aa" * 32,
        "config_sha256": "cc" * 32,
        "score_threshold": 0.05,
        "input_root": "/data/card",
        "shard": None,
        **identity,
    }
    return info


def _write_lock(output: Path, **holder) -> None:
    lock_path(output).write_text(
        json.dumps(
            {
                "run_id": "other",
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "started": "2026-01-02T03:04:05+00:00",
                **holder,
            }
        )
    )


def test_a_second_writer_on_the_same_output_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "results.json"
    first = ResultsWriter(out, info=make_info("m"))
    first.add(image_entry("a.jpg", []))
    holder = read_lock(lock_path(out))
    assert holder.pid == os.getpid() and holder.host == socket.gethostname()
    # A job array whose --output forgot the task id: the second task resumes the same output.
    with pytest.raises(OutputLockedError) as refused:
        ResultsWriter(out, info=make_info("m"), resume=True)
    message = str(refused.value)
    assert f"host {socket.gethostname()}, pid {os.getpid()}, started {holder.started}" in message
    assert "--wait-for-lock" in message
    assert journal_path(out).exists()  # the refused writer touched nothing
    first.add(image_entry("b.jpg", []))
    first.finalize()
    assert not lock_path(out).exists()  # released once the output is written
    with ResultsWriter(out, info=make_info("m"), resume=True) as second:  # now it may go on
        assert second.done == {"a.jpg", "b.jpg"}
        second.add(image_entry("c.jpg", []))
    assert [e["file"] for e in load_results(out)["images"]] == ["a.jpg", "b.jpg", "c.jpg"]


def test_the_lock_is_released_when_the_run_fails(tmp_path):
    out = tmp_path / "results.json"
    with pytest.raises(RuntimeError), ResultsWriter(out, info=make_info("m")) as writer:
        writer.add(image_entry("a.jpg", []))
        raise RuntimeError("CUDA error")
    assert not lock_path(out).exists()
    with pytest.raises(ResultsFileError):  # a refused resume (other categories) gives the lock back too
        ResultsWriter(out, info=make_info("m"), detection_categories={"1": "animal"}, resume=True)
    assert not lock_path(out).exists()


def test_stale_locks_are_taken_over_and_live_ones_are_not(tmp_path, caplog):
    out = tmp_path / "results.json"
    _write_lock(out, pid=dead_pid())  # a run of this host that was killed
    with caplog.at_level(logging.WARNING):
        lock = RunLock(out).acquire()
    assert "took over the lock of run other" in caplog.text and "its process is gone" in caplog.text
    assert read_lock(lock.path).run_id == lock.run_id
    lock.release()

    _write_lock(out, host="node-17.cluster", pid=4242)  # another host: cannot be checked from here
    with pytest.raises(OutputLockedError, match=r"host node-17\.cluster, pid 4242.*--break-lock"):
        RunLock(out).acquire()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        lock = RunLock(out).acquire(break_lock=True)
    assert "--break-lock was given" in caplog.text
    lock.release()

    _write_lock(out)  # this host, and the pid is alive (this very process): never broken
    with pytest.raises(OutputLockedError, match=f"still running on this host: stop it first \\(kill {os.getpid()}"):
        RunLock(out).acquire(break_lock=True)


def test_waiting_for_the_lock(tmp_path):
    out = tmp_path / "results.json"
    first = RunLock(out).acquire()
    with pytest.raises(OutputLockedError):
        RunLock(out).acquire(wait=0.2, poll=0.05)  # waits, then gives up
    threading.Timer(0.3, first.release).start()
    second = RunLock(out).acquire(wait=30, poll=0.05)
    assert read_lock(second.path).run_id == second.run_id
    second.release()


def test_every_process_of_a_run_checks_that_the_run_still_holds_the_lock(tmp_path):
    out = tmp_path / "results.json"
    lock = RunLock(out).acquire()
    # A launched rank carries the run id: it may write (no lock of its own) ...
    rank1 = ResultsWriter(out, info=make_info("m"), rank=1, world_size=2, run_id=lock.run_id)
    rank1.close()
    assert lock_path(out).exists()  # ... and closing it does not release the run's lock
    # ... one of another run may not.
    with pytest.raises(OutputLockedError, match=f"being written by run {lock.run_id}"):
        ResultsWriter(out, info=make_info("m"), rank=1, world_size=2, run_id="another-run")
    lock.release()
    with pytest.raises(OutputLockedError, match="does not hold the lock"):
        check_lock_held(out, lock.run_id)


def test_a_run_whose_lock_was_taken_over_writes_no_results_file(tmp_path):
    out = tmp_path / "results.json"
    writer = ResultsWriter(out, info=make_info("m"))
    writer.add(image_entry("a.jpg", []))
    _write_lock(out, run_id="breaker", host="node-17.cluster")  # --break-lock from another machine
    with pytest.raises(OutputLockedError, match="being written by run breaker"):
        writer.finalize()
    assert not out.exists() and [e["file"] for e in read_journal(journal_path(out)).entries] == ["a.jpg"]
    assert read_lock(lock_path(out)).run_id == "breaker"  # the other run's lock is left alone


# A child resumes a complete 2-image file, adds a 3rd image, and stops half-way through writing the final
# file, holding the lock; it says so once its temporary file is there.
_HANGING_WRITER = textwrap.dedent("""
    import json, os, sys, time
    from ropevit_det.camera_trap.results.md_format import image_entry, make_info
    from ropevit_det.camera_trap.results.writer import ResultsWriter

    with ResultsWriter(sys.argv[1], info=make_info("m")) as first:
        for i in range(2):
            first.add(image_entry(f"cam/IMG_{i}.JPG", []))

    def dump_then_hang(obj, f, **kwargs):
        text = json.dumps(obj, **kwargs)
        f.write(text[: len(text) // 2])
        f.flush()
        print("mid-write", flush=True)
        time.sleep(120)

    json.dump = dump_then_hang
    with ResultsWriter(sys.argv[1], info=make_info("m"), resume=True) as writer:
        writer.add(image_entry("cam/IMG_2.JPG", []))
""")


def test_a_resume_never_deletes_the_final_write_of_a_running_run(tmp_path, caplog):
    out = tmp_path / "results.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-c", _HANGING_WRITER, str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        line = proc.stdout.readline().strip()
        if line != "mid-write":
            proc.kill()
            pytest.fail(f"the writer did not reach its final write: {proc.stderr.read()}")
        (temporary,) = tmp_path.glob(".results.json.*.tmp")
        # The run is in its final write. A resume started now must not remove the file being written.
        with pytest.raises(OutputLockedError, match=f"pid {proc.pid}"):
            ResultsWriter(out, info=make_info("m"), resume=True)
        assert temporary.exists()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    # Killed mid-write: its lock is stale now, and its temporary file only a leftover.
    with caplog.at_level(logging.WARNING), ResultsWriter(out, info=make_info("m"), resume=True) as resumed:
        assert resumed.done == {"cam/IMG_0.JPG", "cam/IMG_1.JPG", "cam/IMG_2.JPG"}
        assert not temporary.exists()
    assert "its process is gone" in caplog.text
    assert len(load_results(out)["images"]) == 3


def test_resume_with_another_identity_is_refused_naming_what_differs(tmp_path):
    out = tmp_path / "results.json"
    writer = ResultsWriter(out, info=_info())
    writer.add(image_entry("a.jpg", []))
    writer.close()  # journal only, as after a kill
    with pytest.raises(JournalError, match=r"score_threshold: 0\.05 there, 0\.5 here.*that run's weights"):
        ResultsWriter(out, info=_info(score_threshold=0.5), resume=True)
    with pytest.raises(JournalError, match=r"input_root: '/data/card' there, '/data/other' here"):
        ResultsWriter(out, info=_info(input_root="/data/other"), resume=True)
    with ResultsWriter(out, info=_info(), resume=True) as same:
        same.add(image_entry("b.jpg", []))
    assert load_results(out)["info"][IDENTITY_KEY] == _info()[IDENTITY_KEY]
    assert validate_md(out) == {**validate_md(out), "errors": [], "warnings": []}
    # A complete file is refused the same way (no journal left to compare with).
    with pytest.raises(ResultsFileError, match=r"weights_sha256: 'aaaa.*there, 'bbbb.*here"):
        ResultsWriter(out, info=_info(weights_sha256="bb" * 32), resume=True)


def test_merge_compares_detectors_by_identity_not_by_file_name(tmp_path):
    def results(name: str, file: str, detector: str, **identity) -> Path:
        info = _info(**identity)
        info["detector"] = detector
        write_json_atomic(
            tmp_path / name, {"info": info, "detection_categories": {"1": "animal"}, "images": [image_entry(file, [])]}
        )
        return tmp_path / name

    a = results("a.json", "a.jpg", "model_final.pth", shard="1/2")
    renamed = results("b.json", "b.jpg", "copy_of_model.pth", shard="2/2", input_root="/mnt/card")
    merged = merge_results([a, renamed])  # same weights by content: one detector
    assert [e["file"] for e in merged.data["images"]] == ["a.jpg", "b.jpg"]
    assert merged.data["info"][IDENTITY_KEY]["shard"] is None
    assert validate_md(merged.data) == {**validate_md(merged.data), "errors": [], "warnings": []}
    retrained = results("c.json", "c.jpg", "model_final.pth", weights_sha256="ff" * 32)
    with pytest.raises(MergeError, match=r"different detectors \(weights_sha256: 'ffff.*c\.json vs a\.json"):
        merge_results([a, retrained])


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_results_journals_and_locks_honour_the_umask(tmp_path, umask):
    out = tmp_path / "results.json"
    previous = os.umask(umask)
    try:
        writer = ResultsWriter(out, info=make_info("m"))
        writer.add(image_entry("a.jpg", []))
        modes = {"journal": journal_path(out).stat().st_mode, "lock": lock_path(out).stat().st_mode}
        writer.finalize()
        modes["results"] = out.stat().st_mode
    finally:
        os.umask(previous)
    assert {name: stat.S_IMODE(mode) for name, mode in modes.items()} == dict.fromkeys(modes, 0o666 & ~umask)
