"""The results file a run will write: checked and prepared before any process starts (``--resume``,
``--overwrite``), and a write fault (full disk, read-only folder) phrased with its fix."""

from __future__ import annotations

import errno
import glob
import logging
import os
from pathlib import Path

from .journal import existing_journals

logger = logging.getLogger(__name__)


def prepare_output(output: str | os.PathLike, *, resume: bool, overwrite: bool) -> None:
    """Check that a run may write ``output``, once, before any process opens its journal.

    A run that is neither resumed nor told to overwrite refuses an existing output or journal. ``overwrite``
    removes both, so that a later resume cannot mix the old run's entries with the new one's. Temporary files
    left by a write that was interrupted are removed: they never hold anything the output does not.

    Call it only while holding the output's lock (:mod:`.run_lock`): a temporary file may be another run's
    final write in progress, and the lock is what says there is no such run.
    """
    output = Path(output)
    if output.is_dir():
        raise IsADirectoryError(
            errno.EISDIR,
            f"is a folder, not a results file: give a file path such as {output / 'results.json'}",
            str(output),
        )
    for stale in output.parent.glob(f".{glob.escape(output.name)}.*.tmp"):
        logger.info("removing %s left by an interrupted write", stale)
        stale.unlink(missing_ok=True)
    journals = existing_journals(output)
    if resume:
        if not output.exists() and not journals:
            logger.info("resume: neither %s nor its journal exist yet, starting from scratch", output)
        return
    if overwrite:
        for path in (output, *journals):
            path.unlink(missing_ok=True)
        return
    if output.exists() or journals:
        what = output if output.exists() else journals[0]
        raise FileExistsError(
            f"{what} exists (results of an earlier run); resume it, or overwrite it, or write to another output"
        )


# What to do about a write that failed, by errno.
_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
_NOT_ALLOWED = (errno.EROFS, errno.EACCES, errno.EPERM)


def write_problem(exc: OSError, output: str | os.PathLike) -> str:
    """One sentence for an OS error met while writing ``output`` or its journal: the problem and the fix.

    Nothing written before the error is lost (journal lines are appended, the output is replaced atomically),
    so the fix always ends in resuming the run.
    """
    where = exc.filename or output
    what = exc.strerror or str(exc)
    resume = "then run the same command with --resume: the journal keeps every image done so far"
    if exc.errno in _FULL:
        return (
            f"cannot write {where}: {what} (the disk, the quota or the file size limit is full). Free space "
            f"or write to a larger file system, {resume}"
        )
    if exc.errno in _NOT_ALLOWED:
        return (
            f"cannot write in {Path(where).parent}: {what}. Make the folder writable (or give another "
            f"--output), {resume}"
        )
    if exc.errno == errno.EISDIR:
        return f"--output {where} {what}" if exc.filename else f"cannot write {output}: {what}"
    return f"cannot write {where}: {what}. Fix it, {resume}"
