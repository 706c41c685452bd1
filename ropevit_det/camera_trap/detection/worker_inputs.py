"""What DataLoader workers hand the inference loop: decoded, resized detector inputs for images and video frames.

Images and the sampled frames of videos go through the same workers and the same batches. A video is
read by one worker from start to end (frames of inter-coded video cannot be decoded out of order cheaply),
which yields one :class:`PreparedItem` per sampled frame and then an end-of-video item that carries what
the entry needs (frame rate, capture time, failure or early end). Worker ``w`` of ``W`` takes the files
``w, w + W, ...``; the DataLoader takes from the workers in turn, so images still arrive in input order.

Whatever goes wrong with one file in a worker (decoding, resizing an image whose short side rounds to 0, a
read that hangs past ``read_timeout``) becomes that file's failure item, never an exception that ends the
loader. A worker that dies outright (a crash in a native decoder) cannot say so itself: each worker writes the
index of the file it is on into :attr:`DetectorInputDataset.in_progress`, shared memory that the main process
reads after the loader reported the death (:func:`files_in_progress`).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch.utils.data

from ...engine.predictor import InputSpec
from ..inputs.decoding import DEFAULT_MAX_PIXELS, read_image_rgb
from ..inputs.read_guard import DEFAULT_READ_TIMEOUT, check_regular_file, read_deadline
from ..inputs.video import FrameSampling, VideoReader, is_video_file

__all__ = ["DetectorInputDataset", "PreparedItem", "VideoEnd", "files_in_progress", "make_input_loader"]


class VideoEnd(NamedTuple):
    """The end of one video's frames: what its MD entry needs besides the detections."""

    frame_rate: float
    frames_read: int
    failure: str | None
    incomplete: str | None


class PreparedItem(NamedTuple):
    """One image, one video frame, or the end of a video, as a DataLoader worker hands it over."""

    rel_path: str
    failure: str | None
    original_hw: tuple[int, int] | None  # displayed size (boxes are reported in it)
    model_input: dict[str, Any] | None
    image: torch.Tensor | None  # decoded RGB HWC uint8 (maybe downscaled), only when crops or renders need it
    datetime: str | None = None  # capture time: EXIF DateTimeOriginal, or the video container's creation time
    frame_number: int | None = None  # set for video frames
    video_end: VideoEnd | None = None  # set on the item closing a video

    @property
    def is_frame(self) -> bool:
        return self.frame_number is not None


class DetectorInputDataset(torch.utils.data.IterableDataset):
    """Decode images and sampled video frames and prepare the detector input, in DataLoader workers.

    Args:
        root: folder the relative paths start from.
        files: relative paths of images and videos (minus those a resumed run already did).
        spec: how to make the detector input.
        keep_image: also return the decoded image (for species crops and rendering).
        max_pixels: see ``inputs.decoding.read_image_rgb``.
        sampling: which frames of videos to detect.
        read_timeout: seconds one image may take to read and prepare before it becomes a failure (None: no
            limit; see ``inputs.read_guard.read_deadline``).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        files: Sequence[str],
        spec: InputSpec,
        *,
        keep_image: bool,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        sampling: FrameSampling = FrameSampling(),
        read_timeout: float | None = DEFAULT_READ_TIMEOUT,
    ):
        self.root = Path(root)
        self.files = list(files)
        self.spec = spec
        self.keep_image = keep_image
        self.max_pixels = max_pixels
        self.sampling = sampling
        self.read_timeout = read_timeout
        # Per worker, the index in ``files`` of the file it is reading (-1: none); set by make_input_loader.
        self.in_progress: Any = None

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[PreparedItem]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        for index in range(worker, len(self.files), workers):
            rel = self.files[index]
            if self.in_progress is not None:
                self.in_progress[worker] = index
            if is_video_file(rel):
                yield from self._video(rel)
            else:
                yield self._image(rel)
        if self.in_progress is not None:
            self.in_progress[worker] = -1

    def _prepared(self, rel: str, image: np.ndarray, hw: tuple[int, int], **fields: Any) -> PreparedItem:
        # Tensors (not numpy arrays) cross from worker to main process through shared memory, not a pipe.
        kept = torch.from_numpy(image) if self.keep_image else None
        return PreparedItem(rel, None, hw, self.spec(image, hw), kept, **fields)

    def _image(self, rel: str) -> PreparedItem:
        # Any error on one file (a resize to a 0-pixel side raises ValueError, a stuck read ReadTimeoutError)
        # must become that file's failure entry: an exception here would end the loader and with it the run,
        # and every --resume would die on the same file.
        size = ""
        try:
            with read_deadline(self.read_timeout):
                loaded = read_image_rgb(self.root / rel, self.max_pixels)
                if loaded.image is None:
                    return PreparedItem(rel, loaded.failure, None, None, None)
                size = f" of {loaded.image.shape[1]}x{loaded.image.shape[0]} pixels"
                return self._prepared(rel, loaded.image, loaded.original_hw, datetime=loaded.datetime)
        except Exception as exc:  # noqa: BLE001
            return PreparedItem(
                rel, f"cannot prepare the image{size} for the detector ({type(exc).__name__}: {exc})", None, None, None
            )

    def _video(self, rel: str) -> Iterator[PreparedItem]:
        reader = VideoReader(self.root / rel, self.sampling)
        try:
            check_regular_file(self.root / rel)  # PyAV would block on a FIFO
            for number, frame in reader.frames():
                yield self._prepared(rel, frame, frame.shape[:2], frame_number=number)
        except Exception as exc:  # noqa: BLE001  (see _image; frames already handed over are dropped with the entry)
            failure = f"cannot read video ({type(exc).__name__}: {exc})"
            yield PreparedItem(
                rel, failure, None, None, None, video_end=VideoEnd(reader.frame_rate, reader.frames_read, failure, None)
            )
            return
        end = VideoEnd(reader.frame_rate, reader.frames_read, reader.failure, reader.incomplete)
        yield PreparedItem(rel, reader.failure, None, None, None, datetime=reader.creation_time, video_end=end)


def _as_is(item: PreparedItem) -> PreparedItem:
    # The default for unbatched items, default_convert, would turn tuples such as original_hw into lists.
    return item


def make_input_loader(dataset: DetectorInputDataset, batch_size: int, num_workers: int) -> torch.utils.data.DataLoader:
    """Single items from ``num_workers`` decoding processes; the loop batches them (videos yield many)."""
    in_progress = multiprocessing.RawArray("q", max(1, num_workers))
    in_progress[:] = [-1] * len(in_progress)
    dataset.in_progress = in_progress  # shared memory, inherited by the workers
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=None,  # items, not batches: a video yields a variable number of them
        collate_fn=_as_is,
        num_workers=num_workers,
        # Two batches ahead per worker keeps the model fed; more only holds more decoded frames in memory.
        prefetch_factor=2 * batch_size if num_workers > 0 else None,
    )


def files_in_progress(dataset: DetectorInputDataset) -> list[str]:
    """The files the loader's workers were on when it stopped (after a worker died: the suspects)."""
    if dataset.in_progress is None:
        return []
    return [dataset.files[i] for i in sorted(set(dataset.in_progress)) if 0 <= i < len(dataset.files)]
