"""Sequence-level smoothing of species labels, through MegaDetector's ``classification_postprocessing``.

A burst of frames shows one animal; a classifier that calls it a deer in nine frames and an elk in one is
wrong once. MegaDetector's ``smooth_classification_results_sequence_level`` rewrites such outliers to the
sequence's dominant label. It needs the sequences; they come from

* a CCT file's ``seq_id`` (files matched to the results as our metrics match them), or
* the capture times we write (``datetime``, EXIF's ``DateTimeOriginal``), cut into sequences per camera
  folder wherever two frames are more than ``interval_seconds`` apart (MegaDetector's ``create_sequences``).

The Camtrap DP export (:mod:`.camtrapdp.events`) forms its events with the same two functions, a camera being a
deployment there.
"""

from __future__ import annotations

import contextlib
import copy
import io
import posixpath
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..data.cct import read_cct_json
from ..data.matching import TrailingPathMatcher
from .md_package import import_md

__all__ = ["sequences_from_capture_times", "sequences_from_cct", "smooth_sequences"]


def sequences_from_capture_times(
    results: Mapping[str, Any], *, interval_seconds: float = 60.0, camera_of: Callable[[str], str] = posixpath.dirname
) -> list[dict[str, Any]]:
    """``[{"file_name", "seq_id"}, ...]`` for the results' images that have a ``datetime``; the camera of an
    image is ``camera_of(its file)``, by default its folder (frames of two cameras never share a sequence).
    Images without a capture time are left out (they are not smoothed)."""
    images = [
        {"file_name": e["file"], "datetime": e["datetime"], "location": camera_of(e["file"])}
        for e in results["images"]
        if e.get("datetime")
    ]
    if not images:
        return []
    cct_utils = import_md("data_management.cct_json_utils")
    options = cct_utils.SequenceOptions()
    options.episode_interval_seconds = float(interval_seconds)
    with contextlib.redirect_stdout(io.StringIO()):
        cct_utils.create_sequences(images, options)
    return [{"file_name": im["file_name"], "seq_id": im["seq_id"]} for im in images if im.get("seq_id")]


def sequences_from_cct(cct_file: str | Path, results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``[{"file_name", "seq_id"}, ...]`` from a CCT file's ``seq_id``, with the results' spelling of each path.

    Raises:
        ValueError: no result matches an image of the CCT file that has a ``seq_id``.
    """
    data = read_cct_json(cct_file)
    seq_of = {im["file_name"]: str(im["seq_id"]) for im in data["images"] if im.get("seq_id") is not None}
    found, report = TrailingPathMatcher(seq_of).match_all(e["file"] for e in results["images"])
    if not found:
        raise ValueError(f"no result matches an image with a seq_id in {cct_file}: {report.describe('results')}")
    return [{"file_name": f, "seq_id": seq_of[g]} for f, g in found.items()]


def smooth_sequences(
    results: Mapping[str, Any],
    sequences: list[dict[str, Any]],
    *,
    classification_threshold: float = 0.5,
    detection_threshold: float = 0.15,
    quiet: bool = True,
) -> dict[str, Any]:
    """A copy of ``results`` whose species labels are smoothed per sequence.

    Args:
        results: an MD results dict with ``classification_categories``.
        sequences: ``[{"file_name": results path, "seq_id": ...}, ...]``.
        classification_threshold, detection_threshold: labels / detections below these are neither counted
            nor changed (MegaDetector's options of the same meaning).

    MegaDetector keeps only the top label of each classified detection (the label it may have changed). Its
    ``pre_smoothing_description`` is written only for files with ``classification_category_descriptions``,
    which ours do not carry, so the top-k alternatives are gone from the output.
    """
    if not results.get("classification_categories"):
        raise ValueError("the results carry no classification_categories: there are no species labels to smooth")
    postprocessing = import_md("postprocessing.classification_postprocessing")
    options = postprocessing.ClassificationSmoothingOptions()
    options.classification_confidence_threshold = classification_threshold
    options.detection_confidence_threshold = detection_threshold
    names = set(results["detection_categories"].values())
    # MegaDetector smooths "animal" detections by default; a detector with other class names smooths all.
    options.detection_category_names_to_smooth = ["animal"] if "animal" in names else None
    options.modify_in_place = True
    data = copy.deepcopy(dict(results))
    with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
        return postprocessing.smooth_classification_results_sequence_level(data, sequences, None, options)
