"""Frame detections -> one MegaDetector video entry, the convention Timelapse reads.

One entry per video: ``file`` is the video's relative path, ``frame_rate`` and ``frames_processed`` (the
sampled frame numbers; the validator requires both from format 1.5 on), and detections that carry their
``frame_number``. By default each category keeps only its highest-confidence detection over all frames,
as MegaDetector's ``frame_results_to_video_results`` does; ``all_frames`` keeps every frame's detections.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .md_format import failure_entry, image_entry

__all__ = ["video_entry", "video_failure_entry"]

# Per-entry field saying a video was decoded only in part (its detections cover the frames read).
INCOMPLETE_FIELD = "decode_incomplete"


def video_entry(
    file: str,
    *,
    frame_rate: float,
    frames_processed: Sequence[int],
    detections: Sequence[dict[str, Any]],
    all_frames: bool = False,
    incomplete: str | None = None,
) -> dict[str, Any]:
    """The MD entry of a video whose sampled frames were detected.

    Args:
        file: the video's path relative to the input root.
        frame_rate: frames per second.
        frames_processed: the frame numbers the detector saw.
        detections: MD detections of all those frames, each with its ``frame_number``.
        all_frames: keep every detection, not only the best one per category.
        incomplete: set when decoding stopped early: written as ``decode_incomplete``.
    """
    if all_frames:
        kept = list(detections)
    else:
        best: dict[str, dict[str, Any]] = {}
        for det in detections:
            # Ties go to the earliest frame, so the choice does not depend on the batch layout.
            current = best.get(det["category"])
            if current is None or det["conf"] > current["conf"]:
                best[det["category"]] = det
        kept = list(best.values())
    entry = image_entry(file, kept)
    entry["frame_rate"] = float(frame_rate)
    entry["frames_processed"] = [int(n) for n in frames_processed]
    if incomplete is not None:
        entry[INCOMPLETE_FIELD] = incomplete
    return entry


def video_failure_entry(file: str, reason: str, frame_rate: float = -1.0) -> dict[str, Any]:
    """A video that could not be read: a ``failure`` entry that still has the fields videos must have."""
    entry = failure_entry(file, reason)
    entry["frame_rate"] = float(frame_rate)
    entry["frames_processed"] = []
    return entry
