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

:class:`ResultsWriter` keeps the output file a complete, valid results file at every moment: each checkpoint
is written to a temporary file in the same folder and moved over the output with ``os.replace`` (atomic on
POSIX and Windows), so a run killed at any instant leaves either the previous checkpoint or the new one.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

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
    """Read an MD results file and check the parts tools rely on; a clear :class:`ResultsFileError` otherwise."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise ResultsFileError(
            f"{path} is not valid JSON ({exc}); it was not written by a completed checkpoint (files written by "
            "ResultsWriter are replaced atomically, so it was damaged or made by something else). "
            "Move it away and start again without --resume.") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("detection_categories"), dict):
        raise ResultsFileError(f"{path} is JSON but not a MegaDetector results file "
                               "(needs 'images' list and 'detection_categories')")
    for i, entry in enumerate(data["images"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise ResultsFileError(f"{path}: images[{i}] has no 'file' string")
    return data


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


class ResultsWriter:
    """Collect image entries and keep ``output`` a valid MD results file, checkpointed every N images.

    Args:
        output: the results JSON path.
        info: the ``info`` block (see :func:`make_info`).
        detection_categories: ``{"1": "animal", ...}``.
        classification_categories: ``{"0": "species name", ...}`` when detections carry classifications.
        checkpoint_every: write the file after this many new images (a killed run loses at most this many).
        resume: continue an existing ``output``: its entries are kept and :attr:`done` lists their files.
        overwrite: replace an existing ``output`` instead of refusing.

    Usage::

        with ResultsWriter(out, info=make_info("model.pth"), resume=args.resume) as writer:
            todo = [f for f in files if f not in writer.done]
            for f, dets in run(todo):
                writer.add(image_entry(f, dets))
        # leaving the block normally finalizes; an exception still checkpoints what was done.
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
        self._entries: dict[str, dict[str, Any]] = {}
        self._unsaved = 0
        self._remove_stale_temporaries()
        if self.output.exists():
            if resume:
                self._load_previous()
            elif not overwrite:
                raise FileExistsError(f"{self.output} exists; pass --resume to continue it, or --overwrite "
                                      "(or another --output) to start over")
        elif resume:
            logger.info("--resume: %s does not exist yet, starting from scratch", self.output)

    def _remove_stale_temporaries(self) -> None:
        # A run killed inside write_json_atomic leaves its temporary file; it never holds anything the
        # output does not (the output is only replaced by complete files), so it is safe to delete.
        for stale in self.output.parent.glob(f".{self.output.name}.*.tmp"):
            logger.info("removing %s left by an interrupted write", stale)
            stale.unlink(missing_ok=True)

    def _load_previous(self) -> None:
        previous = load_results(self.output)
        if previous["detection_categories"] != self.detection_categories:
            raise ResultsFileError(
                f"cannot resume {self.output}: it has detection categories {previous['detection_categories']}, "
                f"this run writes {self.detection_categories}. Use another --output.")
        old_cls = previous.get("classification_categories")
        if old_cls is not None and self.classification_categories is not None \
                and old_cls != self.classification_categories:
            raise ResultsFileError(f"cannot resume {self.output}: its classification categories differ from "
                                   "this run's (another classifier?). Use another --output.")
        for entry in previous["images"]:
            self._entries[entry["file"]] = entry
        logger.info("--resume: %d images already done in %s", len(self._entries), self.output)

    @property
    def done(self) -> set[str]:
        """Relative paths already in the results (including failures), to skip on resume."""
        return set(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, entry: Mapping[str, Any]) -> None:
        """Add one image entry (from :func:`image_entry` / :func:`failure_entry`); checkpoints every N."""
        file = entry["file"]
        if file in self._entries:
            raise ValueError(f"{file} is already in the results; filter inputs with ResultsWriter.done")
        for det in entry.get("detections") or ():
            if det["category"] not in self.detection_categories:
                raise ValueError(f"{file}: detection category {det['category']!r} is not in "
                                 f"detection_categories {self.detection_categories}")
            for class_id, _conf in det.get("classifications") or ():
                if self.classification_categories is None or class_id not in self.classification_categories:
                    raise ValueError(f"{file}: classification category {class_id!r} is not in "
                                     "classification_categories")
        self._entries[file] = dict(entry)
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
        """Write what is done so far (a valid results file without ``detection_completion_time``)."""
        # Compact JSON: the C encoder is several times faster than indented output, which matters when
        # a file with hundreds of thousands of entries is rewritten every few minutes.
        write_json_atomic(self.output, self.to_dict(complete=False))
        self._unsaved = 0

    def finalize(self) -> Path:
        """Write the complete results file (indented, with ``detection_completion_time``)."""
        write_json_atomic(self.output, self.to_dict(complete=True), indent=1)
        self._unsaved = 0
        return self.output

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finalize()
        elif self._unsaved:
            # Interrupted (Ctrl-C, CUDA error, ...): keep the work done since the last checkpoint.
            self.checkpoint()
