"""An uploaded file to a detector input, decoded exactly as ``infer`` decodes a file, or refused with the reason.

The pixel count is read from the header before anything is decoded, so a small file that claims a huge image
(a decompression bomb) costs nothing. The decode is ``inputs.decoding.read_image_rgb`` on the bytes in memory:
EXIF orientation applied, every mode to 8-bit RGB, truncated files refused, as in a batch run. The client's
file name is used only as the entry's ``file``, never as a path.
"""

from __future__ import annotations

import io
import re
import unicodedata
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from ..camera_trap.inputs.decoding import read_image_rgb, truncated_images_refused
from ..engine.predictor import InputSpec

__all__ = ["Frame", "UploadRejected", "prepare_upload", "safe_file_name"]

_MAX_NAME = 255


class UploadRejected(ValueError):
    """An upload the server will not run: ``status`` is the HTTP status (413 or 422), the message the reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Frame(NamedTuple):
    """One decoded upload, ready for the detector."""

    name: str  # the entry's "file"
    model_input: dict[str, Any]
    original_hw: tuple[int, int]  # displayed size (boxes are normalised by it)
    image: np.ndarray | None  # decoded RGB, kept only for species crops
    datetime: str | None  # EXIF DateTimeOriginal


def safe_file_name(raw: str | None, index: int) -> str:
    """The client's file name as an entry's ``file``: its last path component, printable, at most 255 characters.

    Folders, drive letters and control characters are dropped (a name is a label, not a path); an empty
    result becomes ``image_<index>``.
    """
    name = re.split(r"[\\/]", raw or "")[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    if name in ("", ".", ".."):
        return f"image_{index}"
    return name[:_MAX_NAME]


def prepare_upload(data: bytes, name: str, spec: InputSpec, *, max_pixels: int, keep_image: bool) -> Frame:
    """Decode one upload and prepare its detector input.

    Raises:
        UploadRejected: 413 when the image has more than ``max_pixels`` pixels; 422 when the bytes are empty,
            not an image, corrupt or truncated (the message says which, as ``infer``'s failure entries do).
    """
    if not data:
        raise UploadRejected(422, f"{name}: the upload is empty")
    try:
        with truncated_images_refused(), Image.open(io.BytesIO(data)) as img:
            width, height = img.size  # the header only: nothing is decoded yet
    except Image.DecompressionBombError as exc:
        raise UploadRejected(413, f"{name}: decompression bomb: {exc}") from None
    # Pillow's plugins raise many exception types on data that is not an image of theirs (see decoding.py).
    except Exception as exc:  # noqa: BLE001
        reason = re.sub(r" <_io.BytesIO object at 0x[0-9a-f]+>", "", str(exc))  # the file name is the upload's
        raise UploadRejected(422, f"{name}: not an image ({type(exc).__name__}: {reason})") from None
    if width * height > max_pixels:
        raise UploadRejected(
            413, f"{name}: {width}x{height} is {width * height} pixels, over the server's limit of {max_pixels}"
        )
    loaded = read_image_rgb(io.BytesIO(data), max_pixels=max_pixels)
    if loaded.image is None:
        raise UploadRejected(
            413 if loaded.failure.startswith("decompression bomb") else 422, f"{name}: {loaded.failure}"
        )
    try:
        model_input = spec(loaded.image, loaded.original_hw)
    except Exception as exc:  # noqa: BLE001  (a degenerate shape, e.g. 1 x 60000 pixels, fails the resize)
        raise UploadRejected(
            422,
            f"{name}: {loaded.original_hw[1]}x{loaded.original_hw[0]} pixels cannot be "
            f"resized for the detector ({type(exc).__name__}: {exc})",
        ) from None
    return Frame(name, model_input, loaded.original_hw, loaded.image if keep_image else None, loaded.datetime)
