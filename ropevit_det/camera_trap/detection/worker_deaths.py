"""A DataLoader worker that dies on one file: how torch reports it, and holding that report back while entries
are written, so that a journal line is never cut in half."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def is_worker_death(exc: RuntimeError) -> bool:
    """Whether torch's DataLoader raised ``exc`` because one of its worker processes died."""
    return "DataLoader worker (pid" in str(exc)


@contextmanager
def worker_deaths_deferred() -> Iterator[None]:
    """Hold back torch's "DataLoader worker died" error while entries are written.

    torch raises that error from its ``SIGCHLD`` handler, in the main thread, wherever it happens to be: in
    the middle of a journal append it would leave half a line, or a line the writer does not count as done
    (and the file would be journaled twice). Here the signal is noted and the handler runs after the block.
    """
    if not hasattr(signal, "SIGCHLD") or threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[tuple[int, Any]] = []
    previous = signal.signal(signal.SIGCHLD, lambda signum, frame: caught.append((signum, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGCHLD, previous)
        if caught and callable(previous):
            previous(*caught[0])
