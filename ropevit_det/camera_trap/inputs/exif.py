"""What a camera-trap image's header says: its size as displayed (EXIF orientation) and its capture time.

The one home for EXIF reading; the dataset loader (``data/cct.py``), the results converters and the inference
reader (``inputs/decoding.py``) all ask here. Pillow's ``Image.open`` is lazy: it parses the header and the EXIF
block only, so both questions are answered without decoding pixels.
"""

from __future__ import annotations

import os
from datetime import datetime

from PIL import Image

__all__ = ["EXIF_DATETIME_FORMAT", "capture_datetime", "displayed_size", "image_size_from_header"]

# EXIF orientations that swap width and height (the image is shown rotated by 90 or 270 degrees).
TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})
EXIF_ORIENTATION_TAG = 0x0112
_EXIF_IFD = 0x8769  # the sub-directory holding the capture-time tags
_DATETIME_ORIGINAL = 0x9003
# EXIF's own text form; MegaDetector's --include_image_timestamp writes it unchanged as "datetime".
EXIF_DATETIME_FORMAT = "%Y:%m:%d %H:%M:%S"


def displayed_size(img: Image.Image) -> tuple[int, int]:
    """``(width, height)`` of an opened image as a viewer shows it (EXIF orientation applied)."""
    width, height = img.size
    if img.getexif().get(EXIF_ORIENTATION_TAG) in TRANSPOSING_ORIENTATIONS:
        return height, width
    return width, height


def image_size_from_header(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` as a viewer shows the image, read from the file header without decoding pixels."""
    with Image.open(path) as img:
        return displayed_size(img)


def capture_datetime(img: Image.Image) -> str | None:
    """EXIF ``DateTimeOriginal`` of an opened image as ``"YYYY:MM:DD HH:MM:SS"``, or None.

    None when the tag is absent or is not a valid time (cameras with a flat clock battery write
    ``"0000:00:00 00:00:00"``); a wrong time in the results would be worse than none, since sequences
    are formed from it.
    """
    value = img.getexif().get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL)
    if not isinstance(value, str):
        return None
    value = value.strip("\x00 ")
    try:
        datetime.strptime(value, EXIF_DATETIME_FORMAT)
    except ValueError:
        return None
    return value
