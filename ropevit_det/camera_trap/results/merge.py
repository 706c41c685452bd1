"""Merge MegaDetector results files of one detector (job-array shards, or runs over different folders).

MegaDetector's ``combine_batch_outputs`` keeps the first entry of a repeated image and the first file's
categories; for shards of one run, either would hide a mistake (overlapping inputs, a different model), so
this merge refuses both and names the files. Given the input list, it also names the images no file holds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ...errors import UserInputError
from .md_format import load_results
from .run_identity import DETECTOR_KEYS, IDENTITY_KEY, identity_differences

__all__ = ["MergeError", "MergeResult", "merge_results"]

# info keys that describe one part, not the merged whole.
_PER_PART_INFO = ("shard", "detection_completion_time")


class MergeError(UserInputError):
    """The files cannot be merged: repeated images, or category maps / detectors that differ."""


@dataclass
class MergeResult:
    """The merged results and what the input list says is missing."""

    data: dict[str, Any]
    unprocessed: list[str] = field(default_factory=list)  # input files no results file holds
    sources: dict[str, str] = field(default_factory=dict)  # image -> results file it came from


def merge_results(
    paths: Sequence[str | os.PathLike], *, expected_files: Sequence[str] | None = None, max_listed: int = 5
) -> MergeResult:
    """Merge MD results files into one (images sorted by file, as MegaDetector writes them).

    Args:
        paths: results files of the same detector, with the same category maps.
        expected_files: relative paths of every input; those in no file are returned as ``unprocessed``.
        max_listed: how many repeated images an error names.

    Raises:
        MergeError: an image in two files, or files whose ``detection_categories``, ``classification_categories``
            or ``info.detector`` differ; the message names the files.
    """
    if not paths:
        raise MergeError("no results files to merge")
    first_path = Path(paths[0])
    first = load_results(first_path)
    sources: dict[str, str] = {}
    images: dict[str, dict[str, Any]] = {}
    repeated: list[str] = []
    classification_categories = first.get("classification_categories")
    for path in map(Path, paths):
        data = first if path == first_path else load_results(path)
        _check_same(first_path, first, path, data, "detection_categories")
        _check_same(first_path, first, path, data, "classification_categories")
        _check_same_detector(first_path, first, path, data)
        classification_categories = classification_categories or data.get("classification_categories")
        for entry in data["images"]:
            file = entry["file"]
            if file in sources:
                repeated.append(f"{file} (in {sources[file]} and {path})")
                continue
            sources[file] = str(path)
            images[file] = entry
    if repeated:
        listed = "; ".join(repeated[:max_listed])
        more = f" and {len(repeated) - max_listed} more" if len(repeated) > max_listed else ""
        raise MergeError(f"{len(repeated)} images are in more than one results file: {listed}{more}")
    info = {k: v for k, v in (first.get("info") or {}).items() if k not in _PER_PART_INFO}
    info["detection_completion_time"] = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    if _identity(first) is not None:  # the detector's identity stays, so that merged files merge again
        info[IDENTITY_KEY] = {**_identity(first), "shard": None}
    merged: dict[str, Any] = {
        "info": info,
        "detection_categories": first["detection_categories"],
        "images": [images[f] for f in sorted(images)],
    }
    if classification_categories is not None:
        merged["classification_categories"] = classification_categories
    unprocessed = [f for f in expected_files if f not in images] if expected_files is not None else []
    return MergeResult(merged, unprocessed, sources)


def _check_same_detector(first_path: Path, first: dict[str, Any], path: Path, data: dict[str, Any]) -> None:
    """By the run identity where both files carry one (weights by content: a renamed copy is the same detector,
    other weights under the same name are not); by ``info.detector`` for files written elsewhere."""
    mine, theirs = _identity(first), _identity(data)
    if mine is not None and theirs is not None:
        differences = identity_differences(theirs, mine, DETECTOR_KEYS)
        if differences:
            raise MergeError(
                f"{path} and {first_path} were written by different detectors "
                f"({'; '.join(differences)}, {path.name} vs {first_path.name}): merge results of one "
                "detector only"
            )
    elif _detector(data) != _detector(first):
        raise MergeError(
            f"{path} was written by detector {_detector(data)!r} and {first_path} "
            f"by {_detector(first)!r}: merge results of one detector only"
        )


def _identity(data: dict[str, Any]) -> dict[str, Any] | None:
    identity = (data.get("info") or {}).get(IDENTITY_KEY)
    return identity if isinstance(identity, dict) else None


def _detector(data: dict[str, Any]) -> Any:
    """``info.detector`` (None where a file has no ``info`` or no detector name)."""
    return (data.get("info") or {}).get("detector")


def _check_same(first_path: Path, first: dict[str, Any], path: Path, data: dict[str, Any], key: str) -> None:
    mine, theirs = first.get(key), data.get(key)
    if key == "classification_categories" and (mine is None or theirs is None):
        return  # a file without species labels merges with one that has them
    if mine != theirs:
        raise MergeError(f"{key} differ: {first_path} has {mine}, {path} has {theirs}")
