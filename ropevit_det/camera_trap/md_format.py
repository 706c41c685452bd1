"""MegaDetector batch output format: build entries, write them safely, resume from them.

The format (https://lila.science/megadetector-output-format, version 1.6, the one the ``megadetector``
package writes and its ``validate_batch_results`` checks) is what Timelapse and AddaxAI read:

* ``info``: ``format_version`` (a string), ``detector``, ``detection_completion_time``, ``detector_metadata``
  with ``typical_detection_threshold`` / ``conservative_detection_threshold`` (Timelapse's default slider);
* ``detection_categories``: ``{"1": "animal", "2": "person", "3": "vehicle"}`` (string ids);
* ``images``: ``{"file": relative/path.jpg, "detections": [{"category": "1", "conf": 0.93,
  "bbox": [x_min, y_min, width, height] normalised to 0..1, optional "classifications": [["12", 0.8], ...]}]}``,
  or ``{"file": ..., "failure": "reason", "detections": null}`` for an unreadable image;
* optional ``classification_categories`` ``{"12": "Vulpes vulpes", ...}``.

:class:`ResultsWriter` checkpoints into an append-only journal (:mod:`.journal`) and writes the results file
once, at the end: to a temporary file in the same folder, moved over the output with ``os.replace`` (atomic
on POSIX and Windows), so the file users open is always either absent, the previous one, or complete.
"""
from __future__ import annotations

import glob
import json
import logging
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .journal import JournalWriter, check_header, existing_journals, journal_path, make_header, read_journal

logger = logging.getLogger(__name__)

FORMAT_VERSION = "1.6"
DEFAULT_DETECTION_CATEGORIES: dict[str, str] = {"1": "animal", "2": "person", "3": "vehicle"}
# MegaDetector's own rounding: boxes to 4 decimals (0.1 px on a 1000 px image), confidences to 3.
COORD_DIGITS = 4
CONF_DIGITS = 3


def make_info(
    detector: str,
    *,
    typical_detection_threshold: float = 0.2,
    conservative_detection_threshold: float = 0.1,
    classifier: str | None = None,
    extra_detector_metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``info`` block. ``detection_completion_time`` is filled in by :meth:`ResultsWriter.finalize`.

    Args:
        detector: model name or checkpoint file name (shown by Timelapse).
        typical_detection_threshold: the confidence Timelapse and AddaxAI use as their default threshold.
        conservative_detection_threshold: a lower threshold for "don't miss anything" review.
        classifier: name of the species classifier, when ``classifications`` are written.
        extra_detector_metadata: more ``detector_metadata`` entries (e.g. ``image_size``).
    """
    metadata = {
        "typical_detection_threshold": float(typical_detection_threshold),
        "conservative_detection_threshold": float(conservative_detection_threshold),
    }
    metadata.update(extra_detector_metadata or {})
    info: dict[str, Any] = {"format_version": FORMAT_VERSION, "detector": detector, "detector_metadata": metadata}
    if classifier is not None:
        info["classifier"] = classifier
    return info


def detection_entry(
    category: int | str,
    conf: float,
    box_xyxy: Sequence[float],
    image_width: int,
    image_height: int,
    classifications: Iterable[tuple[int | str, float]] | None = None,
) -> dict[str, Any]:
    """One MD detection from an absolute-pixel ``[x0, y0, x1, y1]`` box.

    Args:
        category: detection category id (key of ``detection_categories``).
        conf: detector score in 0..1.
        box_xyxy: box corners in pixels of the image the model saw.
        image_width, image_height: size of that image (boxes are normalised by it and clipped to it).
        classifications: optional ``(classification category id, confidence)`` pairs, best first.
    """
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    x0, x1 = (min(max(v / image_width, 0.0), 1.0) for v in (x0, x1))
    y0, y1 = (min(max(v / image_height, 0.0), 1.0) for v in (y0, y1))
    entry: dict[str, Any] = {
        "category": str(category),
        # float(): the validator rejects ints, and numpy floats are not JSON-serialisable.
        "conf": round(float(conf), CONF_DIGITS),
        "bbox": [round(x0, COORD_DIGITS), round(y0, COORD_DIGITS),
                 round(x1 - x0, COORD_DIGITS), round(y1 - y0, COORD_DIGITS)],
    }
    if classifications is not None:
        pairs = sorted(((str(c), round(float(p), CONF_DIGITS)) for c, p in classifications),
                       key=lambda pair: -pair[1])
        entry["classifications"] = [list(pair) for pair in pairs]
    return entry


def image_entry(file: str, detections: list[dict[str, Any]]) -> dict[str, Any]:
    """A successfully processed image (``file`` relative to the input root; detections may be empty)."""
    return {"file": _as_results_path(file),
            "detections": sorted(detections, key=lambda d: -d["conf"])}


def failure_entry(file: str, reason: str) -> dict[str, Any]:
    """An image that could not be processed: ``failure`` string and ``detections: null``, as the spec asks."""
    return {"file": _as_results_path(file), "failure": str(reason), "detections": None}


def normalized_to_absolute_xywh(bbox: Sequence[float], width: int, height: int) -> list[float]:
    """MD's normalised ``[x, y, w, h]`` to COCO's absolute-pixel ``[x, y, w, h]``."""
    x, y, w, h = bbox
    return [x * width, y * height, w * width, h * height]


def _as_results_path(file: str) -> str:
    # MD files use forward slashes whatever the OS, so Windows-made results open on Linux and back.
    return str(file).replace("\\", "/")


class ResultsFileError(ValueError):
    """An existing results file cannot be used (not JSON, not MD format, other categories)."""


def load_results(path: str | os.PathLike) -> dict[str, Any]:
    """Read an MD results file and check the parts tools rely on; a clear :class:`ResultsFileError` otherwise.

    Checked: ``info`` (if present) and ``detection_categories`` / ``classification_categories`` are objects with
    string names; each entry has a ``file`` string, ``failure`` null or a string, and ``detections`` null or a
    list of ``{"category": a key of detection_categories, "conf": a finite number, "bbox": four finite
    numbers}``. A missing file raises ``FileNotFoundError``.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except IsADirectoryError:
        raise ResultsFileError(f"{path} is a folder, not a results file; pass the .json file") from None
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ResultsFileError(f"{path} cannot be read ({exc.strerror or exc}); check its permissions") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError (binary), nesting, huge ints
        raise ResultsFileError(
            f"{path} is not valid JSON ({exc}); it was not written by a completed checkpoint (files written by "
            "ResultsWriter are replaced atomically, so it was damaged or made by something else). "
            "Move it away and start again.") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("detection_categories"), dict):
        raise ResultsFileError(f"{path} is JSON but not a MegaDetector results file "
                               "(needs 'images' list and 'detection_categories')")
    if not isinstance(data.get("info", {}), dict):
        raise ResultsFileError(f"{path}: 'info' must be an object")
    for key in ("detection_categories", "classification_categories"):
        names = data.get(key) or {}
        if not isinstance(names, dict) or not all(isinstance(name, str) for name in names.values()):
            raise ResultsFileError(f"{path}: '{key}' must map ids to name strings")
    for i, entry in enumerate(data["images"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise ResultsFileError(f"{path}: images[{i}] has no 'file' string")
        problem = _entry_problem(entry, data["detection_categories"])
        if problem:
            raise ResultsFileError(f"{path}: images[{i}] ({entry['file']!r}) {problem}; fix or remove this entry")
    return data


def _entry_problem(entry: Mapping[str, Any], detection_categories: Mapping[str, str]) -> str | None:
    """What is wrong with one results entry for the tools that read it, or None."""
    def finite(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    if entry.get("failure") is not None and not isinstance(entry["failure"], str):
        return "has a 'failure' that is not a string"
    detections = entry.get("detections")
    if detections is None:
        return None
    if not isinstance(detections, list):
        return "has 'detections' that are not a list"
    for k, det in enumerate(detections):
        if not isinstance(det, dict) or not isinstance(det.get("category"), str) \
                or det["category"] not in detection_categories:
            return f"detections[{k}] has no 'category' of detection_categories"
        if not finite(det.get("conf")):
            return f"detections[{k}] has no finite 'conf'"
        bbox = det.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(finite(v) for v in bbox):
            return f"detections[{k}] has a 'bbox' that is not four finite numbers"
    return None


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


def prepare_output(output: str | os.PathLike, *, resume: bool, overwrite: bool) -> None:
    """Check that a run may write ``output``, once, before any process opens its journal.

    A run that is neither resumed nor told to overwrite refuses an existing output or journal. ``overwrite``
    removes both, so that a later resume cannot mix the old run's entries with the new one's. Temporary files
    left by a write that was interrupted are removed: they never hold anything the output does not.
    """
    output = Path(output)
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
        raise FileExistsError(f"{what} exists (results of an earlier run); resume it, or overwrite it, or write "
                              "to another output")


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
    ):
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
        for key in detection_categories:
            if not (isinstance(key, str) and key.isdigit()):
                raise ValueError(f"detection category ids must be strings of digits, got {key!r}")
        self.output = Path(output)
        self.info = dict(info)
        self.detection_categories = {str(k): str(v) for k, v in detection_categories.items()}
        self.classification_categories = (None if classification_categories is None else
                                          {str(k): str(v) for k, v in classification_categories.items()})
        self.checkpoint_every = checkpoint_every
        self.rank, self.world_size = rank, world_size
        self._entries: dict[str, dict[str, Any]] = {}
        # Ranks other than 0 keep file names only: rank 0 re-reads every journal when it finalizes, so they need
        # not hold a whole survey's entries in memory just to skip them.
        self._done_names: set[str] = set()
        self._unsaved = 0
        if world_size == 1:
            prepare_output(self.output, resume=resume, overwrite=overwrite)
        if resume:
            self._load_previous()
        self._header = make_header(self.detection_categories, self.classification_categories)
        self._journal = JournalWriter(journal_path(self.output, rank), self._header)

    def _load_previous(self) -> None:
        """Entries of an existing output and of all its journals (any rank's): the work already done."""
        if self.output.exists():
            previous = load_results(self.output)
            if previous["detection_categories"] != self.detection_categories:
                raise ResultsFileError(
                    f"cannot resume {self.output}: it has detection categories {previous['detection_categories']}, "
                    f"this run writes {self.detection_categories}")
            old_cls = previous.get("classification_categories")
            if old_cls is not None and self.classification_categories is not None \
                    and old_cls != self.classification_categories:
                raise ResultsFileError(f"cannot resume {self.output}: its classification categories differ from "
                                       "this run's (another classifier?)")
            for entry in previous["images"]:
                self._remember(entry)
        header = make_header(self.detection_categories, self.classification_categories)
        journaled = 0
        for path in existing_journals(self.output):
            contents = read_journal(path)
            check_header(path, contents.header, header)
            for entry in contents.entries:
                self._remember(entry)
            journaled += len(contents.entries)
        logger.info("resume: %d images already done in %s and %d journal entries", len(self),
                    self.output, journaled)

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
                raise ValueError(f"{file}: detection category {det['category']!r} is not in "
                                 f"detection_categories {self.detection_categories}")
            for class_id, _conf in det.get("classifications") or ():
                if self.classification_categories is None or class_id not in self.classification_categories:
                    raise ValueError(f"{file}: classification category {class_id!r} is not in "
                                     "classification_categories")
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
        """Close this process's journal (a distributed rank calls this before rank 0 finalizes)."""
        self._journal.close()
        self._unsaved = 0

    def finalize(self) -> Path:
        """Write the complete results file atomically, from every journal, then remove the journals.

        On rank 0 of a distributed run, call it once every rank has closed its writer: it reads the other
        ranks' journals. Entries are keyed by file, so an image is never written twice.
        """
        if self.rank != 0:
            raise RuntimeError("only rank 0 writes the results file")
        self.close()
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
        return self.output

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and self.world_size == 1:
            self.finalize()
            return
        self.close()
        if exc_type is not None and self.world_size == 1 and self._entries:
            # Interrupted (Ctrl-C, CUDA error, ...): the journal has everything; a valid partial results file
            # also lets users look at what was done. Written once, not per checkpoint.
            write_json_atomic(self.output, self.to_dict(complete=False))
