"""The append-only checkpoint journal of a results file: one JSON line per finished image or video.

Rewriting the whole results file at every checkpoint costs O(images done) each time, O(n^2) over a run.
A journal line costs the same at the first image and at the millionth: the entry is appended and flushed to
the operating system (a killed process loses nothing already added), and ``fsync`` every N images bounds what
a power cut can take.

Layout: ``<output>.journal-<rank>.jsonl`` next to the output, one file per process of a distributed run,
so no two processes ever append to the same file. The first line is a header with the categories the
entries refer to; every other line is one MegaDetector image entry (it has a ``file``).

A power cut can leave the last line half-written (or padded with zeros by the file system). Such a tail
is dropped when read, and cut off the file before the owning process appends again, so the image it
described is simply done again. A damaged line *followed by* valid ones is not a torn write: it is
reported, never skipped silently.
"""

from __future__ import annotations

import glob
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import UserInputError
from .run_identity import IDENTITY_KEY, identity_differences

logger = logging.getLogger(__name__)

__all__ = ["JournalContents", "JournalError", "JournalWriter", "existing_journals", "journal_path", "read_journal"]

JOURNAL_VERSION = 1
_HEADER_KEY = "ropevit_det_journal"


class JournalError(UserInputError):
    """A journal file cannot be used (damaged in the middle, or written for other categories)."""


def journal_path(output: str | os.PathLike, rank: int = 0) -> Path:
    """The journal of process ``rank`` for results file ``output``."""
    output = Path(output)
    return output.with_name(f"{output.name}.journal-{rank}.jsonl")


def existing_journals(output: str | os.PathLike) -> list[Path]:
    """Every journal of ``output`` on disk, whatever the number of processes that wrote them."""
    output = Path(output)
    pattern = os.path.join(glob.escape(str(output.parent)), f"{glob.escape(output.name)}.journal-*.jsonl")
    return sorted(Path(p) for p in glob.glob(pattern))


@dataclass
class JournalContents:
    """What a journal holds: its header, its complete entries, and the byte length they end at."""

    header: dict[str, Any] | None
    entries: list[dict[str, Any]] = field(default_factory=list)
    valid_bytes: int = 0  # the file up to here is complete lines; anything after is a torn tail
    torn_bytes: int = 0  # length of the dropped tail (0: none)


def read_journal(path: str | os.PathLike) -> JournalContents:
    """Read a journal, dropping a torn last line (see the module docstring).

    Raises:
        JournalError: a damaged line that complete lines follow, or a first line that is not a header.
    """
    path = Path(path)
    data = path.read_bytes()
    contents = JournalContents(header=None)
    position, line_number, bad_line = 0, 0, None
    while position < len(data):
        end = data.find(b"\n", position)
        if end < 0:
            break  # no newline: the write of this line never finished
        line_number += 1
        raw = data[position:end]
        position = end + 1
        try:
            record = json.loads(raw)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            bad_line = bad_line or line_number
            continue
        if bad_line is not None:
            raise JournalError(
                f"{path}: line {bad_line} is damaged but complete lines follow it; this is not a "
                "torn last write. Move the file away to redo its images."
            )
        if line_number == 1:
            if _HEADER_KEY not in record:
                raise JournalError(f"{path}: the first line is not a journal header")
            contents.header = record
        elif isinstance(record.get("file"), str):
            contents.entries.append(record)
        else:
            raise JournalError(f"{path}: line {line_number} has no 'file' string")
        contents.valid_bytes = position
    contents.torn_bytes = len(data) - contents.valid_bytes
    if contents.torn_bytes:
        logger.warning(
            "%s: dropped a torn last write (%d bytes); its image will be done again", path, contents.torn_bytes
        )
    return contents


def make_header(
    detection_categories: Mapping[str, str],
    classification_categories: Mapping[str, str] | None,
    identity: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The first line of a journal: the categories its entries' ids refer to, and the run's identity
    (:mod:`.run_identity`) when the writer has one."""
    classes = None if classification_categories is None else dict(classification_categories)
    header = {
        _HEADER_KEY: JOURNAL_VERSION,
        "detection_categories": dict(detection_categories),
        "classification_categories": classes,
    }
    if identity is not None:
        header[IDENTITY_KEY] = dict(identity)
    return header


class JournalWriter:
    """Append entries to one journal file; flushed per entry, fsynced on :meth:`sync`.

    Args:
        path: the journal file (created with ``header`` as its first line, or continued).
        header: see :func:`make_header`; an existing file must carry the same categories.
    """

    def __init__(self, path: str | os.PathLike, header: Mapping[str, Any]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size > 0:
            contents = read_journal(self.path)
            check_header(self.path, contents.header, header)
            if contents.torn_bytes or contents.header is None:
                # Cut the torn tail off before appending, or the next line would be glued to it.
                os.truncate(self.path, contents.valid_bytes)
            fresh = contents.header is None
        else:
            fresh = True
        # Binary append mode: O_APPEND, and one write() per line (no text-layer re-chunking).
        self._file = open(self.path, "ab")
        if fresh:
            self._write(dict(header))
            self.sync()

    def _write(self, record: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(record, separators=(",", ":")).encode("utf-8") + b"\n")
        self._file.flush()

    def append(self, entry: Mapping[str, Any]) -> None:
        """Write one entry as a line and hand it to the operating system (survives a killed process)."""
        self._write(entry)

    def sync(self) -> None:
        """Make what was appended durable (survives a power cut)."""
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self.sync()
            self._file.close()


def check_header(path: Path, found: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> None:
    """Refuse a journal whose category maps differ from this run's (its ids would mean other classes), or that
    another run wrote (its identity differs: other weights, config, thresholds, input root or shard)."""
    if found is None:
        return
    for key in ("detection_categories", "classification_categories"):
        if found.get(key) is not None and wanted.get(key) is not None and found[key] != wanted[key]:
            name = key.replace("_", " ")
            raise JournalError(f"cannot resume from {path}: it has {name} {found[key]}, this run writes {wanted[key]}")
    differences = identity_differences(found.get(IDENTITY_KEY), wanted.get(IDENTITY_KEY))
    if differences:
        raise JournalError(
            f"cannot resume from {path}: it was written by another run ({'; '.join(differences)}). "
            "Resume with that run's weights, config and flags, or start over"
        )
