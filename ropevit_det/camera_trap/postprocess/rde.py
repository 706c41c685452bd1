"""Repeat-detection elimination (RDE) on our results, through MegaDetector's ``repeat_detections_core``.

A rock or a branch that the detector takes for an animal fires in the same place in thousands of frames of
one camera. MegaDetector's two-step procedure removes it:

1. :func:`find_repeats` groups the images by camera, finds boxes that recur (IoU >= ``iou``) in at least
   ``occurrences`` images, and renders one tile per recurring box into a filtering folder;
2. a person deletes the tiles that show real animals (an animal that sleeps in one spot for hours);
3. :func:`apply_repeats` removes, from every image, the recurring boxes whose tiles are still there.

Cameras are the images' folders, ``folder_levels`` above the leaf (MegaDetector's ``nDirLevelsFromLeaf``), or,
with a CCT file, the images' ``location`` (several card folders of one camera then count together). The
location lookup is a picklable callable object because MegaDetector stores its options, this function
included, in the filtering folder's index (jsonpickle) and reloads them in step 3.

The index is jsonpickle, which MegaDetector decodes with ``jsonpickle.decode``: a crafted index could name any
callable and have it run. Filtering folders travel between reviewers, so :func:`read_filtering_index` parses it
as plain JSON first and refuses every jsonpickle tag except the object classes and tuples that
MegaDetector's own index holds; only a file that passes reaches MegaDetector.

MegaDetector marks a removed box by making its confidence negative; :func:`apply_repeats` drops those boxes
from our original entries instead, so the output keeps our rounding and fields and every confidence stays in
0..1 as the format asks.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import UserInputError
from ...utils.atomic_json import write_json_atomic
from ..data.cct import read_cct_json
from ..data.matching import TrailingPathMatcher, check_relative_paths
from ..results.md_format import load_results
from .md_package import import_md
from .rde_index import INDEX_FILE, read_filtering_index

__all__ = [
    "CameraByLocation",
    "RdeOptions",
    "SuspiciousDetection",
    "apply_repeats",
    "camera_by_location",
    "find_repeats",
]

logger = logging.getLogger(__name__)


class CameraByLocation:
    """``file -> camera``: the CCT ``location`` of a results path, else its folder (MegaDetector's default).

    Args:
        locations: results path (normalised as MegaDetector normalises it) -> location.
    """

    def __init__(self, locations: Mapping[str, str]):
        self.locations = dict(locations)

    def __call__(self, relative_path: str) -> str:
        path = os.path.normpath(relative_path).replace("\\", "/")
        location = self.locations.get(path)
        return f"location_{location}" if location is not None else posixpath.dirname(path)


def camera_by_location(cct_file: str | Path, result_files: Sequence[str]) -> tuple[CameraByLocation, int]:
    """The camera of each result file from a CCT file's ``location`` (files matched as our metrics match them).

    Returns:
        ``(camera function, number of result files that have a location)``.
    """
    data = read_cct_json(cct_file)
    by_name = {image["file_name"]: image for image in data["images"]}
    found, _ = TrailingPathMatcher(by_name).match_all(result_files)
    locations = {
        os.path.normpath(f).replace("\\", "/"): str(by_name[g]["location"])
        for f, g in found.items()
        if by_name[g].get("location") is not None
    }
    return CameraByLocation(locations), len(locations)


@dataclass
class RdeOptions:
    """MegaDetector's ``RepeatDetectionOptions`` that matter to a user (defaults are MegaDetector's).

    Args:
        confidence_min, confidence_max: only detections in this confidence range are compared.
        iou: boxes with at least this IoU are "the same place".
        occurrences: a box seen in at least this many images of one camera is suspicious.
        min_size, max_size: only boxes whose area (fraction of the image) lies in this range are compared;
            big boxes are usually real animals close to the camera.
        folder_levels: cameras are the folders this many levels above the images' own folder.
        cct_file: group by the CCT ``location`` instead of by folder.
        exclude_categories: detection category names never flagged (e.g. ``person``).
        workers: threads for comparing and rendering (0: none).
        quiet: keep MegaDetector's progress output off stdout.
        blur: detection category names (e.g. ``person``) blurred in every tile: tiles are rendered from blurred
            copies in ``blurred_images/`` under ``output_dir`` (see ``review.blurred_mirror``).
    """

    confidence_min: float = 0.1
    confidence_max: float = 1.0
    iou: float = 0.9
    occurrences: int = 20
    min_size: float = 0.0
    max_size: float = 0.2
    folder_levels: int = 0
    cct_file: str | Path | None = None
    exclude_categories: Sequence[str] = ()
    workers: int = 4
    quiet: bool = False
    blur: Sequence[str] = ()


@dataclass(frozen=True)
class SuspiciousDetection:
    """One recurring box and the tile that shows it."""

    tile: Path
    camera: str
    bbox: tuple[float, float, float, float]
    category: str
    images: int


def _quiet(enabled: bool):
    return contextlib.redirect_stdout(io.StringIO()) if enabled else contextlib.nullcontext()


def find_repeats(
    results_file: str | Path, image_dir: str | Path, output_dir: str | Path, options: RdeOptions | None = None
) -> tuple[Path, list[SuspiciousDetection]]:
    """Step 1: find recurring boxes and render their tiles.

    Returns:
        ``(filtering folder, suspicious detections)``; the folder holds one ``.jpg`` tile per detection and
        MegaDetector's ``detectionIndex.json``.

    Raises:
        ValueError: an option is out of range or names an unknown category, or an entry's ``file`` leaves
            ``image_dir`` (absolute, ``..``).
        FileNotFoundError: the first image of the results is not under ``image_dir``.
    """
    options = options or RdeOptions()
    if options.occurrences < 2:
        raise UserInputError(f"must be >= 2, got {options.occurrences}", argument="occurrences")
    if not 0.0 < options.iou <= 1.0:
        raise UserInputError(f"must be in (0, 1], got {options.iou}", argument="iou")
    if options.cct_file is not None and options.folder_levels:
        raise UserInputError(
            "cameras are grouped either by CCT location or by folder levels, not both", argument="folder_levels"
        )
    results = load_results(results_file)
    # MegaDetector reads image_dir/file for every entry and renders tiles from them.
    check_relative_paths([e["file"] for e in results["images"]], source=str(results_file), root=str(image_dir))
    names = {name: cat_id for cat_id, name in results["detection_categories"].items()}
    unknown = [c for c in options.exclude_categories if c not in names]
    if unknown:
        raise UserInputError(
            f"{unknown} are not detection categories of {results_file} ({', '.join(names)})",
            argument="exclude_categories",
        )
    first = next((e["file"] for e in results["images"] if e.get("detections") is not None), None)
    if first is not None and not (Path(image_dir) / first).is_file():
        raise UserInputError(
            f"{Path(image_dir) / first} does not exist: it must be the folder the results' paths start from",
            argument="image_dir",
        )

    if options.blur:
        from .review import blurred_mirror

        image_dir = blurred_mirror(results, image_dir, output_dir, options.blur, options.confidence_min)
    core = import_md("postprocessing.repeat_detection_elimination.repeat_detections_core")
    md = core.RepeatDetectionOptions()
    md.imageBase = str(image_dir)
    md.outputBase = str(output_dir)
    md.confidenceMin, md.confidenceMax = options.confidence_min, options.confidence_max
    md.iouThreshold = options.iou
    md.occurrenceThreshold = options.occurrences
    md.minSuspiciousDetectionSize, md.maxSuspiciousDetectionSize = options.min_size, options.max_size
    md.excludeClasses = [int(names[c]) for c in options.exclude_categories]
    md.nWorkers = max(1, options.workers)
    # Always through MegaDetector's thread pool: its serial comparison path (10.0.28) ends in an
    # UnboundLocalError (it closes a pool it never made). One worker is the serial case.
    md.bParallelizeComparisons, md.parallelizationUsesThreads = True, True
    md.bParallelizeRendering = options.workers > 0
    if options.cct_file is not None:
        md.customDirNameFunction, matched = camera_by_location(options.cct_file, [e["file"] for e in results["images"]])
        logger.info(
            "cameras from %s: %d of %d images have a location", options.cct_file, matched, len(results["images"])
        )
    else:
        md.nDirLevelsFromLeaf = options.folder_levels
    with _quiet(options.quiet):
        found = core.find_repeat_detections(str(results_file), None, md)
    filtering_dir = Path(found.filterFile).parent
    suspicious = []
    cameras = list(found.rows_by_directory)  # MegaDetector's directory order, the index's i_dir
    for i_dir, detections in enumerate(found.suspicious_detections):
        for detection in detections:
            suspicious.append(
                SuspiciousDetection(
                    tile=filtering_dir / detection.sampleImageRelativeFileName,
                    camera=cameras[i_dir],
                    bbox=tuple(float(v) for v in detection.bbox),
                    category=results["detection_categories"].get(str(detection.category), str(detection.category)),
                    images=len(detection.instances),
                )
            )
    return filtering_dir, suspicious


def apply_repeats(
    results_file: str | Path, filtering_dir: str | Path, output_file: str | Path, *, quiet: bool = False
) -> dict[str, Any]:
    """Step 3: remove the recurring boxes whose tiles are still in ``filtering_dir``; write ``output_file``.

    Returns:
        ``{"removed": boxes removed, "images_changed": images that lost a box, "kept_tiles": tiles deleted by
        the reviewer (real animals), "removed_tiles": tiles still there}``.

    Raises:
        FileNotFoundError: ``filtering_dir`` has no ``detectionIndex.json`` (not a folder made by step 1).
        FilteringIndexError: the index holds what step 1 never writes (see :func:`read_filtering_index`).
    """
    filtering_dir = Path(filtering_dir)
    if not (filtering_dir / INDEX_FILE).is_file():
        raise FileNotFoundError(
            f"{filtering_dir / INDEX_FILE} does not exist: pass the filtering_* folder that the find step wrote"
        )
    index = read_filtering_index(filtering_dir / INDEX_FILE)  # before MegaDetector decodes it with jsonpickle
    results = load_results(results_file)
    core = import_md("postprocessing.repeat_detection_elimination.repeat_detections_core")
    md = core.RepeatDetectionOptions()
    md.filterFileToLoad = str(filtering_dir / INDEX_FILE)
    with _quiet(quiet):
        marked = core.find_repeat_detections(str(results_file), None, md)
    remaining_tiles = sum(len(d) for d in marked.suspicious_detections)
    # MegaDetector negated the confidence of each removed box, in a table whose rows follow the file's images
    # (paths normalised); the detections keep their order, so the indices carry over to our entries.
    negated: dict[str, list[int]] = {}
    for _, row in marked.detectionResults.iterrows():
        detections = row["detections"]
        if isinstance(detections, list):
            drop = [i for i, d in enumerate(detections) if d["conf"] < 0]
            if drop:
                negated[os.path.normpath(row["file"]).replace("\\", "/")] = drop
    removed = changed = 0
    for entry in results["images"]:
        drop = negated.get(os.path.normpath(entry["file"]).replace("\\", "/"))
        if not drop or entry.get("detections") is None:
            continue
        entry["detections"] = [d for i, d in enumerate(entry["detections"]) if i not in drop]
        removed += len(drop)
        changed += 1
    found_tiles = sum(len(per_dir) for per_dir in index["suspicious_detections"])
    results.setdefault("info", {})["repeat_detection_elimination"] = {
        "filtering_folder": filtering_dir.name,
        "removed_detections": removed,
    }
    write_json_atomic(output_file, results, indent=1)
    return {
        "removed": removed,
        "images_changed": changed,
        "removed_tiles": remaining_tiles,
        "kept_tiles": found_tiles - remaining_tiles,
    }
