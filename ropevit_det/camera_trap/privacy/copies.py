"""Blurred copies of a results file's images: every image with a person or a vehicle, hidden before it is shared.

:func:`blur_copies` reads MegaDetector-format results and writes, under ``output_dir`` at the same relative
path, a copy of each image with a detection to blur (:mod:`.blur` says which and how). What it promises:

* originals are only read, never written; the output folder may not be the image folder, and an entry whose
  path leads outside the image folder (``..``, an absolute path) makes the run refuse before anything is
  written;
* each copy keeps its EXIF block (orientation set to "as stored", because the boxes are in displayed
  coordinates and the pixels are written as displayed), its ICC profile, and the original's access and
  modification times;
* each copy is written to a temporary file and renamed into place, so an output that exists is complete: a run
  that is stopped and started again skips the copies already made (resumable). The options are kept in
  ``.blur_options.json``; a later run with other options into the same folder is refused, since the copies
  already made would not follow them;
* images without such a detection are left out, copied unchanged (``unblurred="copy"``), or linked
  (``"link"``, for review pages that only need to show them);
* an image whose detection failed is never copied (it may show a person), and neither is a video: each frame of
  a video that carries a detection to blur is written as a blurred picture ``<video>.frame_<N>.jpg``
  (``video_frames.py``); a video that cannot be decoded is listed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from ...errors import UserInputError
from ...utils.atomic_json import write_json_atomic
from ..inputs.exif import EXIF_ORIENTATION_TAG, displayed_size
from ..inputs.video import is_video_file
from ..results.md_format import load_results
from .blur import DEFAULT_BLUR_CATEGORIES, BlurStyle, blur_boxes, boxes_to_blur
from .video_frames import frames_to_blur, write_blurred_frames

__all__ = ["OPTIONS_FILE", "UNBLURRED_MODES", "BlurOptions", "BlurSummary", "blur_copies"]

logger = logging.getLogger(__name__)

OPTIONS_FILE = ".blur_options.json"
UNBLURRED_MODES = ("skip", "copy", "link")
_JPEG_QUALITY = 95


@dataclass
class BlurOptions:
    """What is blurred and what happens to the other images.

    Args:
        categories: detection category names to blur (MegaDetector's ``category_names_to_blur``).
        threshold: detections at or above this confidence are blurred. Lower than a review threshold on purpose:
            a person left visible costs more than a blurred animal.
        style: how a box is hidden.
        unblurred: images without a detection to blur: ``skip``, ``copy`` or ``link`` (a symbolic link).
    """

    categories: Sequence[str] = DEFAULT_BLUR_CATEGORIES
    threshold: float = 0.1
    style: BlurStyle = field(default_factory=BlurStyle)
    unblurred: str = "skip"


@dataclass
class BlurSummary:
    """What a run did, and what it could not do (the lists hold results paths)."""

    output_dir: Path
    blurred: int = 0
    boxes: int = 0
    unblurred: int = 0  # copied or linked
    already_done: int = 0
    missing: list[str] = field(default_factory=list)
    failed_not_copied: list[str] = field(default_factory=list)
    videos_not_blurred: list[str] = field(default_factory=list)
    videos_with_detections: int = 0  # videos whose frames with a detection were written blurred
    video_frames: int = 0  # blurred pictures of video frames


def _relative(file: str) -> Path | None:
    """The entry's path as a relative path that stays inside its root, else None."""
    path = Path(file.replace("\\", "/"))
    if path.is_absolute() or path.drive:
        return None
    parts = os.path.normpath(path).split(os.sep)
    if not parts or parts[0] in ("..", "") or parts == ["."]:
        return None
    return Path(*parts)


def _check_options(output_dir: Path, record: Mapping[str, Any]) -> None:
    path = output_dir / OPTIONS_FILE
    if path.is_file():
        before = json.loads(path.read_text(encoding="utf-8"))
        if before != record:
            raise ValueError(
                f"{output_dir} holds copies blurred with other options ({before}); use a new output "
                "folder, or the same options to resume"
            )
    else:
        write_json_atomic(path, record, indent=1)


def _atomic_target(dst: Path) -> str:
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".part")
    os.close(fd)
    return tmp


class _Boxes:
    """The boxes to blur of one entry, once the image's displayed size is known."""

    def __init__(self, entry: Mapping[str, Any], ids: Sequence[str], threshold: float, style: BlurStyle):
        self.entry, self.ids, self.threshold, self.style = entry, ids, threshold, style

    def __call__(self, size: tuple[int, int]) -> list[tuple[float, float, float, float]]:
        return boxes_to_blur(self.entry, self.ids, self.threshold, size)


def _write_blurred(src: Path, dst: Path, boxes_of: _Boxes) -> int:
    """Blur ``src`` into ``dst`` (atomically, times and EXIF kept); returns the number of regions hidden."""
    with Image.open(src) as img:
        fmt = img.format or "JPEG"
        if fmt == "MPO":  # a camera JPEG with a multi-picture block: Pillow names it MPO; write a plain JPEG
            fmt = "JPEG"
        info = dict(img.info)
        exif = img.getexif()
        boxes = boxes_of(displayed_size(img))
        shown = ImageOps.exif_transpose(img)
        if shown.mode not in ("RGB", "L", "RGBA"):
            shown = shown.convert("RGB")
        blurred, regions = blur_boxes(shown, boxes, boxes_of.style)
    if EXIF_ORIENTATION_TAG in exif:
        exif[EXIF_ORIENTATION_TAG] = 1  # the pixels are written as displayed
    save: dict[str, Any] = {"exif": exif.tobytes()} if len(exif) else {}
    if info.get("icc_profile"):
        save["icc_profile"] = info["icc_profile"]
    if fmt == "JPEG":
        save.update(quality=_JPEG_QUALITY, subsampling=0 if _JPEG_QUALITY >= 95 else 2)
        if blurred.mode == "RGBA":
            blurred = blurred.convert("RGB")
    tmp = _atomic_target(dst)
    try:
        blurred.save(tmp, format=fmt, **save)
        stat = src.stat()
        os.utime(tmp, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(regions)


def _write_unblurred(src: Path, dst: Path, mode: str) -> None:
    if mode == "link":
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = _atomic_target(dst)
        os.unlink(tmp)
        os.symlink(src.resolve(), tmp)
        os.replace(tmp, dst)
        return
    tmp = _atomic_target(dst)
    try:
        shutil.copy2(src, tmp)  # contents, times and permission bits
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def blur_copies(
    results: str | Path | Mapping[str, Any],
    image_dir: str | Path,
    output_dir: str | Path,
    options: BlurOptions | None = None,
) -> BlurSummary:
    """Write blurred copies of ``results``' images (see the module docstring).

    Raises:
        ValueError: an option is out of range, a category name is not in the results, the output folder is the
            image folder, an entry's path leads outside ``image_dir``, or ``output_dir`` was made with other
            options.
        FileNotFoundError: ``image_dir`` does not exist.
    """
    options = options or BlurOptions()
    if options.unblurred not in UNBLURRED_MODES:
        raise UserInputError(
            f"must be one of {', '.join(UNBLURRED_MODES)}, got {options.unblurred!r}", argument="unblurred"
        )
    if not 0.0 <= options.threshold <= 1.0:
        raise UserInputError(f"must be in 0..1, got {options.threshold}", argument="threshold")
    data = results if isinstance(results, Mapping) else load_results(results)
    names = {str(name): str(cid) for cid, name in data.get("detection_categories", {}).items()}
    unknown = [c for c in options.categories if c not in names]
    if unknown or not options.categories:
        raise UserInputError(
            f"{unknown or '(none)'} are not detection categories of the results (they have: {', '.join(names)})",
            argument="categories",
        )
    ids = [names[c] for c in options.categories]
    root, out_root = Path(image_dir), Path(output_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    if out_root.resolve() == root.resolve():
        raise ValueError(
            f"the output folder is the image folder {root}: originals are never overwritten; pass another output folder"
        )
    relative = {}
    outside = []
    for entry in data["images"]:
        rel = _relative(str(entry["file"]))
        if rel is None:
            outside.append(str(entry["file"]))
        else:
            relative[entry["file"]] = rel
    if outside:
        raise ValueError(
            f"{len(outside)} results entries lead outside the image folder {root} (e.g. "
            f"{outside[0]!r}); refusing to read or write outside it"
        )
    _check_options(
        out_root,
        {
            "categories": list(options.categories),
            "threshold": options.threshold,
            "style": asdict(options.style),
            "unblurred": options.unblurred,
        },
    )
    summary = BlurSummary(output_dir=out_root)
    for entry in data["images"]:
        file = entry["file"]
        src, dst = root / relative[file], out_root / relative[file]
        boxes_of = _Boxes(entry, ids, options.threshold, options.style)
        if is_video_file(file):
            frames = frames_to_blur(entry, ids, options.threshold)
            if not frames or entry.get("failure") is not None:
                continue
            if not src.is_file():
                summary.missing.append(file)
                continue
            try:
                summary.video_frames += write_blurred_frames(
                    src, dst, frames, ids, options.threshold, options.style, _atomic_target
                )
                summary.videos_with_detections += 1
            except Exception as exc:  # noqa: BLE001  (FFmpeg raises many types for a damaged video)
                summary.videos_not_blurred.append(f"{file} ({type(exc).__name__}: {exc})")
            continue
        if entry.get("failure") is not None or entry.get("detections") is None:
            summary.failed_not_copied.append(file)
            continue
        if not src.is_file():
            summary.missing.append(file)
            continue
        if src.resolve() == dst.resolve():
            raise ValueError(f"{dst} would overwrite its original; pass another output folder")
        to_blur = bool(boxes_of((1, 1)))
        if dst.is_file() or dst.is_symlink():
            summary.already_done += 1
            continue
        if to_blur:
            summary.boxes += _write_blurred(src, dst, boxes_of)
            summary.blurred += 1
        elif options.unblurred != "skip":
            _write_unblurred(src, dst, options.unblurred)
            summary.unblurred += 1
    if summary.videos_not_blurred:
        logger.warning(
            "%d videos with a detection to blur could not be decoded: look at them before sharing (e.g. %s)",
            len(summary.videos_not_blurred),
            summary.videos_not_blurred[0],
        )
    if summary.failed_not_copied:
        logger.warning(
            "%d images whose detection failed were not copied: they may show a person (e.g. %s)",
            len(summary.failed_not_copied),
            summary.failed_not_copied[0],
        )
    return summary
