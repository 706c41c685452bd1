"""How many threads each of several processes on one machine's CPU gets, so that together they use its cores once.

PyTorch gives every process as many intra-op threads as the machine has cores; N processes on one CPU would then
run N times as many threads as cores, and each waits on the others. Shared out evenly instead, 1 and N processes
use the same cores. A user's own ``OMP_NUM_THREADS`` always wins.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

__all__ = ["available_cores", "share_cpu_cores", "threads_per_process"]


def available_cores() -> int:
    """The cores this process may run on (its affinity mask: a container or ``taskset`` may allow fewer)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def threads_per_process(processes: int, cores: int | None = None) -> int:
    """The machine's cores shared out evenly, at least one thread each."""
    return max(1, (cores if cores is not None else available_cores()) // processes)


def share_cpu_cores(processes: int, environ: MutableMapping[str, str] | None = None) -> str:
    """Set ``OMP_NUM_THREADS`` for ``processes`` CPU processes about to be started on this machine (they inherit
    the environment and PyTorch reads it at start), unless the user set it; return the line to log."""
    environ = os.environ if environ is None else environ
    cores = available_cores()
    if "OMP_NUM_THREADS" in environ:
        return (
            f"{processes} CPU processes on {cores} cores: {environ['OMP_NUM_THREADS']} threads each, "
            "from your OMP_NUM_THREADS"
        )
    threads = threads_per_process(processes, cores)
    environ["OMP_NUM_THREADS"] = str(threads)
    return (
        f"{processes} CPU processes on {cores} cores: {threads} thread(s) each (cores / processes; set "
        "OMP_NUM_THREADS to choose)"
    )
