"""Reading one input file without hanging the run: regular files only, and a time limit per file.

Listing already leaves out FIFOs, sockets and devices, but a file can be replaced between listing and reading,
and a list file names paths the listing never saw as a folder entry. A FIFO opened the ordinary way blocks
until some writer opens it (for ever, in practice), so files are opened with ``O_NONBLOCK`` and their type
checked on the open descriptor. Reads that stall for other reasons (a network share gone away, a device)
are cut by :func:`read_deadline`.
"""

from __future__ import annotations

import os
import signal
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

__all__ = ["DEFAULT_READ_TIMEOUT", "NotRegularFileError", "ReadTimeoutError", "open_regular_file", "read_deadline"]

# Decoding a 64 MP JPEG takes about a second; a read that takes minutes is stuck, not slow.
DEFAULT_READ_TIMEOUT = 120.0


class NotRegularFileError(OSError):
    """The path is a FIFO, socket, device or folder, not a regular file."""


class ReadTimeoutError(TimeoutError):
    """Reading one file took longer than its time limit."""


def open_regular_file(path: str | os.PathLike) -> BinaryIO:
    """Open ``path`` for binary reading, without blocking on a FIFO.

    Raises:
        NotRegularFileError: ``path`` is not a regular file (links are followed).
        FileNotFoundError, OSError: as ``open`` does.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(f"not a regular file ({_kind(mode)})")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_regular_file(path: str | os.PathLike) -> None:
    """Raise :class:`NotRegularFileError` when ``path`` exists and is not a regular file (``stat`` never blocks)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # the reader reports a missing file in its own words
    if not stat.S_ISREG(mode):
        raise NotRegularFileError(f"not a regular file ({_kind(mode)})")


@contextmanager
def read_deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`ReadTimeoutError` inside the block once ``seconds`` have passed (None or <= 0: no limit).

    Uses ``SIGALRM``, so it acts only in a process's main thread (DataLoader workers, or the main process with
    ``num_workers=0``); elsewhere the block runs without a limit. Blocking system calls are interrupted and the
    error raised as soon as the interpreter runs again.
    """
    if (
        not seconds
        or seconds <= 0
        or threading.current_thread() is not threading.main_thread()
        or not hasattr(signal, "setitimer")
    ):
        yield
        return

    def _expired(signum, frame):
        raise ReadTimeoutError(f"reading took more than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return name
    return f"mode {stat.S_IFMT(mode):o}"
