"""Which files a batch run reads: the inputs of a folder, list, glob or file, relative to their root.

Files that are neither images nor videos are skipped (and counted); the relative paths become the ``file`` of
each results entry, with forward slashes whatever the OS.
"""
from __future__ import annotations

import glob
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .video import VIDEO_EXTENSIONS, is_video_file
from ...errors import UserInputError

logger = logging.getLogger(__name__)

# The still-image formats camera traps, Timelapse and MegaDetector handle (MD's own list plus webp).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp"})
_GLOB_CHARS = set("*?[")


class InputRootError(UserInputError):
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
