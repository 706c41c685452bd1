"""Sampled frames of a camera-trap video, decoded with PyAV, without stopping a run on a bad file.

Why PyAV rather than OpenCV: PyAV exposes what the results need and OpenCV hides. It reports the
container's declared frame count and the stream's frame rate as exact fractions, and the container's
``creation_time`` tag (the capture time of a video). A decoding error comes back as an exception
naming the problem, where ``cv2.VideoCapture.read`` only returns ``False``, so a truncated file
looks just like a finished one. Its wheels bundle FFmpeg, like OpenCV's, so nothing else must be installed.

Frame numbers count decoded frames from 0, as MegaDetector's video tools count them, so ``frame_number``
in the results points at the frame a user sees at ``frame_number / frame_rate`` seconds.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

__all__ = ["FrameSampling", "VIDEO_EXTENSIONS", "VideoReader", "is_video_file"]

# The containers camera traps write (upper-case names match too: the test is on the lower-cased suffix).
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv"})


def is_video_file(path: str | os.PathLike) -> bool:
    """Whether the extension is one of :data:`VIDEO_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class FrameSampling:
    """Which frames of a video go to the detector.

    Args:
        every_n_frames: take frames 0, N, 2N, ...
        every_seconds: take one frame every S seconds: every ``round(S * frame_rate)``-th frame, as
            MegaDetector's ``--time_sample`` does.
        Neither: every frame.
    """

    every_n_frames: int | None = None
    every_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.every_n_frames is not None and self.every_seconds is not None:
            raise ValueError("sample frames by count or by time, not both")
        if self.every_n_frames is not None and self.every_n_frames < 1:
            raise ValueError(f"every_n_frames must be >= 1, got {self.every_n_frames}")
        if self.every_seconds is not None and not self.every_seconds > 0:
            raise ValueError(f"every_seconds must be > 0, got {self.every_seconds}")

    def step(self, frame_rate: float) -> int:
        """Take every ``step``-th frame of a video at ``frame_rate``."""
        if self.every_seconds is not None:
            return max(1, round(self.every_seconds * frame_rate))
        return self.every_n_frames or 1


class VideoReader:
    """Decode one video's sampled frames; after :meth:`frames` is exhausted, the attributes tell how it went.

    Attributes (set while reading):
        frame_rate: frames per second (-1.0 when the file could not be opened).
        creation_time: the container's ``creation_time`` as ``"YYYY:MM:DD HH:MM:SS"`` (EXIF's form), or None.
        failure: why no frame at all could be read, or None.
        incomplete: why decoding stopped before the end when some frames were read, or None.
        frames_read: how many frames were decoded (sampled or not).
    """

    def __init__(self, path: str | os.PathLike, sampling: FrameSampling = FrameSampling()):
        self.path = Path(path)
        self.sampling = sampling
        self.frame_rate = -1.0
        self.creation_time: str | None = None
        self.failure: str | None = None
        self.incomplete: str | None = None
        self.frames_read = 0

    def frames(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(frame_number, RGB uint8 HWC)`` for each sampled frame, in order."""
        import av  # imported here: image-only runs never need FFmpeg loaded in their workers

        try:
            container = av.open(str(self.path))
        except FileNotFoundError:
            self.failure = "file not found"
            return
        # FFmpeg reports damaged files with many exception types (av.error.*, OSError, ValueError, ...); one bad
        # video must become its failure entry, not end the run, so this boundary catches Exception.
        except Exception as exc:  # noqa: BLE001
            self.failure = f"cannot open video ({type(exc).__name__}: {exc})"
            return
        with container:
            if not container.streams.video:
                self.failure = "no video stream"
                return
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            if not rate:
                self.failure = "unknown frame rate"
                return
            self.frame_rate = float(rate)
            self.creation_time = _creation_time(container.metadata) or _creation_time(stream.metadata)
            declared = stream.frames  # 0 when the container does not say
            step = self.sampling.step(self.frame_rate)
            try:
                for frame in container.decode(stream):
                    number = self.frames_read
                    self.frames_read += 1
                    if number % step == 0:
                        yield number, frame.to_ndarray(format="rgb24")
            except Exception as exc:  # noqa: BLE001  (see above)
                self.incomplete = f"decoding stopped at frame {self.frames_read} ({type(exc).__name__}: {exc})"
            if self.incomplete is None and declared and self.frames_read < declared:
                # FFmpeg ends quietly at the end of a cut file; the container's frame count tells.
                self.incomplete = f"decoded {self.frames_read} of the {declared} frames the container declares"
            if self.frames_read == 0:
                self.failure = self.incomplete or "no frame could be decoded"
                self.incomplete = None


def _creation_time(metadata: dict[str, str]) -> str | None:
    """``creation_time`` (ISO 8601, as FFmpeg reports it) in EXIF's ``YYYY:MM:DD HH:MM:SS`` form."""
    value = metadata.get("creation_time")
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.year < 1971:  # an unset camera clock (MP4's epoch is 1904)
        return None
    return moment.strftime("%Y:%m:%d %H:%M:%S")
