"""What DataLoader workers hand the inference loop: decoded, resized detector inputs for images and video frames.

Images and the sampled frames of videos go through the same workers and the same batches. A video is
read by one worker from start to end (frames of inter-coded video cannot be decoded out of order cheaply),
which yields one :class:`PreparedItem` per sampled frame and then an end-of-video item that carries what
the entry needs (frame rate, capture time, failure or early end). Worker ``w`` of ``W`` takes the files
``w, w + W, ...``; the DataLoader takes from the workers in turn, so images still arrive in input order.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch.utils.data

from ...engine.predictor import InputSpec
from ..inputs.decoding import DEFAULT_MAX_PIXELS, read_image_rgb
from ..inputs.video import FrameSampling, VideoReader, is_video_file

__all__ = ["DetectorInputDataset", "PreparedItem", "VideoEnd", "make_input_loader"]


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
    """

    def __init__(self, root: str | os.PathLike, files: Sequence[str], spec: InputSpec, *, keep_image: bool,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS, sampling: FrameSampling = FrameSampling()):
        self.root = Path(root)
        self.files = list(files)
        self.spec = spec
        self.keep_image = keep_image
        self.max_pixels = max_pixels
        self.sampling = sampling

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[PreparedItem]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        for rel in self.files[worker::workers]:
            if is_video_file(rel):
                yield from self._video(rel)
            else:
                yield self._image(rel)

    def _prepared(self, rel: str, image: np.ndarray, hw: tuple[int, int], **fields: Any) -> PreparedItem:
        # Tensors (not numpy arrays) cross from worker to main process through shared memory, not a pipe.
        kept = torch.from_numpy(image) if self.keep_image else None
        return PreparedItem(rel, None, hw, self.spec(image, hw), kept, **fields)

    def _image(self, rel: str) -> PreparedItem:
        loaded = read_image_rgb(self.root / rel, self.max_pixels)
        if loaded.image is None:
            return PreparedItem(rel, loaded.failure, None, None, None)
        return self._prepared(rel, loaded.image, loaded.original_hw, datetime=loaded.datetime)

    def _video(self, rel: str) -> Iterator[PreparedItem]:
        reader = VideoReader(self.root / rel, self.sampling)
        for number, frame in reader.frames():
            yield self._prepared(rel, frame, frame.shape[:2], frame_number=number)
        end = VideoEnd(reader.frame_rate, reader.frames_read, reader.failure, reader.incomplete)
        yield PreparedItem(rel, reader.failure, None, None, None, datetime=reader.creation_time, video_end=end)


def _as_is(item: PreparedItem) -> PreparedItem:
    # The default for unbatched items, default_convert, would turn tuples such as original_hw into lists.
    return item


def make_input_loader(dataset: DetectorInputDataset, batch_size: int, num_workers: int) -> torch.utils.data.DataLoader:
    """Single items from ``num_workers`` decoding processes; the loop batches them (videos yield many)."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=None,  # items, not batches: a video yields a variable number of them
        collate_fn=_as_is,
        num_workers=num_workers,
        # Two batches ahead per worker keeps the model fed; more only holds more decoded frames in memory.
        prefetch_factor=2 * batch_size if num_workers > 0 else None,
    )
