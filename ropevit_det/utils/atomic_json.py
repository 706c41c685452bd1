"""Writing a JSON file so that readers only ever see the old or the new complete content."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_json_atomic(path: str | os.PathLike, data: Any, *, indent: int | None = None) -> None:
    """Write JSON so that ``path`` always holds either the old or the new complete content.

    The data goes to a temporary file in the same folder (same file system, so the rename is atomic), is
    flushed and fsynced, then ``os.replace`` swaps it in. A crash before the rename leaves the old file and a
    stray ``.tmp`` file that the next write does not need.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=indent)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        # BaseException: also on KeyboardInterrupt, so no half-written temporary file is left behind.
        Path(tmp_name).unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX only)
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
