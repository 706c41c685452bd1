"""Helpers for the tests of the output lock: what a killed run leaves behind."""

from __future__ import annotations

import json
import subprocess

from ropevit_det.camera_trap.results.run_lock import lock_path
from ropevit_det.camera_trap.results.writer import ResultsWriter


def dead_pid() -> int:
    """The pid of a process that has just ended (free again, as a killed run's pid is)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def as_if_killed(writer: ResultsWriter) -> None:
    """Leave ``writer``'s output as kill -9 would: its journal file closed by the system, nothing flushed
    beyond what was, and its lock file still there, naming a process that no longer exists."""
    writer._journal._file.close()
    path = lock_path(writer.output)
    holder = json.loads(path.read_text())
    path.write_text(json.dumps({**holder, "pid": dead_pid()}))
