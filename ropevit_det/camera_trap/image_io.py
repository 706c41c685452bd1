"""Robust image input for batch inference over camera-trap folders.

A 500,000-frame folder always holds some broken files (cards pulled mid-write, zero-byte files, thumbnails,
``.DS_Store``). One bad file must become a ``failure`` entry in the results, never stop the run, so
:func:`read_image_rgb` returns a failure string instead of raising. Pixels come back as the image is *shown*:
EXIF orientation applied, every mode (grayscale, CMYK, RGBA, palette, 16-bit) converted to 8-bit RGB, so that
normalised boxes refer to what Timelapse displays.
"""
from __future__ import annotations

import glob
import logging
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageFile, ImageOps

from .exif import capture_datetime, displayed_size
from .video import VIDEO_EXTENSIONS, is_video_file

logger = logging.getLogger(__name__)

# The still-image formats camera traps, Timelapse and MegaDetector handle (MD's own list plus webp).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp"})
# Larger images are decoded at reduced size (JPEG draft mode: the decoder itself scales by 1/2, 1/4 or 1/8,
# so memory stays bounded) and then resized to this many pixels. 64 MP covers every camera trap on the
# market at full resolution; detectors resize to about 1 MP anyway, so nothing the model sees is lost.
DEFAULT_MAX_PIXELS = 64_000_000
_GLOB_CHARS = set("*?[")


class InputRootError(ValueError):
    """The input root is not a folder, or does not hold every input (``infer --input-root``)."""


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether the extension is one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


@dataclass
class InputListing:
    """Images to process: ``root`` plus sorted forward-slash paths relative to it, and what was skipped."""

    root: Path
    files: list[str]
    skipped: list[str] = field(default_factory=list)


def scan_inputs(path: str | os.PathLike, root: str | os.PathLike | None = None) -> InputListing:
    """List the images and videos behind an input argument.

    Args:
        path: a folder (searched recursively; hidden files and folders skipped), a ``.txt`` file with one
            path per line (relative lines are relative to the text file's folder; ``#`` starts a comment;
            listed files that do not exist are kept, so they become "file not found" failure entries),
            a glob pattern (``**`` allowed), or a single image file.
        root: the folder that the ``files`` paths are relative to (``infer --input-root``); every input must
            lie under it. Default: the folder itself, the common folder of a list's paths, the folder part of
            a glob before its first wildcard, or a single file's folder.

    Returns:
        An :class:`InputListing`. ``files`` (images and videos) are relative to ``root`` with forward slashes,
        as MD results files want them; ``skipped`` are the other paths left out (by extension).

    Raises:
        InputRootError: ``root`` is not a folder, or some input lies outside it.
        ValueError: a ``.txt`` list is empty.
        FileNotFoundError: nothing matches.
    """
    default_root, candidates = _input_candidates(os.fspath(path))
    return _split_images(_checked_root(root, candidates) or default_root, candidates)


def _input_candidates(text: str) -> tuple[Path, list[str]]:
    """``(default root, absolute paths)`` behind an input argument (see :func:`scan_inputs`)."""
    p = Path(text)
    if p.is_dir():
        folder = p.resolve()
        candidates = []
        for dirpath, dirnames, filenames in os.walk(folder):
            # Hidden folders hold tool state (.thumbnails, .Trash, Timelapse backups), not camera frames.
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            candidates.extend(os.path.join(dirpath, f) for f in filenames if not f.startswith("."))
        return folder, candidates
    if p.is_file() and p.suffix.lower() == ".txt":
        base = p.resolve().parent
        candidates = []
        for line in p.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                candidates.append(_absolute(base / line))
        if not candidates:
            raise ValueError(f"input list {p} holds no paths")
        return Path(os.path.commonpath([os.path.dirname(c) for c in candidates])), candidates
    if p.is_file():
        candidates = [_absolute(p)]
        return Path(candidates[0]).parent, candidates
    if _GLOB_CHARS & set(text):
        matches = [m for m in glob.glob(text, recursive=True) if os.path.isfile(m)]
        if not matches:
            raise FileNotFoundError(f"the pattern {text!r} matches no files")
        # The root is the folder part before the first wildcard, so relative paths keep their sub-folders.
        fixed = []
        for part in Path(text).parts:
            if _GLOB_CHARS & set(part):
                break
            fixed.append(part)
        return (Path(*fixed).resolve() if fixed else Path.cwd()), [_absolute(m) for m in matches]
    raise FileNotFoundError(f"input {text!r} is neither a folder, a .txt list, an image file nor a glob that matches")


def list_inputs(path: str | os.PathLike, root: str | os.PathLike | None = None) -> tuple[Path, list[str]]:
    """``(root, relative image paths)`` for a folder, ``.txt`` list, glob or file; skipped files are logged.

    See :func:`scan_inputs` for the rules and ``root``.
    """
    listing = scan_inputs(path, root)
    if listing.skipped:
        logger.warning("skipped %d non-image files (extension not in %s), e.g. %s", len(listing.skipped),
                       sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS), ", ".join(listing.skipped[:3]))
    return listing.root, listing.files


def _absolute(path: str | os.PathLike) -> str:
    """The absolute path with its folders resolved but the file name kept as written.

    A listed file that is a symbolic link keeps its own name (and so its place under the root): resolving
    it too would put a linked frame under its target's folder, outside the card it was listed from.
    """
    path = Path(os.path.abspath(path))
    return str(path.parent.resolve() / path.name)


def _checked_root(root: str | os.PathLike | None, absolute_paths: Sequence[str]) -> Path | None:
    """``root`` resolved, after checking that every path lies under it; None when no root was given."""
    if root is None:
        return None
    folder = Path(root).resolve()
    if not folder.is_dir():
        raise InputRootError(f"input root {os.fspath(root)!r} is not a folder; give the folder that the "
                                "results' file paths are relative to (the input folder of the first run)")
    outside = [p for p in absolute_paths if os.path.commonpath([folder, p]) != str(folder)]
    if outside:
        raise InputRootError(f"{len(outside)} of {len(absolute_paths)} inputs are not under the input root {folder} "
                         f"(e.g. {', '.join(outside[:3])}); give a root that holds them all, such as the input "
                         "folder of the first run")
    return folder


def _split_images(root: Path, absolute_paths: Sequence[str]) -> InputListing:
    files, skipped = [], []
    for abs_path in absolute_paths:
        rel = Path(os.path.relpath(abs_path, root)).as_posix()
        (files if is_image_file(rel) or is_video_file(rel) else skipped).append(rel)
    if not files:
        raise FileNotFoundError(f"no image or video files under {root} (skipped {len(skipped)} other files; "
                                f"recognised extensions: {sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS)})")
    return InputListing(root, sorted(set(files)), sorted(skipped))


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


def read_image_rgb(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> ImageReadResult:
    """Read an image as displayed, as 8-bit RGB, without raising on bad files.

    Args:
        path: the image file.
        max_pixels: images with more pixels are decoded at reduced size (JPEG draft) and resized to at most
            this many pixels; None disables the guard. Pillow's own decompression-bomb limit still applies.

    Returns:
        :class:`ImageReadResult`. ``failure`` names the problem ("truncated", "cannot identify image file",
        "decompression bomb", ...) when the file cannot be read.
    """
    try:
        with truncated_images_refused(), Image.open(path) as img:
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
