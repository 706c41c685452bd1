"""A video's frames that show a person or a vehicle, as blurred pictures.

A video is never copied: its frames without a detection were not looked at, and re-encoding every frame would
still pass on whatever the detector missed. Each frame that carries a detection to blur is written instead, as
``<video>.frame_<N>.jpg`` beside where the video would be, with the boxes hidden as in the pictures.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .blur import BlurStyle, blur_boxes, boxes_to_blur


def frame_picture_path(video_dst: Path, frame_number: int) -> Path:
    return video_dst.with_name(f"{video_dst.name}.frame_{frame_number:06d}.jpg")


def frames_to_blur(entry: Mapping[str, Any], category_ids: Sequence[str], threshold: float) -> dict[int, list[dict]]:
    """``{frame number: its detections}`` of a video entry, for the frames with a detection to blur."""
    wanted = {str(c) for c in category_ids}
    frames: dict[int, list[dict]] = {}
    for det in entry.get("detections") or []:
        if str(det.get("category")) in wanted and float(det.get("conf", 0.0)) >= threshold and "frame_number" in det:
            frames.setdefault(int(det["frame_number"]), []).append(det)
    return frames


def write_blurred_frames(
    src: Path,
    dst: Path,
    frames: Mapping[int, list[dict]],
    category_ids: Sequence[str],
    threshold: float,
    style: BlurStyle,
    atomic_target,
) -> int:
    """Decode ``src`` and write each frame of ``frames`` blurred (frames written before are kept: resumable).

    Frame numbers count decoded frames from 0, as ``infer`` numbers them. Returns the pictures written or found.
    Raises ``OSError`` / ``ValueError`` for a video that cannot be decoded (the caller reports it).
    """
    import av  # only runs with videos need FFmpeg

    done, last = 0, max(frames)
    with av.open(str(src)) as container:
        for number, frame in enumerate(container.decode(container.streams.video[0])):
            if number in frames:
                out = frame_picture_path(dst, number)
                if not out.exists():
                    picture = frame.to_image()
                    boxes = boxes_to_blur({"detections": frames[number]}, category_ids, threshold, picture.size)
                    blurred, _ = blur_boxes(picture, boxes, style)
                    tmp = atomic_target(out)
                    blurred.save(tmp, format="JPEG", quality=95)
                    os.replace(tmp, out)
                done += 1
            if number >= last:
                break
    return done
