"""Where the images of a COCO Camera Traps file are on this machine: ``file_name`` values rewritten by a prefix,
then matched by their trailing folders to the files under the image root."""

from __future__ import annotations

import os
from pathlib import Path

from .matching import MatchReport, TrailingPathMatcher, strip_path_prefix


def resolve_image_paths(
    file_names: list[str],
    image_root: str | Path,
    *,
    strip_prefix: str | None = None,
    add_prefix: str = "",
    match_basename: bool = True,
) -> tuple[dict[str, Path], MatchReport]:
    """Map CCT ``file_name`` values to files under ``image_root``.

    Each name is rewritten (``strip_prefix`` removed, ``add_prefix`` put in front) and looked up under
    ``image_root``. Names still missing are, with ``match_basename``, matched to the file under ``image_root``
    with the same file name and the longest shared run of parent folders.

    Args:
        file_names: ``file_name`` values from the CCT file.
        image_root: folder the images live in.
        strip_prefix: leading path to drop from every ``file_name`` (e.g. the original server's folder).
        add_prefix: text to put in front after stripping (a sub-folder like ``"images/"`` or a name prefix).
        match_basename: search ``image_root`` recursively for names that are not found directly.

    Returns:
        ``({file_name: local path}, report)``.
    """
    root = Path(image_root)
    if not root.is_dir():
        raise FileNotFoundError(f"image root {root} is not a folder")
    found: dict[str, Path] = {}
    report = MatchReport()
    missing: dict[str, str] = {}  # original file_name -> rewritten relative path
    for name in file_names:
        report.total += 1
        rel = add_prefix + strip_path_prefix(name, strip_prefix)
        candidate = root / rel
        if candidate.is_file():
            found[name] = candidate
            report.exact += 1
        else:
            missing[name] = rel
    if missing and match_basename:
        local_files = [
            os.path.relpath(os.path.join(dirpath, f), root) for dirpath, _dirs, files in os.walk(root) for f in files
        ]
        matcher = TrailingPathMatcher(local_files)
        for name, rel in missing.items():
            hit, ambiguous = matcher.match(rel)
            if hit is not None:
                found[name] = root / hit
                report.by_suffix += 1
            elif ambiguous:
                report.ambiguous.append(name)
            else:
                report.unmatched.append(name)
        if report.unmatched:
            report.hint = _prefix_hint(missing[report.unmatched[0]], local_files)
    else:
        report.unmatched.extend(missing)
    return found, report


def _prefix_hint(wanted: str, local_files: list[str]) -> str:
    """Suggest an ``add_prefix`` when a local file name ends with the wanted name (``serengeti_<name>``)."""
    wanted_name = Path(wanted).name
    for local in sorted(local_files):
        local_posix = Path(local).as_posix()
        if local_posix.endswith(wanted_name) and local_posix != wanted_name:
            prefix = local_posix[: -len(wanted_name)]
            return (
                f"local file {local_posix!r} ends with the wanted name {wanted_name!r}: "
                f"strip the folders of file_name (strip_prefix) and use add_prefix={prefix!r}"
            )
    return ""
