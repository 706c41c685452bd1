"""Who may write a results file: one run at a time, through a lock file beside the output.

``<output>.lock`` is created by hard-linking a complete temporary file to that name: ``link`` fails when the name
exists, atomically, also on NFS (where ``O_EXCL`` is only atomic on NFSv3 and later, and ``flock`` may be local
to one client), so no reader ever sees a half-written lock. It holds the run's id, host, pid and start time.

One run may have many processes on many machines: machine rank 0 takes the lock before launching, and every
launched process carries the run's id (:attr:`RunLock.run_id`) and checks that the lock on disk still holds it
before it writes (:func:`check_lock_held`). A second run on the same output is refused with the holder named,
or waits for it to finish.

A lock left by a killed run is stale: on the host that wrote it, the pid is gone, and the lock is taken over
with a log line. A lock from another host cannot be checked from here and is never judged by its age (runs
last days); ``break_lock`` takes it over once the user knows that run is gone.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Self

logger = logging.getLogger(__name__)

__all__ = ["OutputLockedError", "RunLock", "check_lock_held", "lock_path", "read_lock"]


class OutputLockedError(RuntimeError):
    """Another run holds the output's lock (or this run lost it)."""


def lock_path(output: str | os.PathLike) -> Path:
    """The lock file of results file ``output``."""
    output = Path(output)
    return output.with_name(f"{output.name}.lock")


@dataclass(frozen=True)
class LockHolder:
    """What a lock file says about the run holding it."""

    run_id: str
    host: str
    pid: int
    started: str

    def describe(self) -> str:
        return f"run {self.run_id} (host {self.host}, pid {self.pid}, started {self.started})"

    def is_gone(self) -> bool:
        """True when the holder is known to be dead: on this host, and its pid no longer exists."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, someone else's
            return False
        return False


def read_lock(path: str | os.PathLike) -> LockHolder | None:
    """The holder named by a lock file, or None where there is no lock file."""
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data: Any = json.loads(raw)
        return LockHolder(
            run_id=str(data["run_id"]), host=str(data["host"]), pid=int(data["pid"]), started=str(data["started"])
        )
    except (ValueError, KeyError, TypeError):
        # Only a lock written by something else looks like this; treat it as held by an unknown run.
        return LockHolder(run_id="?", host="?", pid=-1, started="?")


class RunLock:
    """The exclusive lock of one run on ``output``; :meth:`acquire` takes it, :meth:`release` gives it back.

    Args:
        output: the results file.
        run_id: the run's id (default: a new random one).
    """

    def __init__(self, output: str | os.PathLike, *, run_id: str | None = None):
        self.output = Path(output)
        self.path = lock_path(self.output)
        self.run_id = run_id or uuid.uuid4().hex
        self.holder = LockHolder(
            run_id=self.run_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            started=datetime.now().astimezone().isoformat(timespec="seconds"),
        )
        self.held = False

    def acquire(self, *, wait: float | None = None, break_lock: bool = False, poll: float = 1.0) -> RunLock:
        """Take the lock, taking over a stale one.

        Args:
            wait: seconds to wait for another run to finish (``math.inf``: as long as it takes); None: refuse.
            break_lock: take over a lock held by a run on another host (the user knows it is gone).
            poll: seconds between two looks while waiting.

        Raises:
            OutputLockedError: another run holds the lock (and ``wait`` ran out), naming it and the fixes.
        """
        deadline = None if wait is None else time.monotonic() + wait
        said_waiting = False
        while True:
            if self._try_create():
                self.held = True
                return self
            other = read_lock(self.path)
            if other is None:
                continue  # released between our try and our look
            if other.run_id == self.run_id:
                self.held = True
                return self
            if other.is_gone() or (break_lock and other.host != socket.gethostname()):
                reason = "its process is gone" if other.is_gone() else "--break-lock was given"
                if self._take_over(other):
                    logger.warning("%s: took over the lock of %s: %s", self.output, other.describe(), reason)
                continue
            if deadline is not None and time.monotonic() < deadline:
                if not said_waiting:
                    logger.info("%s is being written by %s; waiting for it to finish", self.output, other.describe())
                    said_waiting = True
                time.sleep(poll)
                continue
            raise OutputLockedError(self._refusal(other, break_lock))

    def _refusal(self, other: LockHolder, break_lock: bool) -> str:
        same_host = other.host == socket.gethostname()
        if break_lock and same_host:
            return (
                f"{self.output} is being written by {other.describe()}, which is still running on this host: "
                f"stop it first (kill {other.pid}), or write to another output"
            )
        remedy = "wait for it (--wait-for-lock), or write to another output (a job array: put the task id in --output)"
        if not same_host:
            remedy += f"; if that run is gone, take the lock over with --break-lock (or delete {self.path})"
        return f"{self.output} is being written by {other.describe()}: {remedy}"

    def _try_create(self) -> bool:
        """Create the lock file with our holder in it, in one atomic step; False if it exists."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f"{self.path.name}.{self.run_id}.{os.getpid()}.new")
        temporary.write_text(json.dumps(self.holder.__dict__) + "\n", encoding="utf-8")
        try:
            os.link(temporary, self.path)
            return True
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links (some SMB/FAT shares): O_EXCL instead
            return self._try_create_exclusive()
        finally:
            temporary.unlink(missing_ok=True)

    def _try_create_exclusive(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(self.holder.__dict__) + "\n")
        return True

    def _take_over(self, stale: LockHolder) -> bool:
        """Move the stale lock aside, then check that what was moved is the one judged stale.

        Two runs may judge the same lock stale at once; the second must not remove the lock the first has just
        taken. Renaming is atomic: whoever renamed it checks the content, and puts back a lock that is not the
        stale one.
        """
        aside = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex}.stale")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False
        moved = read_lock(aside)
        if moved is not None and moved != stale:
            try:
                os.link(aside, self.path)  # another run's fresh lock: put it back
            except FileExistsError:
                pass
            aside.unlink(missing_ok=True)
            return False
        aside.unlink(missing_ok=True)
        return True

    def check(self) -> None:
        """Raise unless the lock on disk still holds this run (see :func:`check_lock_held`)."""
        check_lock_held(self.output, self.run_id)

    def release(self) -> None:
        """Remove the lock file if it is still this run's."""
        if not self.held:
            return
        self.held = False
        holder = read_lock(self.path)
        if holder is not None and holder.run_id == self.run_id:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        if not self.held:
            self.acquire()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.release()


def check_lock_held(output: str | os.PathLike, run_id: str) -> None:
    """Raise :class:`OutputLockedError` unless ``output``'s lock holds run ``run_id``.

    Every process of a run calls this before it opens its journal, so a process that lost the lock (taken
    over by ``--break-lock`` elsewhere) or was launched without it never writes beside another run.
    """
    holder = read_lock(lock_path(output))
    if holder is None:
        raise OutputLockedError(
            f"{output}: this run ({run_id}) does not hold the lock {lock_path(output)}; start the run again"
        )
    if holder.run_id != run_id:
        raise OutputLockedError(
            f"{output} is being written by {holder.describe()}, not by this run ({run_id}): "
            "wait for it to finish or write to another output"
        )
