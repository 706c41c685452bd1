"""Decoding one camera-trap image as displayed, without stopping a run on a broken file.

A 500,000-frame folder always holds some broken files (cards pulled mid-write, zero-byte files, thumbnails,
``.DS_Store``). One bad file must become a ``failure`` entry in the results, never stop the run, so
:func:`read_image_rgb` returns a failure string instead of raising. Pixels come back as the image is *shown*:
EXIF orientation applied, every mode (grayscale, CMYK, RGBA, palette, 16-bit) converted to 8-bit RGB, so that
normalised boxes refer to what Timelapse displays.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO, NamedTuple

import numpy as np
from PIL import Image, ImageFile, ImageOps

from .exif import capture_datetime, displayed_size
from .read_guard import NotRegularFileError, ReadTimeoutError, open_regular_file

logger = logging.getLogger(__name__)

# Larger images are decoded at reduced size (JPEG draft mode: the decoder itself scales by 1/2, 1/4 or 1/8,
# so memory stays bounded) and then resized to this many pixels. 64 MP covers every camera trap on the
# market at full resolution; detectors resize to about 1 MP anyway, so nothing the model sees is lost.
DEFAULT_MAX_PIXELS = 64_000_000


class ImageReadResult(NamedTuple):
    """Outcome of reading one image; exactly one of ``image`` / ``failure`` is set."""

    image: np.ndarray | None  # RGB uint8, HWC, as displayed (EXIF applied), maybe downscaled
    failure: str | None
    original_hw: tuple[int, int] | None  # displayed size before any downscaling
    datetime: str | None = None  # EXIF DateTimeOriginal, "YYYY:MM:DD HH:MM:SS"


@contextmanager
def truncated_images_refused() -> Iterator[None]:
    """Decode with Pillow's ``LOAD_TRUNCATED_IMAGES`` off, whatever the process set it to.

    The flag is process-wide, and megadetector's ``visualization_utils`` switches it on when imported (our review
    and repeat-detection tools import it). A cut file must still come back as a failure, not as a grey-bottomed
    image with made-up detections, so the reader turns it off for its own decode and restores it after.
    """
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


@contextmanager
def _opened(path: str | os.PathLike | BinaryIO) -> Iterator[BinaryIO]:
    """A file by path (a regular file only, never blocking on a FIFO), or an open binary file as it is."""
    if hasattr(path, "read"):
        yield path
        return
    with open_regular_file(path) as handle:
        yield handle


def read_image_rgb(path: str | os.PathLike | BinaryIO, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> ImageReadResult:
    """Read an image as displayed, as 8-bit RGB, without raising on bad files.

    Args:
        path: the image file, or an open binary file (an upload held in memory).
        max_pixels: images with more pixels are decoded at reduced size (JPEG draft) and resized to at most
            this many pixels; None disables the guard. Pillow's own decompression-bomb limit still applies.

    Returns:
        :class:`ImageReadResult`. ``failure`` names the problem ("truncated", "cannot identify image file",
        "decompression bomb", ...) when the file cannot be read.
    """
    try:
        # Opened without blocking and checked to be a regular file: a FIFO named .jpg must not hang the run.
        with truncated_images_refused(), _opened(path) as handle, Image.open(handle) as img:
            width, height = img.size
            shown_w, shown_h = displayed_size(img)
            original_hw = (shown_h, shown_w)
            taken = capture_datetime(img)
            if max_pixels is not None and width * height > max_pixels and img.format == "JPEG":
                scale = math.sqrt(max_pixels / (width * height))
                img.draft(None, (math.ceil(width * scale), math.ceil(height * scale)))
            img.load()
            rgb = to_rgb(ImageOps.exif_transpose(img))
        if max_pixels is not None and rgb.width * rgb.height > max_pixels:
            scale = math.sqrt(max_pixels / (rgb.width * rgb.height))
            size = (max(1, int(rgb.width * scale)), max(1, int(rgb.height * scale)))
            rgb = rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)
        # np.array (a copy), not np.asarray: a writable array, so torch.from_numpy works without a warning.
        return ImageReadResult(np.array(rgb, dtype=np.uint8), None, original_hw, taken)
    except Image.DecompressionBombError as exc:
        return ImageReadResult(None, f"decompression bomb: {exc}", None)
    except FileNotFoundError:
        return ImageReadResult(None, "file not found", None)
    except (NotRegularFileError, ReadTimeoutError) as exc:
        return ImageReadResult(None, str(exc), None)
    # Decoders (Pillow core and its many plugins) raise all sorts of exception types on damaged data
    # (OSError, SyntaxError, ValueError, struct.error, IndexError, ...). Any of them on one file must become
    # that file's failure entry, not end a run over 500,000 images, so this boundary catches Exception.
    except Exception as exc:  # noqa: BLE001
        return ImageReadResult(None, f"cannot read image ({type(exc).__name__}: {exc})", None)


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB as a viewer would show it.

    16-bit and 32-bit integer images are scaled to 8 bits over their full range (not clipped at 255);
    float images are stretched between their min and max; alpha is dropped (the colour under it is kept).
    """
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return Image.fromarray(_scale_to_uint8(np.asarray(img))).convert("RGB")
    if img.mode in ("P", "PA"):
        # Palette images with transparency must go through RGBA, or Pillow warns and guesses.
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        if img.mode == "RGB":
            return img
    # L, LA, 1, CMYK, RGBA, RGBX, YCbCr, LAB, HSV: Pillow's own converters are right for these.
    return img.convert("RGB")


def _scale_to_uint8(values: np.ndarray) -> np.ndarray:
    """Map high-bit-depth gray values to 0..255 (16-bit range when they fit in it, else their min..max)."""
    if np.issubdtype(values.dtype, np.integer) and values.min() >= 0 and values.max() <= 65535:
        scaled = values.astype(np.float32) * (255.0 / 65535.0)
    else:
        values = values.astype(np.float32)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
