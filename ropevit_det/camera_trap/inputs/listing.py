"""Which files a batch run reads: the inputs of a folder, list, glob or file, relative to their root.

Files that are neither images nor videos are skipped (and counted); the relative paths become the ``file`` of
each results entry, with forward slashes whatever the OS.
"""

from __future__ import annotations

import glob
import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import UserInputError
from .list_file import LIST_FILE_SUFFIXES, read_list_file
from .video import VIDEO_EXTENSIONS, is_video_file

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
    not_regular: list[str] = field(default_factory=list)  # FIFOs, sockets, devices (any extension)
    unlisted: list[str] = field(default_factory=list)  # "folder (reason)" for folders that could not be listed


def scan_inputs(path: str | os.PathLike, root: str | os.PathLike | None = None) -> InputListing:
    """List the images and videos behind an input argument.

    Args:
        path: a folder (searched recursively; hidden files and folders skipped), a list file (``.txt``: one
            path per line, verbatim; ``.json``: a list of paths; see :mod:`.list_file`; relative paths are
            relative to the list's folder; listed files that do not exist are kept, so they become
            "file not found" failure entries),
            a glob pattern (``**`` allowed), or a single image file.
        root: the folder that the ``files`` paths are relative to (``infer --input-root``); every input must
            lie under it. Default: the folder itself, the common folder of a list's paths, the folder part of
            a glob before its first wildcard, or a single file's folder.

    Returns:
        An :class:`InputListing`. ``files`` (images and videos) are relative to ``root`` with forward slashes,
        as MD results files want them; ``skipped`` are the other paths left out (by extension), ``not_regular``
        the FIFOs, sockets and devices left out, ``unlisted`` the folders that could not be listed.

    Raises:
        InputRootError: ``root`` is not a folder, or some input lies outside it.
        ValueError: a list file is empty or malformed.
        FileNotFoundError: nothing matches.
    """
    unlisted: list[str] = []
    not_regular: list[str] = []
    default_root, candidates = _input_candidates(os.fspath(path), unlisted, not_regular)
    return _split_images(_checked_root(root, candidates) or default_root, candidates, not_regular, unlisted)


def _walk_folder(folder: Path, unlisted: list[str], not_regular: list[str]) -> list[str]:
    """Every file under ``folder`` (hidden files and folders skipped), like ``os.walk`` but telling what it missed.

    ``os.walk`` leaves out a folder it cannot list without a word (its images would be missing from the results
    with nothing to say so), so a folder that raises is added to ``unlisted`` instead. FIFOs, sockets and
    devices go to ``not_regular``; broken links stay in the files (they become "file not found" entries).
    """
    files: list[str] = []
    stack = [os.fspath(folder)]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as it:
                entries = list(it)
        except OSError as exc:
            unlisted.append(f"{current} ({exc.strerror or exc})")
            continue
        for entry in entries:
            # Hidden folders hold tool state (.thumbnails, .Trash, Timelapse backups), not camera frames.
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    continue
                if entry.is_file():  # regular file, or a link to one (the type comes free with the listing)
                    files.append(entry.path)
                elif entry.is_dir():
                    continue  # a link to a folder: os.walk does not follow those either
                elif _regular_or_missing(entry.path):
                    files.append(entry.path)  # a broken link
                else:
                    not_regular.append(entry.path)
            except OSError:
                files.append(entry.path)
    return files


def _input_candidates(text: str, unlisted: list[str], not_regular: list[str]) -> tuple[Path, list[str]]:
    """``(default root, absolute paths)`` behind an input argument (see :func:`scan_inputs`).

    Folders that cannot be listed are added to ``unlisted`` as ``"folder (reason)"``; FIFOs, sockets and
    devices (a FIFO named .jpg would block the reader for ever) to ``not_regular``, not to the paths.
    """
    p = Path(text)
    if p.is_dir():
        folder = p.resolve()
        return folder, _walk_folder(folder, unlisted, not_regular)
    if p.is_file() and p.suffix.lower() in LIST_FILE_SUFFIXES:
        base = p.resolve().parent
        candidates = []
        for name in read_list_file(p):
            path = _absolute(base / name)
            (candidates if _regular_or_missing(path) else not_regular).append(path)
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
    raise FileNotFoundError(
        f"input {text!r} is neither a folder, a .txt or .json list, an image file nor a glob that matches"
    )


def list_inputs(path: str | os.PathLike, root: str | os.PathLike | None = None) -> tuple[Path, list[str]]:
    """``(root, relative image paths)`` for a folder, list file, glob or file; what was skipped is logged.

    See :func:`scan_inputs` for the rules and ``root``.
    """
    listing = scan_inputs(path, root)
    if listing.not_regular:
        logger.warning(
            "skipped %d files that are not regular files (FIFOs, sockets, devices), e.g. %s",
            len(listing.not_regular),
            ", ".join(listing.not_regular[:3]),
        )
    if listing.unlisted:
        logger.warning(
            "%d folders could not be listed; their images are not in this run: %s",
            len(listing.unlisted),
            ", ".join(listing.unlisted[:5]),
        )
    if listing.skipped:
        logger.warning(
            "skipped %d non-image files (extension not in %s), e.g. %s",
            len(listing.skipped),
            sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS),
            ", ".join(listing.skipped[:3]),
        )
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
        raise InputRootError(
            f"input root {os.fspath(root)!r} is not a folder; give the folder that the "
            "results' file paths are relative to (the input folder of the first run)"
        )
    outside = [p for p in absolute_paths if os.path.commonpath([folder, p]) != str(folder)]
    if outside:
        raise InputRootError(
            f"{len(outside)} of {len(absolute_paths)} inputs are not under the input root {folder} "
            f"(e.g. {', '.join(outside[:3])}); give a root that holds them all, such as the input "
            "folder of the first run"
        )
    return folder


def _split_images(
    root: Path, absolute_paths: Sequence[str], not_regular_paths: Sequence[str] = (), unlisted: Sequence[str] = ()
) -> InputListing:
    files, skipped = [], []
    for abs_path in absolute_paths:
        rel = Path(os.path.relpath(abs_path, root)).as_posix()
        (files if is_image_file(rel) or is_video_file(rel) else skipped).append(rel)
    not_regular = [Path(os.path.relpath(p, root)).as_posix() for p in not_regular_paths]
    if not files:
        cannot = f"; {len(unlisted)} folders could not be listed: {', '.join(unlisted[:3])}" if unlisted else ""
        raise FileNotFoundError(
            f"no image or video files under {root} (skipped {len(skipped)} other files and "
            f"{len(not_regular)} that are not regular files{cannot}; "
            f"recognised extensions: {sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS)})"
        )
    return InputListing(root, sorted(set(files)), sorted(skipped), sorted(not_regular), list(unlisted))


def _regular_or_missing(path: str) -> bool:
    """False only for a file that exists and is not a regular file (links followed).

    Missing files and broken links stay in: they become "file not found" failure entries, as a list file's
    missing lines do.
    """
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return True
