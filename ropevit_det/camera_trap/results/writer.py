"""Where a run's results go and how a run resumes: the rank-aware, journalled :class:`ResultsWriter`.

:class:`ResultsWriter` checkpoints into an append-only journal (:mod:`.journal`) and writes the results file
once, at the end: to a temporary file in the same folder, moved over the output with ``os.replace`` (atomic
on POSIX and Windows), so the file users open is always either absent, the previous one, or complete.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from ...utils.atomic_json import write_json_atomic
from .journal import JournalWriter, check_header, existing_journals, journal_path, make_header, read_journal
from .md_format import DEFAULT_DETECTION_CATEGORIES, ResultsFileError, load_results
from .output_file import prepare_output, write_problem
from .run_identity import IDENTITY_KEY, identity_differences
from .run_lock import RunLock, check_lock_held

logger = logging.getLogger(__name__)


class ResultsWriter:
    """Collect image entries into an append-only journal; write ``output`` once, atomically, at the end.

    Checkpoints cost the same at every point of a run: each entry becomes one flushed line of the journal
    (``<output>.journal-<rank>.jsonl``, see :mod:`.journal`), and every ``checkpoint_every`` entries the
    journal is fsynced. The results file itself is written atomically by :meth:`finalize` (complete) or, after
    an exception in a single-process run, as a valid partial file; it is never rewritten during the run, so
    a killed run leaves the previous results file (or none) plus the journal, and ``resume`` rebuilds the done
    set from both.

    Args:
        output: the results JSON path.
        info: the ``info`` block (see :func:`make_info`).
        detection_categories: ``{"1": "animal", ...}``.
        classification_categories: ``{"0": "species name", ...}`` when detections carry classifications.
        checkpoint_every: fsync the journal after this many new images (what a power cut can lose).
        resume: continue: entries of an existing ``output`` and of every journal of it count as done.
        overwrite: replace an existing ``output`` instead of refusing.
        rank, world_size: this process in a distributed run. Each rank appends to its own journal; only
            rank 0 writes ``output`` (:meth:`finalize` merges every journal). With ``world_size > 1`` the
            caller runs :func:`prepare_output` once before the ranks open their writers.
        run_id: the run whose lock on ``output`` is already held (:class:`.run_lock.RunLock`, taken once per
            run by its machine rank 0); the writer checks that the lock still holds it. Without it, a
            one-process writer takes the lock itself for its lifetime (waiting ``wait_for_lock`` seconds for
            another run, taking over a lock of another host with ``break_lock``).

    Usage::

        with ResultsWriter(out, info=make_info("model.pth"), resume=resume) as writer:
            todo = [f for f in files if f not in writer.done]
            for f, dets in run(todo):
                writer.add(image_entry(f, dets))
        # leaving the block normally finalizes; an exception still leaves the journal and a partial file.
    """

    def __init__(
        self,
        output: str | os.PathLike,
        *,
        info: Mapping[str, Any],
        detection_categories: Mapping[str, str] = DEFAULT_DETECTION_CATEGORIES,
        classification_categories: Mapping[str, str] | None = None,
        checkpoint_every: int = 1000,
        resume: bool = False,
        overwrite: bool = False,
        rank: int = 0,
        world_size: int = 1,
        run_id: str | None = None,
        wait_for_lock: float | None = None,
        break_lock: bool = False,
    ):
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
        for key in detection_categories:
            if not (isinstance(key, str) and key.isdigit()):
                raise ValueError(f"detection category ids must be strings of digits, got {key!r}")
        self.output = Path(output)
        self.info = dict(info)
        self.detection_categories = {str(k): str(v) for k, v in detection_categories.items()}
        self.classification_categories = (
            None
            if classification_categories is None
            else {str(k): str(v) for k, v in classification_categories.items()}
        )
        self.checkpoint_every = checkpoint_every
        self.rank, self.world_size = rank, world_size
        self._entries: dict[str, dict[str, Any]] = {}
        # Ranks other than 0 keep file names only: rank 0 re-reads every journal when it finalizes, so they need
        # not hold a whole survey's entries in memory just to skip them.
        self._done_names: set[str] = set()
        self._unsaved = 0
        self._lock: RunLock | None = None
        if run_id is not None:
            check_lock_held(self.output, run_id)
        elif world_size == 1:
            self._lock = RunLock(self.output).acquire(wait=wait_for_lock, break_lock=break_lock)
            run_id = self._lock.run_id
        self._run_id = run_id
        try:
            if world_size == 1:
                prepare_output(self.output, resume=resume, overwrite=overwrite)
            self._header = make_header(
                self.detection_categories, self.classification_categories, self.info.get(IDENTITY_KEY)
            )
            if resume:
                self._load_previous()
            self._journal = JournalWriter(journal_path(self.output, rank), self._header)
        except BaseException:
            self._release_lock()
            raise

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def _load_previous(self) -> None:
        """Entries of an existing output and of all its journals (any rank's): the work already done."""
        if self.output.exists():
            previous = load_results(self.output)
            if previous["detection_categories"] != self.detection_categories:
                raise ResultsFileError(
                    f"cannot resume {self.output}: it has detection categories {previous['detection_categories']}, "
                    f"this run writes {self.detection_categories}"
                )
            old_cls = previous.get("classification_categories")
            if (
                old_cls is not None
                and self.classification_categories is not None
                and old_cls != self.classification_categories
            ):
                raise ResultsFileError(
                    f"cannot resume {self.output}: its classification categories differ from "
                    "this run's (another classifier?)"
                )
            differences = identity_differences(
                (previous.get("info") or {}).get(IDENTITY_KEY), self.info.get(IDENTITY_KEY)
            )
            if differences:
                raise ResultsFileError(
                    f"cannot resume {self.output}: another run wrote it "
                    f"({'; '.join(differences)}). Resume with that run's weights, config and "
                    "flags, or start over"
                )
            for entry in previous["images"]:
                self._remember(entry)
        journaled = 0
        for path in existing_journals(self.output):
            contents = read_journal(path)
            check_header(path, contents.header, self._header)
            for entry in contents.entries:
                self._remember(entry)
            journaled += len(contents.entries)
        logger.info("resume: %d images already done in %s and %d journal entries", len(self), self.output, journaled)

    @property
    def done(self) -> set[str]:
        """Relative paths already in the results (including failures), to skip on resume."""
        return set(self._entries) | self._done_names

    def __len__(self) -> int:
        return len(self._entries) + len(self._done_names)

    def _remember(self, entry: dict[str, Any]) -> None:
        if self.rank == 0 or self.world_size == 1:
            self._entries[entry["file"]] = entry
        else:
            self._done_names.add(entry["file"])

    def add(self, entry: Mapping[str, Any]) -> None:
        """Add one image entry (from :func:`image_entry` / :func:`failure_entry`): one journal line."""
        file = entry["file"]
        if file in self._entries or file in self._done_names:
            raise ValueError(f"{file} is already in the results; filter inputs with ResultsWriter.done")
        for det in entry.get("detections") or ():
            if det["category"] not in self.detection_categories:
                raise ValueError(
                    f"{file}: detection category {det['category']!r} is not in "
                    f"detection_categories {self.detection_categories}"
                )
            for class_id, _conf in det.get("classifications") or ():
                if self.classification_categories is None or class_id not in self.classification_categories:
                    raise ValueError(
                        f"{file}: classification category {class_id!r} is not in classification_categories"
                    )
        entry = dict(entry)
        self._journal.append(entry)
        self._remember(entry)
        self._unsaved += 1
        if self._unsaved >= self.checkpoint_every:
            self.checkpoint()

    def to_dict(self, *, complete: bool) -> dict[str, Any]:
        """The results as a dict (images sorted by file, as MegaDetector writes them)."""
        info = dict(self.info)
        if complete:
            info["detection_completion_time"] = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        else:
            info.pop("detection_completion_time", None)
        data: dict[str, Any] = {
            "info": info,
            "detection_categories": self.detection_categories,
            "images": [self._entries[k] for k in sorted(self._entries)],
        }
        if self.classification_categories is not None:
            data["classification_categories"] = self.classification_categories
        return data

    def checkpoint(self) -> None:
        """Make every entry added so far durable: an fsync of the journal, whose cost does not grow."""
        self._journal.sync()
        self._unsaved = 0

    def close(self) -> None:
        """Close this process's journal (a distributed rank calls this before rank 0 finalizes).

        A one-process writer that took the output's lock itself gives it back: it writes nothing more.
        """
        try:
            self._close_journal()
        finally:
            self._release_lock()

    def _close_journal(self) -> None:
        self._journal.close()
        self._unsaved = 0

    def finalize(self) -> Path:
        """Write the complete results file atomically, from every journal, then remove the journals.

        On rank 0 of a distributed run, call it once every rank has closed its writer: it reads the other
        ranks' journals. Entries are keyed by file, so an image is never written twice.
        """
        if self.rank != 0:
            raise RuntimeError("only rank 0 writes the results file")
        self._close_journal()
        if self._run_id is not None:
            # Taken over meanwhile (--break-lock on another machine)? Then the other run owns the output now:
            # write nothing over it, and keep the journals.
            check_lock_held(self.output, self._run_id)
        journals = existing_journals(self.output)
        for path in journals:
            if path != self._journal.path:
                contents = read_journal(path)
                check_header(path, contents.header, self._header)
                for entry in contents.entries:
                    self._entries.setdefault(entry["file"], entry)
        write_json_atomic(self.output, self.to_dict(complete=True), indent=1)
        # Only now is every journal line in the output: the journals can go.
        for path in journals:
            path.unlink(missing_ok=True)
        self._release_lock()
        return self.output

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                if self.world_size == 1:
                    self.finalize()
                else:
                    self._close_journal()
                return
            self._close_after_error()
            if self.world_size == 1 and self._entries:
                # Interrupted (Ctrl-C, CUDA error, ...): the journal has everything; a valid partial results
                # file also lets users look at what was done. Written once, not per checkpoint.
                try:
                    write_json_atomic(self.output, self.to_dict(complete=False))
                except OSError as write_error:  # the disk that just failed may fail again: the journal is kept
                    logger.warning("no partial results file: %s", write_problem(write_error, self.output))
        finally:
            self._release_lock()

    def _close_after_error(self) -> None:
        """Close the journal without hiding the error being raised (a full disk fails the last flush too)."""
        try:
            self._close_journal()
        except OSError as close_error:
            logger.warning("closing the journal: %s", write_problem(close_error, self.output))
